// Ours through the app's data-parallel path: the training worker's GradientPool
// (www/src/worker/pool.js) with its gradient workers, on the page's recipe at batch 64 (4 shards
// of 16), against one Session stepping alone, as the app does with one worker. The two run in
// alternating rounds, so that whatever else the machine does falls on both alike; the fastest
// round of each counts, as for every other row. Shards go through a SharedArrayBuffer, as on the
// app's cross-origin-isolated page.
import { defaults, Session } from '../../../pkg/lenet.js';
import { build, initLenet } from './lenet-init.mjs';
import { GradientPool } from '../../../www/src/worker/pool.js';
import { BATCH, serve, summarizeRounds } from './harness.mjs';

const WORKERS = 2;

serve(async (options, progress, data) => {
  await initLenet();
  const recipe = defaults().settings;
  const bytes = Uint8Array.from(data.images, (v) => Math.round(v * 255));
  const make = () => {
    const session = new Session({ ...recipe, batch_size: BATCH });
    session.set_train_data(bytes, data.labels);
    return session;
  };
  const train = { images: bytes, labels: data.labels };
  const one = { session: make(), version: 0 };
  const many = { session: make(), version: 0 };
  const pool = new GradientPool({
    createWorker: () => new Worker(new URL('./lenet-gradient.worker.mjs', import.meta.url), { type: 'module' }),
  });
  pool.setSize(WORKERS);
  if (!pool.parallel(many)) throw new Error(`a batch of ${BATCH} is not split over ${WORKERS} workers`);
  progress(`settings: ${JSON.stringify(many.session.settings())}; shards through ${pool.transport === 'shared' ? 'a SharedArrayBuffer' : 'messages'}`);

  const round = async (network, parallel, seconds) => {
    const start = performance.now();
    let steps = 0;
    let elapsed = 0;
    let loss = 0;
    do {
      loss = (parallel ? await pool.step(network, train) : network.session.step()).loss;
      steps++;
      elapsed = performance.now() - start;
    } while (elapsed < seconds * 1000);
    return { steps, seconds: elapsed / 1000, examples_per_s: (steps * BATCH) / (elapsed / 1000), loss };
  };
  const measure = async () => {
    try {
      return await measureBoth();
    } finally {
      pool.setSize(1); // the gradient worker goes, whatever happened
    }
  };
  const measureBoth = async () => {
    // Long enough for the gradient workers' wasm to reach its optimised tier too.
    const warmup = Math.max(3, options.warmupSeconds);
    await round(many, true, warmup);
    await round(one, false, warmup);
    const rounds = { one: [], many: [] };
    // As for the augmentation rows: many short rounds in turn give each side chances at an
    // undisturbed one.
    for (let r = 0; r < 8 * options.rounds; r++) {
      rounds.many.push(await round(many, true, options.roundSeconds / 8));
      rounds.one.push(await round(one, false, options.roundSeconds / 8));
    }
    const { failure, replaced, replacedWhy } = pool.describe();
    if (failure || replaced > 0) throw new Error(failure ? `the gradient workers failed: ${failure}` : `${replaced} gradient worker(s) replaced, the last because: ${replacedWhy}`);
    const result = { many: summarizeRounds(rounds.many), one: summarizeRounds(rounds.one) };
    progress(`train: ${result.one.examples_per_s.toFixed(0)} examples/s on 1 worker, ${result.many.examples_per_s.toFixed(0)} on ${WORKERS}`);
    return {
      train: result.many,
      train_one_worker: result.one,
      workers: WORKERS,
      predict: null,
      predict_batch: null,
      timer_resolution_ms: null,
      cross_origin_isolated: self.crossOriginIsolated === true,
    };
  };
  return {
    measure,
    info: { implementation: `lenet Session (ours, ${build}), page recipe, ${WORKERS} workers`, version: 'this commit', settings: many.session.settings() },
  };
});
