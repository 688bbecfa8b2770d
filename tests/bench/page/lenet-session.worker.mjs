// Ours through the app's own training path: a wasm `Session` on the page's recipe
// (`defaults().settings`), batch 64, stepping over its own copy of the digits, with the recipe's
// augmentation on or off. The two rows give augmentation's share of a training step.
import init, { defaults, Session } from '../../../pkg/lenet.js';
import { BATCH, serve } from './harness.mjs';

serve(async ({ augment }, progress, data) => {
  await init();
  const recipe = defaults().settings;
  if (augment && !recipe.augment) throw new Error('the page recipe has no augmentation to measure');
  const session = new Session({ batch_size: BATCH, augment: augment ? recipe.augment : null });
  // The session takes digits as MNIST stores them; the harness's pixels are bytes / 255.
  session.set_train_data(Uint8Array.from(data.images, (v) => Math.round(v * 255)), data.labels);
  const settings = session.settings();
  progress(`settings: ${JSON.stringify(settings)}`);
  return {
    // The session draws its own batches (and distortions); the harness's batch is not used.
    impl: { trainStep: () => session.step().loss },
    info: {
      implementation: `lenet Session (ours), page recipe, augmentation ${augment ? 'on' : 'off'}`,
      version: 'this commit',
      settings,
    },
  };
});
