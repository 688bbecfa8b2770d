// What every implementation's worker shares: the data, and one measuring procedure, so that the
// figures differ only by the code under test. A worker builds an adapter
//   { trainStep(images, labels) -> loss, predict(image) -> probabilities,
//     predictBatch(images) -> probabilities }
// taking Float32Arrays of pixels in [0, 1] (n × 784) and Uint8Arrays of labels, and calls serve().
// A method may return a promise (a GPU backend reads its results back asynchronously); the
// promise is awaited inside the timing.

export const PIXELS = 784;
export const BATCH = 64;
export const BATCH_PREDICT = 1000;
export const SINGLE_PREDICTS = 1000;

export async function loadData() {
  const fetchBytes = async (name) => {
    const response = await fetch(new URL(`../data/${name}`, import.meta.url));
    if (!response.ok) throw new Error(`data/${name}: HTTP ${response.status} (run prepare-data.mjs first)`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const [bytes, labels] = await Promise.all([fetchBytes('images.u8'), fetchBytes('labels.u8')]);
  const images = Float32Array.from(bytes, (b) => b / 255);
  return { images, labels, count: labels.length };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// The clock's effective step. Without cross-origin isolation browsers coarsen performance.now()
// to 0.1 ms or worse, too coarse for a 0.05 ms predict: the result records what it was.
function timerResolution() {
  let best = Infinity;
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    let t1 = t0;
    while (t1 === t0) t1 = performance.now();
    best = Math.min(best, t1 - t0);
  }
  return best;
}

function sumsToOne(probabilities, rows) {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < 10; k++) s += probabilities[r * 10 + k];
    if (!(Math.abs(s - 1) < 1e-3)) throw new Error(`row ${r} of the probabilities sums to ${s}`);
  }
}

export async function measure(impl, data, options, progress) {
  const { images, labels, count } = data;
  // An adapter whose methods return promises says so (`async: true`); a synchronous one is then
  // timed without a microtask per call.
  const isAsync = impl.async === true;
  const batches = Math.floor(count / BATCH);
  const batch = (i) => {
    const b = i % batches;
    return [images.subarray(b * BATCH * PIXELS, (b + 1) * BATCH * PIXELS), labels.subarray(b * BATCH, (b + 1) * BATCH)];
  };
  const image = (i) => images.subarray((i % count) * PIXELS, ((i % count) + 1) * PIXELS);

  // Training. Warm-up (JIT tiers, first-use allocations, kernel set-up) for at least one step
  // and options.warmupSeconds. Then options.rounds timed rounds, each of at least
  // options.roundSeconds and one step, so that a slow peer is timed over fewer steps, not
  // forever. The fastest round is the figure: on a shared machine other work only ever slows a
  // round down, and every implementation is treated alike (the mean is kept beside it).
  let step = 0;
  const warmupStart = performance.now();
  const firstLoss = isAsync ? await impl.trainStep(...batch(step++)) : impl.trainStep(...batch(step++));
  while (performance.now() - warmupStart < options.warmupSeconds * 1000) {
    if (isAsync) await impl.trainStep(...batch(step++));
    else impl.trainStep(...batch(step++));
  }
  progress(`warm-up: ${step} steps`);
  const warmupSteps = step;
  const losses = [];
  const rounds = [];
  for (let r = 0; r < options.rounds; r++) {
    const start = performance.now();
    let steps = 0;
    let elapsed = 0;
    do {
      losses.push(isAsync ? await impl.trainStep(...batch(step++)) : impl.trainStep(...batch(step++)));
      steps++;
      elapsed = performance.now() - start;
    } while (elapsed < options.roundSeconds * 1000);
    rounds.push({ steps, seconds: elapsed / 1000, examples_per_s: (steps * BATCH) / (elapsed / 1000) });
  }
  const lastLosses = losses.slice(-Math.min(5, losses.length));
  const timedSteps = rounds.reduce((n, r) => n + r.steps, 0);
  const timedSeconds = rounds.reduce((t, r) => t + r.seconds, 0);
  const train = {
    examples_per_s: Math.max(...rounds.map((r) => r.examples_per_s)),
    mean_examples_per_s: (timedSteps * BATCH) / timedSeconds,
    rounds,
    timed_steps: timedSteps,
    timed_seconds: timedSeconds,
    warmup_steps: warmupSteps,
    loss_first: firstLoss,
    loss_last: lastLosses.reduce((a, b) => a + b, 0) / lastLosses.length,
  };
  if (!Number.isFinite(train.loss_last)) throw new Error(`training diverged: loss ${train.loss_last}`);
  progress(`train: ${train.examples_per_s.toFixed(1)} examples/s (best round; mean ${train.mean_examples_per_s.toFixed(1)}) over ${timedSteps} steps`);
  const clock = { timer_resolution_ms: timerResolution(), cross_origin_isolated: self.crossOriginIsolated === true };

  // One-image predict: every call timed on its own; the median resists the odd GC pause.
  sumsToOne(await impl.predict(image(0)), 1);
  const warmupPredict = performance.now();
  for (let i = 0; i < 50 && performance.now() - warmupPredict < 2000; i++) {
    if (isAsync) await impl.predict(image(i));
    else impl.predict(image(i));
  }
  const times = new Float64Array(SINGLE_PREDICTS);
  const predictStart = performance.now();
  for (let i = 0; i < SINGLE_PREDICTS; i++) {
    const x = image(i);
    const t0 = performance.now();
    if (isAsync) await impl.predict(x);
    else impl.predict(x);
    times[i] = performance.now() - t0;
  }
  const predict = {
    median_ms: median(times),
    mean_ms: (performance.now() - predictStart) / SINGLE_PREDICTS,
    calls: SINGLE_PREDICTS,
  };
  progress(`predict: median ${predict.median_ms.toFixed(4)} ms`);

  // Batch predict of 1,000 images, repeated; the fastest repetition counts, as for training.
  const thousand = images.subarray(0, BATCH_PREDICT * PIXELS);
  sumsToOne(await impl.predictBatch(thousand), BATCH_PREDICT);
  const reps = [];
  const batchStart = performance.now();
  do {
    const t0 = performance.now();
    if (isAsync) await impl.predictBatch(thousand);
    else impl.predictBatch(thousand);
    reps.push(performance.now() - t0);
  } while (reps.length < options.minBatchReps || performance.now() - batchStart < options.batchSeconds * 1000);
  const predictBatch = {
    images_per_s: BATCH_PREDICT / (Math.min(...reps) / 1000),
    median_images_per_s: BATCH_PREDICT / (median(reps) / 1000),
    repetitions: reps.length,
  };
  progress(`predict_batch: ${predictBatch.images_per_s.toFixed(0)} images/s`);

  return {
    train,
    predict,
    predict_batch: predictBatch,
    ...clock,
  };
}

