// The production build as a static host serves it (.ci/e2e: www/dist/ under /lenet/ with the
// headers of README.md's "Deploy"): every request stays under that path; the page says in words
// why it cannot start when the .wasm comes back as an HTML page, when the browser lacks
// WebAssembly SIMD, and when a Content-Security-Policy forbids WebAssembly; it runs the
// relaxed-SIMD module where the browser has relaxed SIMD, else the SIMD128 one; after one visit it
// works offline; it is installable; the example page recognizes digits with the npm package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBrowser, openPage, waitUntilReady, assertClean, BASE_URL } from './browser.mjs';
import { DIGITS, drawWithMouse } from './digits.mjs';

// Under Vite's dev server (E2E_DEV=1) there is no service worker, manifest or built example.
const BUILD = !process.env.E2E_DEV;
const build = { skip: BUILD ? false : 'the production build is not under test (E2E_DEV)' };
// The folder the static server serves the site from (.ci/e2e sets it), to deploy a new version.
const SITE_DIR = process.env.E2E_SITE_DIR;

/** Waits until the page gave up, and returns what it says. */
async function bootFailure(page) {
  await page.waitForSelector('body[data-ready="failed"]', { timeout: 60_000 });
  const said = {
    kind: await page.evaluate(() => document.body.dataset.bootError),
    alert: await page.textContent('#boot-error'),
    status: await page.textContent('#weights-status'),
    data: await page.textContent('#data-source'),
  };
  for (const text of [said.status, said.data]) assert.doesNotMatch(text, /Loading/, 'a "Loading…" is left on the page');
  return said;
}

/** Makes the page's `WebAssembly.validate` refuse every module holding the byte sequence
 * `opcode`, as a browser without that instruction does (an init script: the page, not its workers). */
async function refuseModulesHolding(page, opcode) {
  await page.addInitScript((opcode) => {
    const validate = WebAssembly.validate;
    const holds = (b) => b.some((_, i) => opcode.every((x, j) => b[i + j] === x));
    WebAssembly.validate = (bytes) => !holds(new Uint8Array(bytes.buffer ?? bytes)) && validate(bytes);
  }, opcode);
}

test('the built site runs under a sub-path with cross-origin isolation, and every request stays under that path', build, async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    assert.notEqual(new URL(BASE_URL).pathname, '/', 'the site is served from a sub-path');
    // COOP same-origin + COEP require-corp from the server: SharedArrayBuffer is available.
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'the page is cross-origin isolated');
    await drawWithMouse(page, DIGITS[2]);
    await page.waitForFunction(() => document.body.dataset.probabilities);
    assert.equal(await page.evaluate(() => document.querySelector('#predicted').dataset.digit), '2');
    // Chromium has relaxed SIMD (since 114): the page and its training worker run the faster
    // of the two modules.
    assert.equal(await page.evaluate(() => document.body.dataset.wasm), 'relaxed-simd');
    assert.equal(await page.evaluate(() => document.body.dataset.workerWasm), 'relaxed-simd');
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    assert.equal(scope, BASE_URL, 'the service worker covers the site and nothing above it');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a .wasm answered with an HTML page is named as such, with what to check', async () => {
  const browser = await openBrowser();
  try {
    const { page, context } = browser;
    // What a single-page-app fallback does with a file it does not have.
    await context.route(/\.wasm(\?|$)/, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: '<!doctype html><html><body>Not here</body></html>' }),
    );
    await page.goto(BASE_URL);
    const said = await bootFailure(page);
    assert.equal(said.kind, 'not-wasm');
    assert.match(said.alert, /answered the WebAssembly module .*lenet(_relaxed)?_bg.*\.wasm with an HTML page/);
    assert.match(said.alert, /Content-Type: text\/html/);
    assert.match(said.alert, /"<!doctype html>/);
    assert.match(said.alert, /\\0asm/);
    assert.match(said.alert, /single-page-app fallback/);
    assert.deepEqual(browser.foreign, []);
  } finally {
    await browser.close();
  }
});

