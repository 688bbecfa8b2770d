// Starts WebAssembly for the page before anything else runs, and says in words what is wrong when
// it cannot: a browser without WebAssembly SIMD, a server that answers the .wasm URL with an HTML
// page, a Content-Security-Policy that forbids compiling WebAssembly. Then registers the service
// worker that keeps the app working offline.
//
// Imported first by main.js: its top-level await holds the page's own code back until the module
// is instantiated (wasm-bindgen's init() then returns the same instance at once). When it fails,
// the page's code never runs, so the message here is the last word.
import init from 'lenet-wasm';
import { wasmBuild, wasmUrl } from './wasm-module.js';
import { registerSW } from 'virtual:pwa-register';

// The first versions with WebAssembly SIMD on by default (Edge follows Chrome).
export const SIMD_BROWSERS = 'Chrome or Edge 91, Firefox 89, Safari 16.4';
// How long the download may take before the page says it is still waiting.
const SLOW_MS = 15_000;

// The smallest module that uses a SIMD instruction: `(func (result v128) (i8x16.splat (i32.const 0)))`.
// prettier-ignore
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b, // code: i32.const 0; i8x16.splat; end
]);
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

/** An error whose message is meant for the person; `kind` tells the tests which one. */
export class BootError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'BootError';
    this.kind = kind;
  }
}

/** Throws a BootError unless this browser runs WebAssembly with SIMD. */
export function checkWebAssembly(wasm = globalThis.WebAssembly) {
  if (typeof wasm !== 'object' || typeof wasm?.instantiate !== 'function') {
    throw new BootError(
      'no-wasm',
      'This browser does not run WebAssembly (it lacks it, or a setting such as a locked-down or ' +
        `"JIT-less" mode turned it off). The network needs WebAssembly with SIMD: ${SIMD_BROWSERS} or later.`,
    );
  }
  if (!wasm.validate(SIMD_PROBE)) {
    throw new BootError(
      'no-simd',
      'This browser runs WebAssembly but not WebAssembly SIMD (128-bit vector instructions), which the ' +
        `network's kernels are compiled with. It needs ${SIMD_BROWSERS} or later, with SIMD not switched off.`,
    );
  }
}

/** Describes the first bytes of a body, for a person: printable text as is, the rest in hex. */
function firstBytes(bytes) {
  const head = bytes.subarray(0, 16);
  const text = String.fromCharCode(...head);
  if (/^[\x20-\x7e\t\r\n]*$/.test(text)) return JSON.stringify(text.trim()).slice(0, 40);
  return Array.from(head.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Downloads the module and checks that it is one (status, first bytes); its bytes. */
export async function fetchWasm(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new BootError(
      'network',
      `The WebAssembly module ${url} could not be downloaded (${error.message}). Check the connection, ` +
        'or that the server is running; after one complete visit the app also works offline.',
    );
  }
  const type = response.headers.get('content-type') || 'none';
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!response.ok) {
    throw new BootError(
      'http',
      `The server answered the WebAssembly module ${url} with HTTP ${response.status}. Check that the ` +
        'whole build folder was uploaded, with its assets/ folder beside index.html.',
    );
  }
  if (!WASM_MAGIC.every((b, i) => bytes[i] === b)) {
    const html = /html/i.test(type) || /^\s*</.test(new TextDecoder().decode(bytes.subarray(0, 64)));
    throw new BootError(
      'not-wasm',
      `The server answered the WebAssembly module ${url} with ${html ? 'an HTML page' : 'something else'} ` +
        `(Content-Type: ${type}; it starts with ${firstBytes(bytes)}) instead of a file starting with the bytes ` +
        '\\0asm. Check that the .wasm file was uploaded (assets/ beside index.html), that the server sends it as ' +
        'it is, and that no single-page-app fallback rewrites .wasm requests to index.html.',
    );
  }
  if (!/application\/wasm/i.test(type)) {
    // Instantiating from bytes works whatever the type; streaming compilation would have refused.
    console.warn(`${url} is served as ${type}, not application/wasm: it works, but the server should say application/wasm`);
  }
  return bytes;
}

