// ConvNetJS 0.3.0 (pure JavaScript), the same LeNet-5.
import { serve, PIXELS } from './harness.mjs';

// convnet.js is a classic script that assigns window.jsfeat when it finds no CommonJS module,
// which throws in a worker; handing it a `module` object takes its CommonJS path instead.
async function loadConvnetjs() {
  const url = new URL('../node_modules/convnetjs/build/convnet.js', import.meta.url);
  const source = await (await fetch(url)).text();
  const module = { exports: {} };
  new Function('module', `${source}\n//# sourceURL=${url}`)(module);
  return module.exports;
}

serve(async () => {
  const convnetjs = await loadConvnetjs();
  const net = new convnetjs.Net();
  net.makeLayers([
    { type: 'input', out_sx: 28, out_sy: 28, out_depth: 1 },
    { type: 'conv', sx: 5, filters: 6, stride: 1, pad: 2, activation: 'relu' },
    { type: 'pool', sx: 2, stride: 2 },
    { type: 'conv', sx: 5, filters: 16, stride: 1, pad: 0, activation: 'relu' },
    { type: 'pool', sx: 2, stride: 2 },
    { type: 'fc', num_neurons: 120, activation: 'relu' },
    { type: 'fc', num_neurons: 84, activation: 'relu' },
    { type: 'softmax', num_classes: 10 },
  ]);
  // ConvNetJS takes one example per call and updates the weights every batch_size examples.
  const trainer = new convnetjs.Trainer(net, { method: 'sgd', learning_rate: 0.01, momentum: 0.9, batch_size: 64, l2_decay: 0 });

  // Its input is a Vol (Float64Array); filling one is part of feeding it, as in an app.
  const vol = new convnetjs.Vol(28, 28, 1, 0.0);
  const load = (images, i) => {
    const w = vol.w;
    const offset = i * PIXELS;
    for (let p = 0; p < PIXELS; p++) w[p] = images[offset + p];
    return vol;
  };
  const probabilities = (out, i, into) => {
    for (let k = 0; k < 10; k++) into[i * 10 + k] = out.w[k];
  };
  return {
    impl: {
      trainStep(images, labels) {
        let loss = 0;
        for (let i = 0; i < labels.length; i++) loss += trainer.train(load(images, i), labels[i]).cost_loss;
        return loss / labels.length;
      },
      predict(image) {
        const p = new Float32Array(10);
        probabilities(net.forward(load(image, 0), false), 0, p);
        return p;
      },
      predictBatch(images) {
        const n = images.length / PIXELS;
        const p = new Float32Array(n * 10);
        for (let i = 0; i < n; i++) probabilities(net.forward(load(images, i), false), i, p);
        return p;
      },
    },
    info: { implementation: 'ConvNetJS 0.3.0 (pure JS)', version: '0.3.0' },
  };
});
