// TensorFlow.js 4.22 with its wasm backend (SIMD, one thread) or its cpu backend (plain JS),
// the same LeNet-5 written with tf.layers and trained with momentum SGD.
import { serve } from './harness.mjs';
import { checkConv2DBackpropFilter, registerConv2DBackpropFilter } from './tfjs-conv2d-backprop-filter.mjs';

const modules = new URL('../node_modules/', import.meta.url);

// The npm packages' ES module builds import bare specifiers ('@tensorflow/tfjs-core', and
// Node's 'fs' for the wasm backend) that a browser cannot resolve without a bundler; their UMD
// builds, run as global code, set globalThis.tf as a <script> tag would.
async function loadScript(path) {
  const url = new URL(path, modules);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  (0, eval)(`${await response.text()}\n//# sourceURL=${url}`);
}

serve(async ({ backend }) => {
  await loadScript('@tensorflow/tfjs/dist/tf.min.js');
  const tf = globalThis.tf;
  let extra = '';
  if (backend === 'wasm') {
    await loadScript('@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js');
    // One thread, like every other implementation here: the page is cross-origin isolated
    // (for a fine clock), which would otherwise let the backend start a thread pool.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    tf.wasm.setWasmPaths(new URL('@tensorflow/tfjs-backend-wasm/dist/', modules).href);
    registerConv2DBackpropFilter(tf);
    extra = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? ', SIMD' : ', no SIMD';
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to start`);
  await tf.ready();
  if (backend === 'wasm') checkConv2DBackpropFilter(tf);

  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 6, kernelSize: 5, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 5, padding: 'valid', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 120, activation: 'relu' }),
      tf.layers.dense({ units: 84, activation: 'relu' }),
      tf.layers.dense({ units: 10 }),
    ],
  });
  const optimizer = tf.train.momentum(0.01, 0.9);

  const probabilities = (images) =>
    tf.tidy(() => tf.softmax(model.predict(tf.tensor4d(images, [images.length / 784, 28, 28, 1]))).dataSync());
  return {
    impl: {
      trainStep(images, labels) {
        const loss = tf.tidy(() => {
          const x = tf.tensor4d(images, [labels.length, 28, 28, 1]);
          const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
          return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true })), true);
        });
        const value = loss.dataSync()[0];
        loss.dispose();
        return value;
      },
      predict: probabilities,
      predictBatch: probabilities,
    },
    info: {
      implementation:
        backend === 'wasm' ? `TF.js ${tf.version.tfjs}, wasm backend${extra} + Conv2DBackpropFilter added` : `TF.js ${tf.version.tfjs}, cpu backend`,
      version: tf.version.tfjs,
    },
  };
});
