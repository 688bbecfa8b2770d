// Teaching a network a person's handwriting, in the worker: the recipe (which digits are held
// out, the mix with MNIST replay, the settings, the steps) is the core's `Teaching`, the same
// code `lenet teach` measures on real writers. Here only the time slicing, the messages and the
// MNIST evaluation before and after: the network is tuned as a copy, then loaded into its session.
import { Teaching } from 'lenet-wasm';

// Stepping stops after BUDGET_MS even if the recipe's steps are not all taken (under 2 s of
// worker time on two cores; the recipe's 100 steps take about 0.7 s).
const BUDGET_MS = 1500;
const SLICE_MS = 40;
const PIXELS = 784;

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

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
      const mnistBefore = (await mnistAccuracy(n.session))[0];
      tuner = new Teaching(n.session, images, labels, digits.train.images, digits.train.labels);
      const mineBefore = tuner.held_out_accuracy() ?? null;
      let teachMs = 0;
      while (!tuner.is_done() && teachMs < BUDGET_MS) {
        const start = performance.now();
        const inSlice = () => performance.now() - start < SLICE_MS && teachMs + performance.now() - start < BUDGET_MS;
        while (inSlice() && tuner.step()) {
          // Each step is the core's; the slice ends on time or when the recipe's steps are taken.
        }
        teachMs += performance.now() - start;
        await pause();
      }
      const mineAfter = tuner.held_out_accuracy() ?? null;
      const counts = tuner.counts();
      const steps = tuner.steps_taken();
      // Unchanged if this throws; the network is the tuned one from here on.
      tuner.apply_to(n.session);
      n.changed();
      const [mnistAfter, evalMs] = await mnistAccuracy(n.session);
      return {
        net,
        before: { mine: mineBefore, mnist: mnistBefore },
        after: { mine: mineAfter, mnist: mnistAfter },
        held: counts.held,
        learnt: counts.learnt,
        mixed: counts.mixed,
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
