// The held-out digits behind one cell of the confusion matrix: every held-out digit goes through
// the network's Session (`predict_batch`), and the predictions are kept until its weights change,
// so that clicking one cell after another costs one pass, not one each.
const PIXELS = 784;
const BATCH = 500;
// The most digits a cell shows.
export const CELL_LIMIT = 30;

export class HeldOutPredictions {
  /** `test`: the held-out split, `{ images: Uint8Array(n·784), labels: Uint8Array(n), count: n }`. */
  constructor(test) {
    this.test = test;
    this.cache = null; // { network, version, session, probabilities: Float32Array(n·10), predicted: Uint8Array(n) }
  }

  /** The probabilities of every held-out digit under `network`'s current weights. */
  #predictions(network) {
    const c = this.cache;
    if (c && c.network === network && c.version === network.version && c.session === network.session) return c;
    const { images, count } = this.test;
    const probabilities = new Float32Array(count * 10);
    const predicted = new Uint8Array(count);
    const batch = new Float32Array(BATCH * PIXELS);
    for (let start = 0; start < count; start += BATCH) {
      const n = Math.min(BATCH, count - start);
      const view = n === BATCH ? batch : batch.subarray(0, n * PIXELS);
      for (let i = 0; i < n * PIXELS; i++) view[i] = images[start * PIXELS + i] / 255;
      const p = network.session.predict_batch(view);
      probabilities.set(p, start * 10);
      for (let k = 0; k < n; k++) {
        let best = 0;
        for (let d = 1; d < 10; d++) if (p[k * 10 + d] > p[k * 10 + best]) best = d;
        predicted[start + k] = best;
      }
    }
    this.cache = { network, version: network.version, session: network.session, probabilities, predicted };
    return this.cache;
  }

  /**
   * The held-out digits of label `label` that `network` classifies as `predicted`, most confident
   * first (by the probability of `predicted`): `{ net, label, predicted, step, total, digits }`,
   * `total` how many there are, `digits` at most CELL_LIMIT of `{ index, pixels: Uint8Array(784)
   * (0–255), probabilities: number[10] }`. Throws for a label or prediction that is not a digit.
   */
  cell(network, label, predicted) {
    for (const [name, v] of [['label', label], ['predicted', predicted]]) {
      if (!Number.isInteger(v) || v < 0 || v > 9) throw new Error(`a cell's ${name} is a digit 0–9, got ${JSON.stringify(v)}`);
    }
    const { probabilities, predicted: guesses } = this.#predictions(network);
    const { images, labels, count } = this.test;
    const members = [];
    for (let i = 0; i < count; i++) if (labels[i] === label && guesses[i] === predicted) members.push(i);
    members.sort((a, b) => probabilities[b * 10 + predicted] - probabilities[a * 10 + predicted]);
    const digits = members.slice(0, CELL_LIMIT).map((index) => ({
      index,
      pixels: images.slice(index * PIXELS, (index + 1) * PIXELS),
      probabilities: Array.from(probabilities.subarray(index * 10, index * 10 + 10)),
    }));
    return { net: network.name, label, predicted, step: network.session.progress().step, total: members.length, digits };
  }
}
