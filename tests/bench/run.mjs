// Drives the benchmark page (page/index.html) in headless Chromium and then headless Firefox,
// both the machine's own Debian builds (nothing is downloaded), prints one table comparing
// every implementation and writes it to results/latest.md and results/latest.json; a run of
// fewer browsers or implementations than all writes results/partial.md and partial.json instead,
// so that the full run's results stay.
//
//   node run.mjs --url http://127.0.0.1:PORT [--browsers chromium,firefox]
//                [--only lenet,tfjs-wasm,tfjs-cpu,convnetjs,jaxjs-wasm,jaxjs-webgpu,augmentation,workers]
//                [--rounds 5] [--round 1] [--timeout 300]
//
// The static server is started by .ci/bench; the URL is that of the repository root, whose
// pkg/ holds our wasm package. The server must send COOP/COEP headers (serve.json): only a
// cross-origin-isolated page gets a clock fine enough to time a single predict in microseconds.
import { mkdtempSync, readdirSync, readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const ALL_BROWSERS = 'chromium,firefox';
const ALL_IMPLEMENTATIONS = 'lenet,tfjs-wasm,tfjs-cpu,convnetjs,jaxjs-wasm,jaxjs-webgpu,augmentation,workers';
const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    browsers: { type: 'string', default: ALL_BROWSERS },
    only: { type: 'string', default: ALL_IMPLEMENTATIONS },
    rounds: { type: 'string', default: '5' },
    round: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '420' },
    chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
    firefox: { type: 'string', default: process.env.FIREFOX ?? '/usr/bin/firefox-esr' },
    out: { type: 'string', default: join(here, 'results') },
    strict: { type: 'boolean', default: false },
  },
});
if (!args.url) {
  console.error('usage: node run.mjs --url http://127.0.0.1:PORT (see .ci/bench, which starts the server)');
  process.exit(2);
}
const timeoutMs = Number(args.timeout) * 1000;
// A run of fewer browsers or implementations than all leaves the full run's results alone.
const sameSet = (a, b) => a.split(',').sort().join() === b.split(',').sort().join();
const name = sameSet(args.browsers, ALL_BROWSERS) && sameSet(args.only, ALL_IMPLEMENTATIONS) ? 'latest' : 'partial';
const pageUrl = new URL('tests/bench/page/index.html', args.url.endsWith('/') ? args.url : `${args.url}/`);
pageUrl.search = new URLSearchParams({ only: args.only, rounds: args.rounds, round: args.round, warmup: args.warmup }).toString();
const log = (text) => console.error(text);

// Every browser gets a fresh profile in a temporary folder whose unique path is on its command
// line: that path finds its processes to kill, whatever state the driver is in.
const profiles = new Set();

function killByProfile(dir) {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pid), 'SIGKILL');
    } catch {}
  }
}

function cleanUp(dir) {
  killByProfile(dir);
  rmSync(dir, { recursive: true, force: true });
  profiles.delete(dir);
}

// The drivers' own signal handling closes the browser gracefully, which can itself hang while a
// worker computes; on a signal (from .ci/bench's timeout, or Ctrl-C) kill outright and leave.
for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]]) {
  process.on(signal, () => {
    for (const dir of [...profiles]) cleanUp(dir);
    process.exit(code);
  });
}
const noSignals = { handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false };

async function withBrowser(prefix, launch, use) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  profiles.add(dir);
  try {
    const browser = await launch(dir);
    try {
      return await use(browser);
    } finally {
      // A close that hangs is cut short: the processes are killed below either way.
      await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 15_000))]);
    }
  } finally {
    cleanUp(dir);
  }
}