// The worker side of the page's protocol: one 'run' message in, progress messages and then one
// 'result', 'skipped' or 'error' message out. makeImpl returns { impl, info }, or { skipped:
// reason } when this browser cannot run the implementation at all (a backend it does not offer),
// or { measure(options, progress) -> result, info } to time itself.
/**
 * The figures of timed training rounds (`{ steps, seconds, examples_per_s, loss }` each), for an
 * implementation that times its own rounds: the fastest round, the mean over all, and the last
 * loss. Throws when that loss is not finite (training diverged).
 */
export function summarizeRounds(list) {
  const steps = list.reduce((n, x) => n + x.steps, 0);
  const seconds = list.reduce((t, x) => t + x.seconds, 0);
  const loss = list[list.length - 1].loss;
  if (!Number.isFinite(loss)) throw new Error('training diverged');
  return {
    examples_per_s: Math.max(...list.map((x) => x.examples_per_s)),
    mean_examples_per_s: (steps * BATCH) / seconds,
    rounds: list,
    timed_steps: steps,
    timed_seconds: seconds,
    loss_last: loss,
  };
}

export function serve(makeImpl) {
  self.onmessage = async ({ data: { options } }) => {
    const progress = (text) => self.postMessage({ type: 'progress', text });
    try {
      const data = await loadData();
      const made = await makeImpl(options, progress, data);
      if (made.skipped) {
        self.postMessage({ type: 'skipped', reason: made.skipped });
        return;
      }
      const { impl, info } = made;
      // An implementation with its own timing procedure (measuring two variants in turn) brings it.
      const result = made.measure ? await made.measure(options, progress) : await measure(impl, data, options, progress);
      self.postMessage({ type: 'result', result: { ...info, ...result } });
    } catch (error) {
      self.postMessage({ type: 'error', error: `${error?.message ?? error}\n${error?.stack ?? ''}` });
    }
  };
}
