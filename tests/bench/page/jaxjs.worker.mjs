// jax-js (npm `@jax-js/jax`) on its wasm backend, one thread, or on WebGPU when this browser
// offers an adapter: the LeNet-5 of jaxjs-lenet.mjs.
import { serve } from './harness.mjs';
import { makeJaxLenet } from './jaxjs-lenet.mjs';

const modules = new URL('../node_modules/', import.meta.url);

// What stands between this worker and a WebGPU device, or null when there is one.
async function webgpuMissing() {
  if (!('gpu' in navigator) || !navigator.gpu) return 'this browser offers no WebGPU here (navigator.gpu is undefined)';
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }).catch((e) => e);
  if (!adapter || adapter instanceof Error) return `this browser offers no WebGPU adapter here (requestAdapter: ${adapter?.message ?? 'null'})`;
  return null;
}

serve(async ({ device }) => {
  const packageJson = await (await fetch(new URL('@jax-js/jax/package.json', modules))).json();
  if (device === 'webgpu') {
    const missing = await webgpuMissing();
    if (missing) return { skipped: `jax-js ${packageJson.version}, WebGPU: not measured, ${missing}` };
  } else {
    // jax-js starts a pool of hardwareConcurrency workers on its wasm backend whenever the page
    // is cross-origin isolated (this one is, for its clock) and then runs kernels dispatched
    // asynchronously there. Every implementation here gets one thread; without a Worker
    // constructor jax-js keeps to the calling thread (and the results are read synchronously).
    globalThis.Worker = undefined;
  }
  const jax = await import(new URL('@jax-js/jax/dist/index.js', modules).href);
  const started = await jax.init(device);
  if (!started.includes(device)) throw new Error(`jax-js could not start its ${device} backend (started: ${started.join(', ')})`);
  let adapterInfo = '';
  if (device === 'webgpu') {
    const info = jax.getWebGPUDevice?.()?.adapterInfo;
    if (info) adapterInfo = ` (${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'adapter'})`;
  }
  return {
    impl: makeJaxLenet(jax, { device }),
    info: {
      implementation:
        device === 'webgpu' ? `jax-js ${packageJson.version}, WebGPU${adapterInfo}` : `jax-js ${packageJson.version}, wasm backend, one thread`,
      version: packageJson.version,
    },
  };
});
