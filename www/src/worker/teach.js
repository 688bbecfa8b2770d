// Teaching a network a person's handwriting: fine-tuning, in the worker, on their digits mixed
// with MNIST replay (the core's `fine_tune_data`), with the core's augmentation, for a fixed
// number of steps in slices, then before → after accuracy on the person's held-out digits and on
// MNIST's. The network is tuned in a separate Session started from its weights, so that its own
// optimizer state and data order are untouched; the tuned weights are then loaded into it.
import { Session, fine_tune_data } from 'lenet-wasm';

// The budget: at most this many steps and at most BUDGET_MS of stepping (under 2 s of worker
// time on two cores). Replay needs steps: the first few move the network toward the person's
// digits, the later ones recover MNIST.
export const TEACH_STEPS = 100;
const BUDGET_MS = 1500;
// Replay digits sampled, and the share of the person's digits (repeated) in what is trained on:
// about one in thirty, so that a style close to an MNIST digit (a 1 with a long flag, like a 7) is
// learnt without unlearning that digit.
const REPLAY_COUNT = 512;
const MINE_SHARE = 0.02;
// A low constant rate: the network is already good and must not forget MNIST.
const TEACH_SETTINGS = { learning_rate: 0.003, schedule: 'constant', batch_size: 32, seed: 0 };
const SLICE_MS = 40;
const PIXELS = 784;

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Share of `labels` (indices) held out for measuring: every 5th of each label, and at least one
 * of each label that has two or more. */
export function holdOut(labels) {
  const byLabel = new Map();
  labels.forEach((label, i) => byLabel.set(label, [...(byLabel.get(label) ?? []), i]));
  const held = new Set();
  for (const indices of byLabel.values()) {
    if (indices.length < 2) continue;
    indices.forEach((index, k) => {
      if (k % 5 === 4) held.add(index);
    });
    if (!indices.some((i) => held.has(i))) held.add(indices[indices.length - 1]);
  }
  return held;
}

function subset(images, labels, indices) {
  const out = { images: new Uint8Array(indices.length * PIXELS), labels: new Uint8Array(indices.length) };
  indices.forEach((i, k) => {
    out.images.set(images.subarray(i * PIXELS, (i + 1) * PIXELS), k * PIXELS);
    out.labels[k] = labels[i];
  });
  return out;
}

/** Share of `digits` the session reads right (null for none). */
function accuracyOn(session, digits) {
  const n = digits.labels.length;
  if (!n) return null;
  const probs = session.predict_batch(Float32Array.from(digits.images, (b) => b / 255));
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let d = 1; d < 10; d++) if (probs[i * 10 + d] > probs[i * 10 + best]) best = d;
    if (best === digits.labels[i]) right++;
  }
  return right / n;
}

/** MNIST held-out accuracy, in chunks with pauses; returns [accuracy, worker ms]. */
async function mnistAccuracy(session) {
  session.start_evaluation();
  let ms = 0;
  for (;;) {
    const t0 = performance.now();
    const report = session.evaluate(250);
    ms += performance.now() - t0;
    if (report) return [report.accuracy, ms];
    await pause();
  }
}

/**
 * The TEACH handler: `{ net, images: Uint8Array(n·784), labels: Uint8Array(n) }` → `{ before:
 * { mine, mnist }, after: { mine, mnist }, held, steps, teachMs, evalMs }`. `prepare(network)`
 * gives the network with its session holding MNIST's digits and stops its training.
 */
export function createTeach({ prepare, digits }) {
  let busy = false;
  return async ({ net, images, labels }) => {
    if (busy) throw new Error('the network is already being taught');
    if (!(images instanceof Uint8Array) || !(labels instanceof Uint8Array) || images.length !== labels.length * PIXELS) {
      throw new Error('teaching needs n × 784 pixel bytes and n labels');
    }
    if (!labels.length) throw new Error('there are no digits of yours to learn from: label some first');
    busy = true;
    let tuner = null;
    try {
      const n = prepare(net);
      const held = holdOut(labels);
      const all = [...labels.keys()];
      const heldOut = subset(images, labels, all.filter((i) => held.has(i)));
      const learn = subset(images, labels, all.filter((i) => !held.has(i)));
      const mnistBefore = (await mnistAccuracy(n.session))[0];
      const mineBefore = accuracyOn(n.session, heldOut);
      const mixed = fine_tune_data(learn.images, learn.labels, digits.train.images, digits.train.labels, REPLAY_COUNT, MINE_SHARE, labels.length);
      tuner = Session.from_safetensors(n.session.to_safetensors(), { ...n.session.settings(), ...TEACH_SETTINGS });
      tuner.set_train_data(mixed.images, mixed.labels);
      let teachMs = 0;
      let steps = 0;
      while (steps < TEACH_STEPS && teachMs < BUDGET_MS) {
        const start = performance.now();
        while (steps < TEACH_STEPS && performance.now() - start < SLICE_MS && teachMs + performance.now() - start < BUDGET_MS) {
          const result = tuner.step();
          if (result.diverged !== null) throw new Error(`teaching diverged: ${result.diverged}`);
          steps++;
        }
        teachMs += performance.now() - start;
        await pause();
      }
      // Unchanged if this throws; the network is the tuned one from here on.
      n.session.load_safetensors(tuner.to_safetensors());
      n.changed();
      const [mnistAfter, evalMs] = await mnistAccuracy(n.session);
      const mineAfter = accuracyOn(n.session, heldOut);
      return {
        net,
        before: { mine: mineBefore, mnist: mnistBefore },
        after: { mine: mineAfter, mnist: mnistAfter },
        held: heldOut.labels.length,
        learnt: learn.labels.length,
        mixed: mixed.count,
        steps,
        teachMs,
        evalMs,
      };
    } finally {
      tuner?.free();
      busy = false;
    }
  };
}
