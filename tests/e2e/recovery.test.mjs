// Lost work: the worker checkpoints the network in training to IndexedDB; after a reload, or a
// worker that crashed or hung and was restarted, the page offers to resume from the checkpoint.
// Like every browser test, these fail on a request to another origin, a Content-Security-Policy
// violation or an error in the console.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openPage, waitUntilReady, assertClean } from './browser.mjs';
import { DIGITS, drawWithMouse } from './digits.mjs';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
// A checkpoint is written every 10 s while training; a loaded machine gets ample slack.
const CHECKPOINT_TIMEOUT = 90_000;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
});

const state = (page) => page.evaluate(() => window.lenetPage.trainingState());
const savedStep = (page) => page.evaluate(() => Number(document.querySelector('#checkpoint-status').dataset.step ?? 0));
const offeredStep = (page) => page.evaluate(() => Number(document.querySelector('#checkpoint-offer').dataset.step));

async function startTraining(page) {
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.training === 'running');
}

/** Waits for a checkpoint written by the periodic save, while training runs; its step. */
async function periodicCheckpoint(page) {
  await page.waitForFunction(
    () => document.querySelector('#checkpoint-status').dataset.step && window.lenetPage.trainingState()?.running,
    null,
    { timeout: CHECKPOINT_TIMEOUT },
  );
  return savedStep(page);
}

/** Pauses, and waits for the checkpoint that pausing writes; its step. */
async function pauseAndCheckpoint(page) {
  await page.click('#run');
  await page.waitForFunction(() => document.body.dataset.training === 'paused');
  const { step } = await state(page);
  await page.waitForFunction((step) => Number(document.querySelector('#checkpoint-status').dataset.step) === step, step);
  return step;
}

/** Resumes from the offered checkpoint and waits until training has gone past `step`. */
async function resumeFrom(page, step) {
  await page.click('#resume-checkpoint');
  await page.waitForSelector('#checkpoint-offer', { state: 'hidden' });
  await page.waitForFunction((step) => window.lenetPage.trainingState().step > step + 5, step, { timeout: 60_000 });
  const s = await state(page);
  assert.ok(s.running, 'training runs after resuming');
}

/** Held-out accuracies evaluated after `step`, once there is one. */
async function accuracyAfter(page, step) {
  await page.waitForFunction(
    (step) => {
      const { charts } = window.lenetPage;
      return charts.evalSteps.some((s) => s >= step);
    },
    step,
    { timeout: 60_000 },
  );
  return page.evaluate((step) => {
    const { charts } = window.lenetPage;
    return charts.accuracy.filter((_, i) => charts.evalSteps[i] >= step);
  }, step);
}

/** Trains past step 20, pauses (which checkpoints), reloads, and checks that the checkpoint is
 * offered at the step it was paused at. */
async function offerAfterReload(page) {
  await startTraining(page);
  await page.waitForFunction(() => window.lenetPage.trainingState().step > 20);
  const step = await pauseAndCheckpoint(page);
  await page.reload();
  await waitUntilReady(page);
  await page.waitForSelector('#checkpoint-offer:not([hidden])');
  assert.equal(await offeredStep(page), step);
}

const increasing = (xs) => xs.every((x, i) => i === 0 || x > xs[i - 1]);