test('a browser without WebAssembly SIMD is told which versions it needs', async () => {
  const browser = await openBrowser();
  try {
    const { page } = browser;
    // A browser of before SIMD: it validates no module that holds a SIMD (0xfd-prefixed) opcode.
    await refuseModulesHolding(page, [0xfd]);
    await page.goto(BASE_URL);
    const said = await bootFailure(page);
    assert.equal(said.kind, 'no-simd');
    assert.match(said.alert, /WebAssembly SIMD/);
    assert.match(said.alert, /Chrome or Edge 91, Firefox 89, Safari 16\.4 or later/);
    assert.deepEqual(browser.foreign, []);
  } finally {
    await browser.close();
  }
});

test('a browser without relaxed SIMD runs the SIMD128 module and recognizes digits with it', async () => {
  const browser = await openBrowser();
  try {
    const { page } = browser;
    // Safari, say: it validates SIMD128 but no module holding f32x4.relaxed_madd (0xfd 0x85 0x02).
    // An init script reaches the page, not its workers, which here still find relaxed SIMD and
    // choose for themselves (in a real browser the page and its workers ask the same engine).
    await refuseModulesHolding(page, [0xfd, 0x85, 0x02]);
    const requested = [];
    page.on('request', (request) => requested.push(new URL(request.url()).pathname));
    await page.goto(BASE_URL);
    await waitUntilReady(page);
    assert.equal(await page.evaluate(() => document.body.dataset.wasm), 'simd128');
    assert.equal(await page.evaluate(() => document.body.dataset.workerWasm), 'relaxed-simd');
    assert.ok(requested.some((path) => /\/lenet_bg[^/]*\.wasm$/.test(path)), `the SIMD128 module was not fetched: ${requested.join(', ')}`);
    await drawWithMouse(page, DIGITS[7]);
    await page.waitForFunction(() => document.body.dataset.probabilities);
    assert.equal(await page.evaluate(() => document.querySelector('#predicted').dataset.digit), '7');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a browser without WebAssembly at all is told so', async () => {
  const browser = await openBrowser();
  try {
    const { page } = browser;
    await page.addInitScript(() => {
      delete globalThis.WebAssembly;
    });
    await page.goto(BASE_URL);
    const said = await bootFailure(page);
    assert.equal(said.kind, 'no-wasm');
    assert.match(said.alert, /does not run WebAssembly/);
    assert.match(said.alert, /Chrome or Edge 91/);
  } finally {
    await browser.close();
  }
});

test("a Content-Security-Policy without 'wasm-unsafe-eval' is named", async () => {
  const browser = await openBrowser();
  try {
    const { page, context } = browser;
    // A host whose policy forgot WebAssembly: scripts from the site only.
    await context.route((url) => url.href === BASE_URL, async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers(), 'content-security-policy': "default-src 'self'; script-src 'self'" };
      await route.fulfill({ response, headers });
    });
    await page.goto(BASE_URL);
    const said = await bootFailure(page);
    assert.equal(said.kind, 'csp');
    assert.match(said.alert, /Content-Security-Policy forbids compiling WebAssembly/);
    assert.match(said.alert, /'wasm-unsafe-eval'/);
    assert.deepEqual(browser.foreign, []);
  } finally {
    await browser.close();
  }
});

test('after one visit the page loads, recognizes and trains with the network off', build, async () => {
  const browser = await openPage();
  try {
    const { page, context } = browser;
    // Installed, everything precached, and in control of the page.
    await page.waitForFunction(() => document.body.dataset.offline === 'ready', null, { timeout: 120_000 });
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
    await context.setOffline(true);
    assert.equal(await page.evaluate(() => navigator.onLine), false);
    await page.reload();
    await waitUntilReady(page);
    assert.match(await page.textContent('#weights-status'), /Pretrained weights loaded/);
    await drawWithMouse(page, DIGITS[3]);
    await page.waitForFunction(() => document.body.dataset.probabilities);
    assert.equal(await page.evaluate(() => document.querySelector('#predicted').dataset.digit), '3', 'a 3 recognized offline');
    await page.click('#run');
    await page.waitForFunction(() => window.lenetPage.trainingState()?.step > 20, null, { timeout: 60_000 });
    await page.click('#run');
    await page.waitForFunction(() => document.body.dataset.training === 'paused');
    const step = await page.evaluate(() => window.lenetPage.trainingState().step);
    console.log(`# offline: recognized a 3 and trained ${step} steps`);
    assertClean(browser);
  } finally {
    await browser.context.setOffline(false).catch(() => {});
    await browser.close();
  }
});

