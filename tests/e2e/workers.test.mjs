// Training over several workers: k steps from a fixed seed give the same weights, byte for byte,
// on 1 worker and on 2, with the shards shared in memory (the page cross-origin isolated, as the
// server's COOP and COEP headers make it) and sent in messages (the same page without those
// headers); and a gradient worker that dies in the middle of a step is replaced, the step is
// computed again and the weights are those of the run where nothing failed. Uses the page's
// ?test-hooks (exact step counts, the weights, the worker count) and ?test-crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openBrowser, waitUntilReady, assertClean, BASE_URL } from './browser.mjs';
import { balancedShares, shares } from '../../www/src/worker/pool.js';

const SEED = 11;
const K = Number(process.env.E2E_WORKERS_STEPS ?? 30);
const PATH = '?test-hooks&test-crash';

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

/** The page, cross-origin isolated as served or (`isolated: false`) with COOP and COEP removed. */
async function open({ isolated }) {
  const browser = await openBrowser();
  if (!isolated) {
    await browser.context.route('**/*', async (route) => {
      if (route.request().resourceType() !== 'document') return route.continue();
      const response = await route.fetch();
      const headers = { ...response.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response, headers });
    });
  }
  await browser.page.goto(BASE_URL + PATH);
  await waitUntilReady(browser.page);
  if (!isolated) {
    // Under Vite's dev server (E2E_DEV), a page answered by the test's route is refused the
    // connection to the dev server's WebSocket (live reload), which nothing here needs.
    const devNoise = /WebSocket connection to 'ws:|\[vite\] failed to connect to websocket/;
    browser.problems.splice(0, Infinity, ...browser.problems.filter((p) => !devNoise.test(p)));
  }
  assert.equal(await browser.page.evaluate(() => self.crossOriginIsolated), isolated);
  return browser;
}

/** Trains K steps from SEED on `workers` workers; the weights and the wall time. */
async function run(page, workers, { crashAfter = null, how = 'throw', crashes = 1 } = {}) {
  const chosen = await page.evaluate((n) => window.lenetPage.setWorkers(n), workers);
  assert.equal(chosen.size, workers);
  await page.evaluate((seed) => window.lenetPage.resetTraining(seed), SEED);
  const t0 = Date.now();
  if (crashAfter !== null) {
    await page.evaluate((n) => window.lenetPage.trainSteps(n), crashAfter);
    await page.evaluate(([h, n]) => window.lenetPage.crashGradientWorker(h, n), [how, crashes]);
  }
  const state = await page.evaluate((n) => window.lenetPage.trainSteps(n), K - (crashAfter ?? 0));
  const ms = Date.now() - t0;
  assert.equal(state.step, K);
  // Choosing the same count again reports how many steps were taken over several workers.
  const after = await page.evaluate(() => window.lenetPage.workers());
  if (crashes === 1) {
    assert.equal(after.steps - chosen.steps, workers > 1 ? K : 0, 'every step, and only once, over the workers');
  }
  const weights = Buffer.from(await page.evaluate(() => window.lenetPage.exportWeights()), 'base64');
  const polled = after.polled - chosen.polled;
  const unposted = after.unposted - chosen.unposted;
  return { weights, ms, examplesPerSec: (K * state.batchSize * 1000) / ms, state, polled, unposted };
}

let reference = null;

/** Prints examples/s on 1 and 2 workers for each batch size of E2E_WORKERS_SPEED (e.g. "32,128"):
 * the best of three runs of E2E_WORKERS_SPEED_STEPS steps, the gradient worker already started. */
async function measureSpeed(page) {
  const steps = Number(process.env.E2E_WORKERS_SPEED_STEPS ?? 150);
  const { loadavg } = await import('node:os');
  for (const batch of process.env.E2E_WORKERS_SPEED.split(',')) {
    await page.selectOption('#batch', batch);
    await page.waitForFunction((b) => window.lenetPage.trainingState()?.batchSize === Number(b), batch);
    const speed = async (workers) => {
      await page.evaluate((n) => window.lenetPage.setWorkers(n), workers);
      await page.evaluate(() => window.lenetPage.trainSteps(5));
      let best = 0;
      for (let round = 0; round < 3; round++) {
        const t0 = Date.now();
        await page.evaluate((n) => window.lenetPage.trainSteps(n), steps);
        best = Math.max(best, (steps * Number(batch) * 1000) / (Date.now() - t0));
      }
      return best;
    };
    const load = loadavg()[0].toFixed(1);
    const [two, one] = [await speed(2), await speed(1)];
    console.log(
      `# batch ${batch}, ${steps} steps, best of 3: 1 worker ${one.toFixed(0)} examples/s, 2 workers ${two.toFixed(0)} ` +
        `(${(two / one).toFixed(2)}×); load average ${load} before, ${loadavg()[0].toFixed(1)} after`,
    );
  }
}