// Waits for the page to finish. Polls from Node rather than with the drivers' waitForFunction,
// whose in-page polling differs between them; a page that never finishes is a timeout, not a hang.
async function collect(evaluate, browser) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await evaluate();
    if (state?.done) return state;
    if (Date.now() > deadline) throw new Error(`${browser}: the page did not finish within ${args.timeout} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// The 1-minute load average while each implementation ran: the page logs "[key] starting"
// before each, and a sampler files the load under the implementation running at the time.
const loadByKey = new Map();
let runningKey = null;
function track(text) {
  const started = /^\[([\w-]+)\] starting/.exec(text);
  if (!started) return;
  runningKey = started[1];
  loadByKey.set(runningKey, [loadavg()[0]]);
}
const loadSampler = setInterval(() => runningKey && loadByKey.get(runningKey)?.push(loadavg()[0]), 2000);
loadSampler.unref();

const readState = () => (window.bench ? JSON.parse(JSON.stringify(window.bench)) : null);

async function runChromium() {
  const { chromium } = await import('playwright-core');
  return withBrowser(
    'bench-chromium-',
    (profile) =>
      chromium.launchPersistentContext(profile, {
        executablePath: args.chromium,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 60_000,
        ...noSignals,
      }),
    async (context) => {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('console', (m) => {
        track(m.text());
        log(`  chromium | ${m.text()}`);
      });
      page.on('pageerror', (e) => log(`  chromium | page error: ${e.message}`));
      await page.goto(pageUrl.href, { timeout: 60_000 });
      const state = await collect(() => page.evaluate(readState), 'chromium');
      // The user agent string hides the minor version numbers; the driver knows them.
      const version = context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent)).match(/Chrom(?:e|ium)\/([\d.]+)/)?.[1] ?? '';
      return { ...state, browser: 'Chromium', version };
    },
  );
}

async function runFirefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  return withBrowser(
    'bench-firefox-',
    (profile) =>
      puppeteer.launch({
        browser: 'firefox',
        executablePath: args.firefox,
        headless: true,
        userDataDir: profile,
        timeout: 60_000,
        protocolTimeout: timeoutMs + 60_000,
        ...noSignals,
        extraPrefsFirefox: {
          // No update checks, telemetry or remote settings during the measurement.
          'app.update.enabled': false,
          'datareporting.policy.dataSubmissionEnabled': false,
          'toolkit.telemetry.enabled': false,
          'services.settings.server': 'http://127.0.0.1:9/',
          'network.captive-portal-service.enabled': false,
          // Firefox coarsens performance.now() to 20 µs even when cross-origin isolated (the
          // "unconditional" clamp): too coarse to time a predict of tens of µs. Chromium's
          // isolated clock is 5 µs.
          'privacy.reduceTimerPrecision': false,
          'privacy.reduceTimerPrecision.unconditional': false,
        },
      }),
    async (browser) => {
      const page = await browser.newPage();
      page.on('console', (m) => {
        track(m.text());
        log(`  firefox  | ${m.text()}`);
      });
      page.on('pageerror', (e) => log(`  firefox  | page error: ${e.message}`));
      await page.goto(pageUrl.href, { timeout: 60_000 });
      const state = await collect(() => page.evaluate(readState), 'firefox');
      const version = (await browser.version()).replace(/^firefox\//i, '');
      return { ...state, browser: 'Firefox', version };
    },
  );
}

const runners = { chromium: runChromium, firefox: runFirefox };
const runs = [];
const failures = [];
for (const name of args.browsers.split(',')) {
  if (!runners[name]) {
    failures.push(`unknown browser ${name}`);
    continue;
  }
  log(`== ${name}: ${pageUrl.href}`);
  // The load average tells afterwards whether other work shared the CPU during the run.
  const load = [loadavg()[0]];
  const sampler = setInterval(() => load.push(loadavg()[0]), 2000);
  try {
    loadByKey.clear();
    const run = await runners[name]();
    runningKey = null;
    for (const result of run.results) {
      const samples = loadByKey.get(result.key) ?? [];
      if (samples.length) result.load_average = { mean: samples.reduce((a, b) => a + b, 0) / samples.length, max: Math.max(...samples) };
    }
    runs.push({ ...run, load_average: { mean: load.reduce((a, b) => a + b, 0) / load.length, max: Math.max(...load) } });
    for (const e of run.errors) failures.push(`${name} / ${e.key}: ${e.error.split('\n')[0]}`);
  } catch (error) {
    failures.push(`${name}: ${error.message.split('\n')[0]}`);
    log(`${name} failed: ${error.stack}`);
  } finally {
    clearInterval(sampler);
  }
}

// ---------------------------------------------------------------------------------------------
// The table: each peer beside ours in the same browser, with how many times faster ours is.

const fmt = (x, digits) => (x == null || !Number.isFinite(x) ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const times = (x) => (x == null || !Number.isFinite(x) ? '—' : `${x >= 100 ? fmt(x, 0) : x >= 10 ? fmt(x, 1) : fmt(x, 2)}×`);
const predictMs = (ms) => (ms == null ? '—' : ms < 0.1 ? fmt(ms, 4) : ms < 10 ? fmt(ms, 3) : fmt(ms, 1));

// The augmentation rows are ours too (the app's training path, on and off in turn): no ratios.
const isOurs = (key) => key === 'lenet' || key.startsWith('augmentation') || key.startsWith('workers');
const rows = [];
for (const run of runs) {
  const ours = run.results.find((r) => r.key === 'lenet');
  const results = run.results.flatMap((r) =>
    r.key === 'augmentation'
      ? [
          { ...r, key: 'augmentation-on' },
          { ...r, key: 'augmentation-off', implementation: r.implementation.replace('augmentation on', 'augmentation off'), train: r.train_without_augmentation },
        ]
      : r.key === 'workers'
        ? [
            { ...r, key: 'workers-1', implementation: r.implementation.replace(/\d+ workers$/, '1 worker'), train: r.train_one_worker },
            { ...r, key: `workers-${r.workers}` },
          ]
        : [r],
  );
  for (const r of results) {
    const peer = !isOurs(r.key) && ours;
    rows.push({
      key: r.key,
      implementation: r.implementation,
      browser: run.browser,
      train: r.train.examples_per_s,
      predict: r.predict?.median_ms,
      batch: r.predict_batch?.images_per_s,
      ratioTrain: peer ? ours.train.examples_per_s / r.train.examples_per_s : null,
      ratioPredict: peer && r.predict ? r.predict.median_ms / ours.predict.median_ms : null,
      ratioBatch: peer && r.predict_batch ? ours.predict_batch.images_per_s / r.predict_batch.images_per_s : null,
      load: r.load_average?.mean,
    });
  }
}
const header = ['implementation', 'browser', 'train examples/s', 'predict ms (median of 1,000)', 'predict_batch images/s', 'ours ÷ peer (train)', 'ours ÷ peer (predict)', 'ours ÷ peer (predict_batch)', 'load avg'];
const body = rows.map((r) => [r.implementation, r.browser, fmt(r.train, r.train < 100 ? 1 : 0), predictMs(r.predict), fmt(r.batch, 0), times(r.ratioTrain), times(r.ratioPredict), times(r.ratioBatch), fmt(r.load, 1)]);
const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
const numeric = (i) => i >= 2;
const line = (cells) => `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
const table = [line(header), `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');

// The issue's targets, checked on this run's figures.
const find = (browser, key) => rows.find((r) => r.browser === browser && r.key === key);
const checks = [];
const ours = find('Chromium', 'lenet');
if (ours) {
  const check = (what, ok, value) => checks.push({ what, ok, value });
  check('Chromium: our training ≥ 4,000 examples/s', ours.train >= 4000, `${fmt(ours.train, 0)} examples/s`);
  const tw = find('Chromium', 'tfjs-wasm');
  if (tw) check('Chromium: ≥ 4× TF.js wasm (kernel added) in training', tw.ratioTrain >= 4, times(tw.ratioTrain));
  const cj = find('Chromium', 'convnetjs');
  if (cj) check('Chromium: ≥ 30× ConvNetJS in training', cj.ratioTrain >= 30, times(cj.ratioTrain));
  check('Chromium: predict ≤ 0.05 ms per image', ours.predict <= 0.05, `${predictMs(ours.predict)} ms`);
  check('Chromium: predict_batch ≥ 20,000 images/s', ours.batch >= 20000, `${fmt(ours.batch, 0)} images/s`);
}
// Augmentation's share of a training step: 1 − (step time without) / (step time with).
const augmentation = runs
  .map((run) => {
    const on = find(run.browser, 'augmentation-on');
    const off = find(run.browser, 'augmentation-off');
    return on && off ? { browser: run.browser, on: on.train, off: off.train, share: 1 - on.train / off.train } : null;
  })
  .filter(Boolean);
const augmentationText = augmentation
  .map((a) => `- ${a.browser}: Session, page recipe, batch 64, rounds on and off in turn: ${fmt(a.on, 0)} examples/s with augmentation, ${fmt(a.off, 0)} without: augmentation takes ${fmt(a.share * 100, 1)} % of a training step`)
  .join('\n');
const augmentationChromium = augmentation.find((a) => a.browser === 'Chromium');
if (augmentationChromium) {
  checks.push({ what: 'Chromium: augmentation ≤ 15 % of a training step', ok: augmentationChromium.share <= 0.15, value: `${fmt(augmentationChromium.share * 100, 1)} %` });
}
// Data-parallel training: the app's pool on 2 workers against 1, in the same run.
const workers = runs
  .map((run) => {
    const one = find(run.browser, 'workers-1');
    const two = find(run.browser, 'workers-2');
    return one && two ? { browser: run.browser, one: one.train, two: two.train, ratio: two.train / one.train } : null;
  })
  .filter(Boolean);
const workersText = workers
  .map((w) => `- ${w.browser}: the app's pool, page recipe, batch 64 (4 shards of 16), rounds on 1 and 2 workers in turn: ${fmt(w.one, 0)} examples/s on 1 worker, ${fmt(w.two, 0)} on 2: ${times(w.ratio)}`)
  .join('\n');
for (const w of workers) checks.push({ what: `${w.browser}: 2 workers ≥ 1.8× one worker`, ok: w.ratio >= 1.8, value: times(w.ratio) });
const skipped = runs.flatMap((run) => (run.skipped ?? []).map((s) => `- ${run.browser}: ${s.skipped}`));
const oursFirefox = find('Firefox', 'lenet');
const checksText = checks.map((c) => `- ${c.ok ? 'met' : 'NOT MET'}: ${c.what} — ${c.value}`).join('\n');

const cpu = (() => {
  try {
    const model = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1];
    return `${model ?? cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores`;
  } catch {
    return `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores`;
  }
})();
let dataSource = 'unknown';
try {
  const meta = JSON.parse(readFileSync(join(here, 'data', 'meta.json'), 'utf8'));
  dataSource = `${meta.count.toLocaleString('en-US')} real MNIST digits from ${meta.source}`;
} catch {}
const first = runs[0]?.results[0];
const notes = [
  `- Machine: ${cpu}. Browsers: ${runs.map((r) => `${r.browser} ${r.version}`).join(', ') || 'none'} (headless).`,
  `- Data: ${dataSource}. Batch 64, momentum SGD (lr 0.01, momentum 0.9, no weight decay) everywhere; ConvNetJS takes one example per call and updates every 64.`,
  `- Each implementation runs in its own dedicated module Web Worker, one thread (TF.js's wasm backend is kept to its single-threaded SIMD build).`,
  `- The page is cross-origin isolated (COOP/COEP), for a 5 µs clock in Chromium; Firefox's profile turns off its timer coarsening (privacy.reduceTimerPrecision and its unconditional 20 µs clamp), which changes the clock, not the speed.`,
  `- Training: ${args.warmup} s warm-up, then ${args.rounds} timed rounds of at least ${args.round} s and one step each; the table gives the fastest round (${name}.json also has the mean over all rounds), since on a shared machine other work only slows a round down. predict: 1,000 one-image calls, each timed, median. predict_batch: 1,000 images per call, fastest of at least 3 calls and 2 s. Every figure includes copying images in and probabilities out.`,
  `- jax-js: the same network with jax-js's own ops (lax.conv, lax.reduceWindow with max, nn.logSoftmax) and one jit-compiled function for the whole step (valueAndGrad and the momentum update); its wasm backend is kept to the calling thread (it would otherwise start a worker pool on this cross-origin-isolated page) and results are read back with dataSync. Its WebGPU row runs only where the browser offers an adapter.`,
  `- Augmentation rows: ours through the app's own training path (two wasm Sessions on the page's recipe from defaults().settings, batch 64, each drawing its own batches), one with the recipe's augmentation and one without, timed in alternating rounds an eighth of the usual length (eight times as many); training only.`,
  `- Worker rows: ours through the app's data-parallel path (www/src/worker/pool.js and its gradient workers, replica.js), two Sessions on the page's recipe at batch 64 (4 shards of 16), one stepping alone as the app does on 1 worker and one over the pool of 2 workers (shards through a SharedArrayBuffer, this page being cross-origin isolated; through messages otherwise, as its progress line says), timed in alternating rounds an eighth of the usual length after a 3 s warm-up of each; training only.`,
  `- TF.js wasm: 4.22 registers no Conv2DBackpropFilter for its wasm backend, so it cannot train a conv net as shipped; the benchmark adds that kernel (page/tfjs-conv2d-backprop-filter.mjs): im2col in JavaScript, then the backend's own BatchMatMul.`,
  first ? `- Clock: performance.now() resolution in the worker ${fmt(first.timer_resolution_ms * 1000, 1)} µs (${runs.map((r) => `${r.browser}: ${fmt((r.results[0]?.timer_resolution_ms ?? NaN) * 1000, 1)} µs`).join(', ')}); cross-origin isolated: ${first.cross_origin_isolated}.` : null,
  `- load avg (table): the 1-minute load average while that implementation ran (mean of samples every 2 s). Over each whole browser run (mean, max): ${runs.map((r) => `${r.browser} ${fmt(r.load_average.mean, 1)}, ${fmt(r.load_average.max, 1)}`).join('; ')}, on ${cpus().length} cores. The benchmark itself keeps about one core busy; much more means other work shared the CPU and the figures are lower for it.`,
  oursFirefox ? `- Firefox, ours: ${fmt(oursFirefox.train, 0)} training examples/s, predict ${predictMs(oursFirefox.predict)} ms, predict_batch ${fmt(oursFirefox.batch, 0)} images/s.` : null,
].filter(Boolean);

const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const markdown = [
  `# LeNet-5 in the browser: lenet (wasm) vs TF.js, ConvNetJS and jax-js`,
  '',
  `Produced by \`.ci/bench\` on ${date}. ours ÷ peer: how many times faster ours is in the same browser (train and predict_batch: throughput ratio; predict: latency ratio).`,
  '',
  table,
  '',
  '## Targets',
  '',
  checksText || '- not checked: no Chromium figures for ours',
  '',
  ...(augmentationText ? ['## Augmentation', '', augmentationText, ''] : []),
  ...(workersText ? ['## Workers', '', workersText, ''] : []),
  ...(skipped.length ? ['## Not measured', '', ...skipped, ''] : []),
  '## How it was measured',
  '',
  ...notes,
  ...(failures.length ? ['', '## Failures', '', ...failures.map((f) => `- ${f}`)] : []),
  '',
].join('\n');

mkdirSync(args.out, { recursive: true });
writeFileSync(join(args.out, `${name}.md`), markdown);
writeFileSync(join(args.out, `${name}.json`), JSON.stringify({ date, page: pageUrl.href, machine: cpu, runs, failures, checks }, null, 2) + '\n');

console.log(`\n${table}\n\n${checksText}\n`);
if (augmentationText) console.log(`Augmentation:\n${augmentationText}\n`);
if (workersText) console.log(`Workers:\n${workersText}\n`);
if (skipped.length) console.log(`Not measured:\n${skipped.join('\n')}\n`);
if (failures.length) console.log(`Failures:\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
console.log(`Written to ${join(args.out, `${name}.md`)} and ${name}.json`);
const missed = checks.some((c) => !c.ok);
process.exit(failures.length || runs.length === 0 ? 1 : args.strict && missed ? 3 : 0);