/** Instantiates the module from its bytes, naming a Content-Security-Policy that forbids it. */
export async function instantiate(bytes) {
  let violation = null;
  const onViolation = (event) => {
    if (event.blockedURI === 'wasm-eval' || /wasm|eval/.test(event.blockedURI)) violation = event;
  };
  document.addEventListener('securitypolicyviolation', onViolation);
  try {
    await init({ module_or_path: bytes });
  } catch (error) {
    // Chrome throws a CompileError and Firefox an EvalError (or CompileError) naming the policy.
    const named = /unsafe-eval|Content.Security.Policy|CSP/i.test(String(error?.message));
    if (named || violation || error instanceof EvalError) {
      const directive = violation ? ` (the policy's ${violation.effectiveDirective || violation.violatedDirective})` : '';
      throw new BootError(
        'csp',
        `This site's Content-Security-Policy forbids compiling WebAssembly${directive}: its script-src must ` +
          "include 'wasm-unsafe-eval'. Add it to the Content-Security-Policy header (or <meta> tag) the server " +
          `sends. The browser said: ${error?.name}: ${error?.message}`,
      );
    }
    if (error instanceof WebAssembly.CompileError || error instanceof WebAssembly.LinkError) {
      throw new BootError('compile', `The WebAssembly module could not be compiled: ${error.message}`);
    }
    throw error;
  } finally {
    document.removeEventListener('securitypolicyviolation', onViolation);
  }
}

function showFailure(error) {
  const status = document.getElementById('weights-status');
  const message = error instanceof BootError ? error.message : `The network could not start: ${error?.message ?? error}`;
  if (status) {
    status.textContent = 'The network cannot run here';
    status.className = 'pill bad';
  }
  const alert = document.createElement('div');
  alert.id = 'boot-error';
  alert.className = 'alert';
  alert.setAttribute('role', 'alert');
  alert.textContent = message;
  document.querySelector('main')?.before(alert);
  const source = document.getElementById('data-source');
  if (source) source.textContent = 'Training is unavailable';
  for (const button of document.querySelectorAll('#run, #reset, #load, #download')) button.disabled = true;
  document.body.dataset.ready = 'failed';
  document.body.dataset.bootError = error instanceof BootError ? error.kind : 'other';
}

/** Registers the service worker: the app, the wasm, the weights and the digits are cached for
 * offline use, and a new version replaces the cached one as soon as it is downloaded. */
function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  registerSW({
    immediate: true,
    onOfflineReady() {
      document.body.dataset.offline = 'ready';
    },
    // A new version has taken over. The page reloads into it now, unless a network is training:
    // then it asks, and the worker's checkpoint lets training resume after the reload.
    onNeedReload() {
      if (document.body.dataset.training !== 'running') {
        location.reload();
        return;
      }
      const status = document.getElementById('weights-status');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'ghost';
      button.textContent = 'A new version is ready: reload';
      button.addEventListener('click', () => location.reload());
      status?.replaceChildren(button);
    },
    onRegisterError(error) {
      console.warn(`the app will not work offline: ${error?.message ?? error}`);
    },
  });
}

async function boot() {
  const status = document.getElementById('weights-status');
  const slow = setTimeout(() => {
    if (status) status.textContent = `Still downloading the network (${new URL(wasmUrl, document.baseURI).pathname})…`;
  }, SLOW_MS);
  try {
    checkWebAssembly();
    await instantiate(await fetchWasm(new URL(wasmUrl, document.baseURI).href));
    document.body.dataset.wasm = wasmBuild;
  } finally {
    clearTimeout(slow);
  }
  registerServiceWorker();
}

try {
  await boot();
} catch (error) {
  showFailure(error);
  throw error;
}