test("a step's shards follow the workers' paces: equal ones split evenly, a slower worker takes fewer, each one at least", () => {
  for (let parts = 1; parts <= 4; parts++) {
    for (let count = parts; count <= 16; count++) {
      assert.deepEqual(balancedShares(count, Array(parts).fill(1.7)), shares(count, parts), `${count} shards over ${parts}`);
    }
  }
  // Two workers, 4 shards: the gradient worker's stretches at 1.7 times the training worker's
  // time per shard move one shard over; under 1.5 times they would not shorten the step.
  assert.deepEqual(balancedShares(4, [1.7, 2.9]), [[0, 3], [3, 4]]);
  assert.deepEqual(balancedShares(4, [1.7, 2.4]), [[0, 2], [2, 4]]);
  assert.deepEqual(balancedShares(4, [2.9, 1.7]), [[0, 1], [1, 4]]);
  assert.deepEqual(balancedShares(4, [1.7, 1000]), [[0, 3], [3, 4]]);
  assert.deepEqual(balancedShares(8, [2, 1, 1, 4]), [[0, 1], [1, 4], [4, 7], [7, 8]]);
  // Fewer shards than workers (the pool never asks): the last ones get none, as with `shares`.
  assert.deepEqual(balancedShares(2, [1, 5, 1]), shares(2, 3));
});

