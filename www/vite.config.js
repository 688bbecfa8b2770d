import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const www = fileURLToPath(new URL('.', import.meta.url));
// wasm-pack writes the package at the repository root, beside www/.
const pkg = fileURLToPath(new URL('../pkg', import.meta.url));

export default defineConfig({
  root: www,
  resolve: {
    alias: { 'lenet-wasm': `${pkg}/lenet.js` },
  },
  // The wasm glue must not be pre-bundled: it finds lenet_bg.wasm next to itself.
  optimizeDeps: { exclude: ['lenet-wasm'] },
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    fs: { allow: [www, pkg] },
  },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true },
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
