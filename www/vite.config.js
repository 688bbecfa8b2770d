import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const www = fileURLToPath(new URL('.', import.meta.url));
// wasm-pack writes the package at the repository root, beside www/.
const pkg = fileURLToPath(new URL('../pkg', import.meta.url));
// The installed app's icons, rendered from the favicon at build time (sizes the web app manifest
// and the install prompts of Chrome and Android ask for).
const ICON_SIZES = [192, 512];
// Cross-origin isolation, so that the training workers can share memory (SharedArrayBuffer);
// README.md, "Deploy", asks a static host for the same headers.
const CROSS_ORIGIN_ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/** Renders public/favicon.svg into icons/icon-SIZE.png in the build (resvg: no browser needed). */
function pngIcons() {
  return {
    name: 'lenet-png-icons',
    apply: 'build',
    async generateBundle() {
      const { Resvg } = await import('@resvg/resvg-js');
      const svg = readFileSync(`${www}public/favicon.svg`);
      for (const size of ICON_SIZES) {
        const png = new Resvg(svg, { fitTo: { mode: 'width', value: size } }).render().asPng();
        this.emitFile({ type: 'asset', fileName: `icons/icon-${size}.png`, source: png });
      }
    },
  };
}

/** The manifest belongs to the app's page only: vite-plugin-pwa links it from every page, with a
 * URL relative to the site's root that is wrong in a sub-folder (example/). */
function manifestOnAppPage() {
  return {
    name: 'lenet-manifest-on-app-page',
    apply: 'build',
    enforce: 'post',
    transformIndexHtml: {
      order: 'post',
      handler: (html, ctx) => (ctx.path === '/index.html' ? html : html.replace(/<link rel="manifest"[^>]*>/, '')),
    },
  };
}

export default defineConfig({
  root: www,
  // Relative: the built site works from any folder of any static server, unchanged. The page,
  // its worker and the service worker find everything relative to their own URLs.
  base: './',
  resolve: {
    alias: [
      { find: /^lenet-wasm$/, replacement: `${pkg}/lenet.js` },
      { find: /^lenet-wasm\//, replacement: `${pkg}/` },
    ],
  },
  // The wasm glue must not be pre-bundled: it finds lenet_bg.wasm next to itself.
  optimizeDeps: { exclude: ['lenet-wasm'] },
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    fs: { allow: [www, pkg] },
    headers: CROSS_ORIGIN_ISOLATION,
  },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true, headers: CROSS_ORIGIN_ISOLATION },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // One folder below the root: src/base.js finds the root from there.
    assetsDir: 'assets',
    rollupOptions: { input: { main: `${www}index.html`, example: `${www}example/index.html` } },
    // The .wasm must stay a file of its own: the page checks what the server sends for it.
    assetsInlineLimit: (file) => (file.endsWith('.wasm') ? false : undefined),
  },
  plugins: [
    pngIcons(),
    VitePWA({
      // A new version takes over as soon as it is downloaded (skipWaiting, clientsClaim); the
      // page then reloads unless a network is training (src/boot.js).
      registerType: 'autoUpdate',
      // Registered from src/boot.js, which says on the page when the app works offline.
      injectRegister: false,
      manifest: {
        name: 'LeNet-5 in your browser',
        short_name: 'LeNet-5',
        description: 'Draw a digit and see a convolutional network recognize it; train one live on MNIST, offline too',
        theme_color: '#4f46e5',
        background_color: '#ffffff',
        display: 'standalone',
        start_url: './',
        scope: './',
        icons: [
          ...ICON_SIZES.map((size) => ({ src: `icons/icon-${size}.png`, sizes: `${size}x${size}`, type: 'image/png' })),
          { src: 'favicon.svg', sizes: 'any', type: 'image/svg+xml' },
        ],
      },
      workbox: {
        // The app, the wasm, the pretrained weights and the digits (public/data/): everything the
        // page and its worker fetch, so that drawing and training work with the network off.
        globPatterns: ['**/*.{html,js,css,wasm,svg,png,webmanifest,safetensors,json,gz}'],
        // The digits of full MNIST are about 10 MB gzipped.
        maximumFileSizeToCacheInBytes: 64 * 1024 * 1024,
        cleanupOutdatedCaches: true,
        skipWaiting: true,
        clientsClaim: true,
        // A navigation to a page not in the cache (e.g. ?test-crash) gets the app's page.
        navigateFallback: 'index.html',
      },
    }),
    manifestOnAppPage(),
  ],
});