test(`${K} steps from seed ${SEED}: the same weights on 1 and 2 workers, shards in a SharedArrayBuffer`, async () => {
  const browser = await open({ isolated: true });
  try {
    const { page } = browser;
    const status = page.locator('#workers-status');
    const one = await run(page, 1);
    await page.waitForFunction(() => document.querySelector('#workers-status').dataset.workers === '1');
    const two = await run(page, 2);
    assert.equal(await status.getAttribute('data-transport'), 'shared');
    assert.match(await status.textContent(), /2 workers, shards shared in memory \(SharedArrayBuffer\)/);
    assert.equal(await page.locator('#workers').inputValue(), '2');
    // With a core for each worker, the training worker finds the shares by polling shared
    // memory (pool.js, CONTROL) rather than waiting asleep for their messages: on all but the
    // slowest steps, such as the first, which loads the gradient worker.
    if ((await page.evaluate(() => navigator.hardwareConcurrency)) >= 2) {
      assert.ok(two.polled >= K / 2, `${two.polled} of ${K} steps found their shares by polling`);
      // And the gradient worker, polling for its requests, takes most of them (a share, then the
      // step to apply: 2 a step) from shared memory with no message posted.
      assert.ok(two.unposted >= K, `${two.unposted} of the ${2 * K} requests went without a message`);
    }
    console.log(
      `# ${K} steps of ${one.state.batchSize}: 1 worker ${one.ms} ms (${one.examplesPerSec.toFixed(0)} examples/s), ` +
        `2 workers ${two.ms} ms (${two.examplesPerSec.toFixed(0)} examples/s); weights ${sha(one.weights)} and ${sha(two.weights)}`,
    );
    const fresh = await page.evaluate(async (seed) => {
      window.lenetPage.resetTraining(seed);
      return window.lenetPage.exportWeights();
    }, SEED);
    assert.notDeepEqual(Buffer.from(fresh, 'base64'), one.weights, 'the steps changed the weights');
    assert.ok(one.weights.equals(two.weights), `1 worker gave ${sha(one.weights)}, 2 workers ${sha(two.weights)}`);
    reference = one.weights;

    if (process.env.E2E_WORKERS_SPEED) await measureSpeed(page);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('gradient workers that keep failing: the step is taken in the training worker alone, which trains on', async () => {
  assert.ok(reference, 'the first test ran');
  const browser = await open({ isolated: false });
  try {
    const { page } = browser;
    const crashed = await run(page, 2, { crashAfter: 7, crashes: 3 });
    const status = page.locator('#workers-status');
    await page.waitForFunction(() => document.querySelector('#workers-status').dataset.workers === '1');
    assert.match(await status.textContent(), /training in one worker \(the other workers kept failing: .*crashed on request/);
    const workers = await page.evaluate(() => window.lenetPage.workers());
    assert.equal(workers.size, 1);
    assert.equal(workers.steps, 7, 'the 7 steps before the failures went over the workers, none after');
    assert.ok(crashed.weights.equals(reference), `after the fall-back ${sha(crashed.weights)}, undisturbed ${sha(reference)}`);
    browser.problems.splice(0, Infinity, ...browser.problems.filter((p) => !/crashed on request \(test\)/.test(p)));
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('the same weights with the shards sent in messages (no cross-origin isolation)', async () => {
  assert.ok(reference, 'the first test ran');
  const browser = await open({ isolated: false });
  try {
    const { page } = browser;
    const two = await run(page, 2);
    assert.equal(await page.locator('#workers-status').getAttribute('data-transport'), 'message');
    assert.match(await page.locator('#workers-status').textContent(), /2 workers, shards sent in messages/);
    assert.equal(two.polled, 0, 'without shared memory every share comes as a message');
    assert.equal(two.unposted, 0, 'without shared memory every request is a message');
    assert.ok(two.weights.equals(reference), `2 workers over messages gave ${sha(two.weights)}, 1 worker ${sha(reference)}`);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a gradient worker that dies during a step is replaced and the weights are those of an undisturbed run', async () => {
  assert.ok(reference, 'the first test ran');
  const browser = await open({ isolated: true });
  try {
    const { page } = browser;
    const crashed = await run(page, 2, { crashAfter: 7 });
    const status = page.locator('#workers-status');
    await page.waitForFunction(() => Number(document.querySelector('#workers-status').dataset.replaced) >= 1);
    assert.match(await status.textContent(), /1 replaced after a failure/);
    assert.ok(crashed.weights.equals(reference), `after the crash ${sha(crashed.weights)}, undisturbed ${sha(reference)}`);
    // The page's own worker was not restarted: only the gradient worker was.
    assert.equal(await page.locator('#worker-notice').isHidden(), true);
    // The gradient worker's own report of its (intended) crash is the only error.
    browser.problems.splice(0, Infinity, ...browser.problems.filter((p) => !/crashed on request \(test\)/.test(p)));
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a gradient worker that slows to a third of its speed hands shards to the training worker, and the weights are the same', async () => {
  assert.ok(reference, 'the first test ran');
  const browser = await open({ isolated: true });
  try {
    const { page } = browser;
    const SLOW_AFTER = 7;
    assert.equal((await page.evaluate((n) => window.lenetPage.setWorkers(n), 2)).size, 2);
    await page.evaluate((seed) => window.lenetPage.resetTraining(seed), SEED);
    await page.evaluate((n) => window.lenetPage.trainSteps(n), SLOW_AFTER);
    await page.evaluate(() => window.lenetPage.crashGradientWorker('slow'));
    const before = await page.evaluate(() => window.lenetPage.workers());
    const state = await page.evaluate((n) => window.lenetPage.trainSteps(n), K - SLOW_AFTER);
    assert.equal(state.step, K);
    const after = await page.evaluate(() => window.lenetPage.workers());
    // From a step or two after it slows, each step's 4 shards go 3 to the training worker and 1
    // to the gradient worker, as their paces (1 : 3) say.
    const uneven = after.uneven - before.uneven;
    console.log(`# ${uneven} of the ${K - SLOW_AFTER} steps after the gradient worker slowed split by pace`);
    assert.ok(uneven >= (K - SLOW_AFTER) / 2, `${uneven} of ${K - SLOW_AFTER} steps split by pace`);
    assert.equal(after.steps - before.steps, K - SLOW_AFTER, 'every step over the workers');
    assert.equal(after.replaced, 0);
    const weights = Buffer.from(await page.evaluate(() => window.lenetPage.exportWeights()), 'base64');
    assert.ok(weights.equals(reference), `slowed ${sha(weights)}, undisturbed ${sha(reference)}`);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a gradient worker that hangs during a step is replaced after its short time-out (from 2 s), and the weights are those of an undisturbed run', async () => {
  assert.ok(reference, 'the first test ran');
  const browser = await open({ isolated: true });
  try {
    const { page } = browser;
    const hung = await run(page, 2, { crashAfter: 7, how: 'hang' });
    assert.ok(hung.ms >= 2_000, `the step waited for the time-out (${hung.ms} ms)`);
    const workers = await page.evaluate(() => window.lenetPage.workers());
    assert.equal(workers.replaced, 1);
    // Its shares took milliseconds, so its time-out was 100 times its slowest (at least 2 s), not
    // the first share's 10 s.
    const waited = Number(/^a gradient worker did not answer within (\d+\.\d) s$/.exec(workers.replacedWhy ?? '')?.[1]);
    assert.ok(waited >= 2 && waited < 10, `replaced because: ${workers.replacedWhy}`);
    assert.equal(workers.size, 2);
    assert.ok(hung.weights.equals(reference), `after the hang ${sha(hung.weights)}, undisturbed ${sha(reference)}`);
    assert.equal(await page.locator('#worker-notice').isHidden(), true, 'the training worker itself answered its pings');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('the Workers choice outlasts a reload', async () => {
  const browser = await open({ isolated: true });
  try {
    const { page } = browser;
    const before = await page.evaluate(() => window.lenetPage.workers());
    const other = before.size === 1 ? 2 : 1;
    const shows = (n) =>
      page.waitForFunction((n) => document.querySelector('#workers-status').dataset.workers === String(n), n);
    await page.selectOption('#workers', String(other));
    await shows(other);
    await page.reload();
    await waitUntilReady(page);
    await shows(other);
    assert.equal((await page.evaluate(() => window.lenetPage.workers())).size, other);
    assert.equal(await page.locator('#workers').inputValue(), String(other));
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