test('after a reload, training resumes from the last checkpoint: its step, its settings, its accuracy', async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    assert.ok(await page.isHidden('#checkpoint-offer'), 'a fresh browser has nothing to resume');
    await page.selectOption('#batch', '128');
    await startTraining(page);
    const periodic = await periodicCheckpoint(page);
    assert.ok(periodic > 0, 'a checkpoint was written while training ran');
    const step = await pauseAndCheckpoint(page);
    assert.ok(step >= periodic);
    const before = await page.evaluate(() => window.lenetPage.charts.accuracy.at(-1));

    await page.reload();
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    assert.equal(await offeredStep(page), step, 'the offered checkpoint is the one saved on pausing');
    const label = await page.textContent('#resume-checkpoint');
    assert.match(label, new RegExp(`Resume training from step ${step.toLocaleString('en')} \\(saved \\d`));
    assert.equal((await state(page)).step, 0, 'nothing is resumed until asked');
    assert.match(await page.textContent('#weights-status'), /Pretrained weights loaded/);
    await page.screenshot({ path: join(ARTIFACTS, 'resume-offer.png'), fullPage: true });

    await resumeFrom(page, step);
    const resumed = await page.evaluate(() => window.lenetPage.charts.steps.slice(0, 1));
    assert.deepEqual(resumed, [step + 1], 'the step counter carries on from the checkpoint');
    const s = await state(page);
    assert.equal(s.batchSize, 128, 'the batch size comes back with the checkpoint');
    assert.equal(await page.inputValue('#batch'), '128');
    const [first] = await accuracyAfter(page, step);
    console.log(`# resumed at step ${step}: held-out accuracy ${(before * 100).toFixed(1)} % before the reload, ${(first * 100).toFixed(1)} % after`);
    assert.ok(first > 0.5, `held-out accuracy after resuming is ${first}, as if from scratch`);
    await page.screenshot({ path: join(ARTIFACTS, 'resumed.png'), fullPage: true });
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a worker that crashes or hangs is restarted with a notice; drawing still works; training resumes from the checkpoint', async () => {
  const browser = await openPage(undefined, '?test-crash');
  try {
    const { page } = browser;
    await startTraining(page);
    const checkpoint = await periodicCheckpoint(page);

    // An uncaught error in the worker: its error event.
    await page.evaluate(() => window.lenetPage.crashWorker('throw'));
    await page.waitForSelector('body[data-restarts="1"]');
    await waitUntilReady(page);
    await page.waitForSelector('#worker-notice:not([hidden])');
    assert.match(await page.textContent('#worker-notice'), /stopped unexpectedly and was restarted/);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    const offered = await offeredStep(page);
    assert.ok(offered >= checkpoint, `offered step ${offered}, the page saw a checkpoint at ${checkpoint}`);
    await page.screenshot({ path: join(ARTIFACTS, 'worker-restarted.png'), fullPage: true });

    // Both networks still recognize a drawing: the pretrained one on the page, the new worker's.
    await drawWithMouse(page, DIGITS[7]);
    await page.waitForFunction(() => document.body.dataset.probabilities);
    assert.equal(await page.evaluate(() => document.querySelector('#predicted').dataset.digit), '7');
    await page.check('#use-training', { force: true });
    await page.waitForFunction(() => /network in training, step/.test(document.querySelector('#recognizer-name').textContent));

    await resumeFrom(page, offered);
    // The charts keep the history up to the checkpoint and carry on from it.
    const steps = await page.evaluate(() => window.lenetPage.charts.steps);
    assert.ok(increasing(steps), 'the plotted steps go forward');
    assert.ok(steps.includes(offered) && steps.includes(offered + 1), 'the plot runs through the checkpoint');
    const [accuracy] = await accuracyAfter(page, offered);
    assert.ok(accuracy > 0.5, `held-out accuracy after resuming is ${accuracy}`);
    await page.waitForFunction(() => /network in training, step [1-9]/.test(document.querySelector('#recognizer-name').textContent));

    // A worker stuck in a loop answers nothing: the heartbeat notices.
    await page.evaluate(() => window.lenetPage.crashWorker('hang'));
    await page.waitForSelector('body[data-restarts="2"]', { timeout: 60_000 });
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    const again = await offeredStep(page);
    assert.ok(again >= offered, `offered step ${again} after the second restart, ${offered} before`);
    await resumeFrom(page, again);

    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('leaving the page while a Pause is unconfirmed (its checkpoint not yet written) asks first', async () => {
  const browser = await openPage(undefined, '?test-crash');
  try {
    const { page } = browser;
    await startTraining(page);
    await page.waitForFunction(() => window.lenetPage.trainingState().step > 20);
    // A worker held up (as in a long slice) leaves the Pause unanswered, its checkpoint unwritten.
    // The Start click gave the page the user activation a beforeunload prompt needs.
    await page.evaluate(() => {
      window.lenetPage.crashWorker('hang');
      document.querySelector('#run').click();
      window.notReloaded = true;
    });
    assert.equal(await page.textContent('#run'), 'Resume');
    const dialog = page.waitForEvent('dialog', { timeout: 5_000 });
    const reloading = page.reload({ timeout: 2_000 }).catch(() => 'stayed');
    const asked = await dialog;
    assert.equal(asked.type(), 'beforeunload');
    await asked.dismiss();
    assert.equal(await reloading, 'stayed');
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was left');
  } finally {
    await browser.close();
  }
});

test('a discarded checkpoint is not offered again', async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    await offerAfterReload(page);
    await page.click('#discard-checkpoint');
    await page.waitForSelector('#checkpoint-offer', { state: 'hidden' });

    await page.reload();
    await waitUntilReady(page);
    // The worker is ready, so it has read the store: an offer would be showing by now.
    assert.ok(await page.isHidden('#checkpoint-offer'), 'the discarded checkpoint is offered again');
    assert.equal(await storedCheckpoints(page), 0, 'records left in the checkpoint store');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('Reset keeps a checkpoint on offer, and discards the checkpoint of the run it throws away, even one still being written', async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    // Reset while the offer shows: the fresh network it replaces is not the offered run, which
    // only Discard or a new run's checkpoint may end.
    await offerAfterReload(page);
    const offered = await offeredStep(page);
    await page.click('#reset');
    await page.waitForFunction(() => window.lenetPage.charts.accuracy.length === 1);
    assert.ok(await page.isVisible('#checkpoint-offer'), 'Reset hid the offer to resume');
    assert.equal(await offeredStep(page), offered);
    await page.reload();
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    assert.equal(await offeredStep(page), offered, 'the checkpoint on offer is gone after Reset and a reload');
    assert.equal(await storedCheckpoints(page), 1);

    // Pause writes a checkpoint; Reset right behind it arrives while it is being written.
    await startTraining(page);
    await page.waitForFunction(() => window.lenetPage.trainingState().step > 20);
    await page.evaluate(() => {
      document.querySelector('#run').click();
      document.querySelector('#reset').click();
    });
    await page.waitForFunction(() => {
      const s = window.lenetPage.trainingState();
      return !s.running && s.step === 0 && window.lenetPage.charts.accuracy.length === 1;
    });
    // The line saying when the old run was saved goes once its record is deleted.
    await page.waitForFunction(() => document.querySelector('#checkpoint-status').textContent === '');
    await page.reload();
    await waitUntilReady(page);
    assert.ok(await page.isHidden('#checkpoint-offer'), 'the run thrown away by Reset is offered after a reload');
    assert.equal(await storedCheckpoints(page), 0, 'records left in the checkpoint store');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

/** How many records the checkpoint store holds. */
const storedCheckpoints = (page) =>
  page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('lenet');
        open.onsuccess = () => {
          const db = open.result;
          const count = db.transaction('checkpoints').objectStore('checkpoints').count();
          count.onsuccess = () => {
            db.close();
            resolve(count.result);
          };
          count.onerror = () => reject(count.error);
        };
        open.onerror = () => reject(open.error);
      }),
  );
