// Ours through the app's own training path: wasm `Session`s on the page's recipe
// (`defaults().settings`), batch 64, each stepping over its own copy of the digits, one with the
// recipe's augmentation and one without. Training rounds alternate between the two, so that
// whatever else the machine does falls on both alike; the fastest round of each counts, as for
// every other row. The difference prices the augmentation.
import { defaults, Session } from '../../../pkg/lenet.js';
import { build, initLenet } from './lenet-init.mjs';
import { BATCH, serve, summarizeRounds } from './harness.mjs';

serve(async (options, progress, data) => {
  await initLenet();
  const recipe = defaults().settings;
  if (!recipe.augment) throw new Error('the page recipe has no augmentation to measure');
  // The session takes digits as MNIST stores them; the harness's pixels are bytes / 255.
  const bytes = Uint8Array.from(data.images, (v) => Math.round(v * 255));
  const make = (augment) => {
    const session = new Session({ batch_size: BATCH, augment });
    session.set_train_data(bytes, data.labels);
    return session;
  };
  const sessions = { on: make(recipe.augment), off: make(null) };
  progress(`settings (augmentation on): ${JSON.stringify(sessions.on.settings())}`);

  const train = (session, seconds) => {
    const start = performance.now();
    let steps = 0;
    let elapsed = 0;
    let loss = 0;
    do {
      loss = session.step().loss;
      steps++;
      elapsed = performance.now() - start;
    } while (elapsed < seconds * 1000);
    return { steps, seconds: elapsed / 1000, examples_per_s: (steps * BATCH) / (elapsed / 1000), loss };
  };
  const measure = async () => {
    for (const session of Object.values(sessions)) train(session, options.warmupSeconds);
    const rounds = { on: [], off: [] };
    // Eight times the usual number of rounds per variant, an eighth as long each, in turn: on,
    // off, on, ... On a shared machine whole seconds free of other work are rare; short rounds
    // give each variant many chances at an undisturbed one.
    for (let r = 0; r < 8 * options.rounds; r++) {
      for (const key of ['on', 'off']) rounds[key].push(train(sessions[key], options.roundSeconds / 8));
    }
    const on = summarizeRounds(rounds.on);
    const off = summarizeRounds(rounds.off);
    progress(`train: ${on.examples_per_s.toFixed(0)} examples/s with augmentation, ${off.examples_per_s.toFixed(0)} without`);
    return {
      train: on,
      train_without_augmentation: off,
      predict: null,
      predict_batch: null,
      timer_resolution_ms: null,
      cross_origin_isolated: self.crossOriginIsolated === true,
    };
  };
  return {
    measure,
    info: { implementation: `lenet Session (ours, ${build}), page recipe, augmentation on`, version: 'this commit', settings: sessions.on.settings() },
  };
});
