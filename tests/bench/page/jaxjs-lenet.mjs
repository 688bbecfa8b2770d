// The same LeNet-5 as ours, written with jax-js (`@jax-js/jax`): NCHW, conv 6@5×5 pad 2 → ReLU →
// max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → 400 → 120 → 84 → 10, softmax cross-entropy
// averaged over the batch, momentum SGD (as the other implementations here) — 61,706 parameters.
// One jit-compiled function does the whole training step (forward, backward by `valueAndGrad`,
// update), so jax-js can fuse what it can; prediction is a second jit-compiled function.
//
// jax-js arrays are reference counted and every function takes ownership of its arguments:
// `tree.ref(params)` lends the parameters to a call that must not consume them.

// He-uniform weights for the layers that feed a ReLU, LeCun-uniform for the output layer and
// zero biases, as ours; a small deterministic generator (the figures must not depend on the
// seed, only the starting point of a short run does).
function initialWeights(seed) {
  let state = (seed ^ 0x9e3779b9) >>> 0;
  const uniform = () => {
    // xorshift32: quality is irrelevant for a starting point, only repeatability matters.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
  const tensor = (shape, bound) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = (2 * uniform() - 1) * bound;
    return { shape, values };
  };
  const he = (fanIn) => Math.sqrt(6 / fanIn);
  return {
    c1w: tensor([6, 1, 5, 5], he(25)),
    c1b: tensor([6], 0),
    c2w: tensor([16, 6, 5, 5], he(150)),
    c2b: tensor([16], 0),
    f1w: tensor([400, 120], he(400)),
    f1b: tensor([120], 0),
    f2w: tensor([120, 84], he(120)),
    f2b: tensor([84], 0),
    f3w: tensor([84, 10], Math.sqrt(1 / 84)),
    f3b: tensor([10], 0),
  };
}

export const PARAMETERS = 61_706;

/**
 * Builds the network on `device` ('wasm' or 'webgpu'; `jax.init` must have started it).
 * Returns the benchmark adapter: trainStep(images, labels) → loss, predict(image) →
 * Float32Array(10), predictBatch(images) → Float32Array(n × 10). On WebGPU reading a result
 * back is asynchronous, so there every method returns a promise.
 */
export function makeJaxLenet(jax, { device, learningRate = 0.01, momentum = 0.9, seed = 0 }) {
  const { jit, lax, nn, numpy: np, tree, valueAndGrad } = jax;
  jax.defaultDevice(device);

  const weights = initialWeights(seed);
  let params = Object.fromEntries(Object.entries(weights).map(([k, t]) => [k, np.array(t.values).reshape(t.shape)]));
  let velocity = Object.fromEntries(Object.entries(weights).map(([k, t]) => [k, np.zeros(t.shape)]));
  const count = Object.values(weights).reduce((n, t) => n + t.values.length, 0);
  if (count !== PARAMETERS) throw new Error(`jax-js LeNet-5 has ${count} parameters, not ${PARAMETERS}`);

  const maxPool2 = (x) => lax.reduceWindow(x, (window) => np.max(window), [2, 2], [2, 2]);
  const bias = (b, channels) => b.reshape([1, channels, 1, 1]);
  // Every parameter is used once, so no `.ref` is needed inside.
  const logits = (p, x) => {
    const n = x.shape[0];
    let h = nn.relu(lax.conv(x, p.c1w, [1, 1], [[2, 2], [2, 2]]).add(bias(p.c1b, 6)));
    h = maxPool2(h);
    h = nn.relu(lax.conv(h, p.c2w, [1, 1], 'VALID').add(bias(p.c2b, 16)));
    h = maxPool2(h).reshape([n, 400]);
    h = nn.relu(np.matmul(h, p.f1w).add(p.f1b));
    h = nn.relu(np.matmul(h, p.f2w).add(p.f2b));
    return np.matmul(h, p.f3w).add(p.f3b);
  };
  const loss = (p, x, y) => {
    const n = x.shape[0];
    return nn.logSoftmax(logits(p, x)).mul(nn.oneHot(y, 10)).sum().mul(-1 / n);
  };
  const step = jit((p, v, x, y) => {
    const [value, grads] = valueAndGrad(loss)(tree.ref(p), x, y);
    const v2 = tree.map((vi, gi) => vi.mul(momentum).add(gi), v, grads);
    const p2 = tree.map((pi, vi) => pi.sub(vi.mul(learningRate)), p, tree.ref(v2));
    return [value, p2, v2];
  });
  const probabilities = jit((p, x) => nn.softmax(logits(p, x)));

  const images = (pixels) => np.array(pixels).reshape([pixels.length / 784, 1, 28, 28]);
  // WebGPU results can only be read back asynchronously; the wasm backend's synchronously.
  const async = device === 'webgpu';
  const read = (array) => (async ? array.data() : array.dataSync());

  const trainStep = (pixels, labels) => {
    const y = np.array(Int32Array.from(labels), { dtype: np.int32 });
    const [value, p2, v2] = step(params, velocity, images(pixels), y);
    params = p2;
    velocity = v2;
    return async ? read(value).then((d) => d[0]) : read(value)[0];
  };
  const predict = (pixels) => read(probabilities(tree.ref(params), images(pixels)));
  return { trainStep, predict, predictBatch: predict, async };
}
