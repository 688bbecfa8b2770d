// Ours: the crate's wasm package exactly as the app loads it (pkg/, wasm-pack --target web).
import { Model } from '../../../pkg/lenet.js';
import { build, initLenet } from './lenet-init.mjs';
import { serve } from './harness.mjs';

serve(async () => {
  await initLenet();
  const model = new Model(0);
  // The peers' settings: plain momentum SGD without weight decay.
  model.set_settings({ learning_rate: 0.01, momentum: 0.9, weight_decay: 0 });
  return {
    impl: {
      trainStep: (images, labels) => model.train_step(images, labels),
      predict: (image) => model.predict(image),
      predictBatch: (images) => model.predict_batch(images),
    },
    info: { implementation: `lenet (ours, Rust → wasm, ${build})`, version: 'this commit' },
  };
});