test('a new version replaces the cached one: the open page reloads into it by itself', {
  skip: BUILD && SITE_DIR ? false : 'needs the served folder of the build (E2E_SITE_DIR)',
}, async () => {
  const browser = await openPage();
  const indexPath = join(SITE_DIR, 'index.html');
  const swPath = join(SITE_DIR, 'sw.js');
  const [index, sw] = await Promise.all([readFile(indexPath, 'utf8'), readFile(swPath, 'utf8')]);
  try {
    const { page } = browser;
    await page.waitForFunction(() => document.body.dataset.offline === 'ready', null, { timeout: 120_000 });
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
    // Deploy a new version: a changed page, and the service worker that lists its new revision.
    const revision = /url:"index\.html",revision:"([0-9a-f]+)"/;
    assert.match(sw, revision, 'sw.js precaches index.html with a revision');
    await writeFile(indexPath, index.replace('<title>', '<meta name="lenet-version" content="next" /><title>'));
    await writeFile(swPath, sw.replace(revision, `url:"index.html",revision:"${'0'.repeat(32)}"`));
    // What the browser does by itself at the next navigation to the site.
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    await page.waitForSelector('meta[name="lenet-version"][content="next"]', { state: 'attached', timeout: 60_000 });
    await waitUntilReady(page);
    assertClean(browser);
  } finally {
    await Promise.all([writeFile(indexPath, index), writeFile(swPath, sw)]);
    await browser.close();
  }
});

test('the app is installable: a web app manifest with PNG icons of 192 and 512 pixels', build, async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    const href = await page.getAttribute('link[rel="manifest"]', 'href');
    assert.ok(href, 'the page links a manifest');
    const found = await page.evaluate(async (href) => {
      const url = new URL(href, document.baseURI);
      const manifest = await (await fetch(url)).json();
      const icons = [];
      for (const icon of manifest.icons.filter((i) => i.type === 'image/png')) {
        const bytes = new Uint8Array(await (await fetch(new URL(icon.src, url))).arrayBuffer());
        const view = new DataView(bytes.buffer);
        // PNG signature, then the IHDR chunk's width and height.
        const png = bytes[0] === 0x89 && String.fromCharCode(...bytes.subarray(1, 4)) === 'PNG';
        icons.push({ sizes: icon.sizes, png, width: view.getUint32(16), height: view.getUint32(20) });
      }
      return { manifest, icons, start: new URL(manifest.start_url, url).href };
    }, href);
    assert.equal(found.manifest.display, 'standalone');
    assert.equal(found.start, BASE_URL, 'the installed app starts at the page');
    assert.deepEqual(
      found.icons.map(({ sizes, png, width, height }) => [sizes, png, width, height]),
      [
        ['192x192', true, 192, 192],
        ['512x512', true, 512, 512],
      ],
    );
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('the example page recognizes drawn digits with the npm package', build, async () => {
  const browser = await openBrowser();
  try {
    const { page } = browser;
    await page.goto(`${BASE_URL}example/`);
    await page.waitForFunction(() => document.querySelector('#digit').value === 'ready', null, { timeout: 60_000 });
    const got = [];
    for (const digit of [3, 7, 0]) {
      await page.click('#clear');
      await drawWithMouse(page, DIGITS[digit]);
      await page.waitForFunction(() => /^\d$/.test(document.querySelector('#digit').value));
      got.push(Number(await page.evaluate(() => document.querySelector('#digit').value)));
    }
    assert.deepEqual(got, [3, 7, 0]);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
