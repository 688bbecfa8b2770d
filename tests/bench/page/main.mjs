// Runs the implementations one at a time, each in a fresh dedicated module worker, so that none
// shares a thread, a heap or a JIT with another; the runner (run.mjs) reads window.bench.
export const IMPLEMENTATIONS = {
  lenet: { worker: './lenet.worker.mjs', options: {} },
  'tfjs-wasm': { worker: './tfjs.worker.mjs', options: { backend: 'wasm' } },
  'tfjs-cpu': { worker: './tfjs.worker.mjs', options: { backend: 'cpu' } },
  convnetjs: { worker: './convnetjs.worker.mjs', options: {} },
  'jaxjs-wasm': { worker: './jaxjs.worker.mjs', options: { device: 'wasm' } },
  'jaxjs-webgpu': { worker: './jaxjs.worker.mjs', options: { device: 'webgpu' } },
  // Ours through the app's Session with augmentation on and off in turn, to price it; training only.
  augmentation: { worker: './lenet-session.worker.mjs', options: {} },
  // Ours through the app's data-parallel pool on 2 workers, against 1 worker in turn; training only.
  workers: { worker: './lenet-workers.worker.mjs', options: {} },
};

const params = new URLSearchParams(location.search);
const number = (name, fallback) => (params.has(name) ? Number(params.get(name)) : fallback);
const options = {
  warmupSeconds: number('warmup', 1),
  rounds: number('rounds', 5),
  roundSeconds: number('round', 1),
  batchSeconds: number('batch', 2),
  minBatchReps: number('batchreps', 3),
};
const only = (params.get('only') ?? Object.keys(IMPLEMENTATIONS).join(',')).split(',');

const bench = (window.bench = { done: false, results: [], errors: [], skipped: [], options });
const logElement = document.getElementById('log');
const log = (text) => {
  console.log(text);
  logElement.textContent += `${text}\n`;
};

function runOne(key) {
  const { worker: path, options: own } = IMPLEMENTATIONS[key];
  return new Promise((resolve) => {
    const worker = new Worker(new URL(path, import.meta.url), { type: 'module' });
    const finish = (outcome) => {
      worker.terminate();
      resolve(outcome);
    };
    worker.onmessage = ({ data }) => {
      if (data.type === 'progress') log(`[${key}] ${data.text}`);
      else if (data.type === 'result') finish({ key, ...data.result });
      else if (data.type === 'skipped') finish({ key, skipped: data.reason });
      else finish({ key, error: data.error });
    };
    // A worker that fails to load (a 404, a syntax error) reports only here.
    worker.onerror = (event) => finish({ key, error: `worker failed: ${event.message ?? 'could not load'}` });
    worker.postMessage({ options: { ...options, ...own } });
  });
}

for (const key of only) {
  if (!IMPLEMENTATIONS[key]) {
    bench.errors.push({ key, error: `unknown implementation ${key}` });
    continue;
  }
  log(`[${key}] starting`);
  const outcome = await runOne(key);
  if (outcome.error) {
    log(`[${key}] FAILED: ${outcome.error}`);
    bench.errors.push(outcome);
  } else if (outcome.skipped) {
    log(`[${key}] skipped: ${outcome.skipped}`);
    bench.skipped.push(outcome);
  } else {
    bench.results.push(outcome);
  }
}
bench.userAgent = navigator.userAgent;
bench.done = true;
log('done');
