// Exact resume: a checkpoint holds the whole training state (weights, optimizer state, settings,
// position in the data), so a run resumed from it — even in another browser profile — goes on
// exactly as if it had never stopped. Uses the page's ?test-hooks, which train an exact number
// of steps. Like every browser test, it fails on a request to another origin, a
// Content-Security-Policy violation or an error in the console.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, waitUntilReady, assertClean } from './browser.mjs';

const SEED = 7;
const S = Number(process.env.E2E_RESUME_STEPS ?? 40);
const K = 25;

// Runs in the page: the checkpoint record in IndexedDB, its bytes in base64; or, given such a
// record, writes it there.
function readRecord() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('lenet');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const get = open.result.transaction('checkpoints').objectStore('checkpoints').get('training');
      get.onerror = () => reject(get.error);
      get.onsuccess = () => {
        open.result.close();
        const record = get.result;
        if (!record) return resolve(null);
        const bytes = record.checkpoint;
        let binary = '';
        for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        resolve({ ...record, checkpoint: btoa(binary) });
      };
    };
  });
}
function writeRecord(record) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('lenet');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const checkpoint = Uint8Array.from(atob(record.checkpoint), (c) => c.charCodeAt(0));
      const tx = open.result.transaction('checkpoints', 'readwrite');
      tx.objectStore('checkpoints').put({ ...record, checkpoint }, 'training');
      tx.oncomplete = () => {
        open.result.close();
        resolve();
      };
      tx.onerror = tx.onabort = () => reject(tx.error);
    };
  });
}

const weights = async (page) => Buffer.from(await page.evaluate(() => window.lenetPage.exportWeights()), 'base64');

/** A fresh browser profile with a fresh network in training from SEED. */
async function freshRun() {
  const browser = await openPage(undefined, '?test-hooks');
  await browser.page.evaluate((seed) => window.lenetPage.resetTraining(seed), SEED);
  return browser;
}

test(`a checkpoint at step ${S}, resumed in a fresh browser profile, trains to the same weights at step ${S + K}, byte for byte, as a run that never stopped`, async () => {
  // 1. Train to step S; stopping writes the checkpoint.
  const first = await freshRun();
  let record;
  let atS;
  try {
    const { page } = first;
    const s = await page.evaluate((n) => window.lenetPage.trainSteps(n), S);
    assert.equal(s.step, S);
    assert.equal(s.running, false, 'training stops after the steps asked for');
    await page.waitForFunction((step) => Number(document.querySelector('#checkpoint-status').dataset.step) === step, S);
    record = await page.evaluate(readRecord);
    atS = await weights(page);
    assertClean(first);
  } finally {
    await first.close();
  }
  assert.ok(record, 'a checkpoint record in IndexedDB');
  assert.equal(record.step, S);

  // 2. A new profile: the record copied into its IndexedDB, the page reloaded, resumed, K more steps.
  const second = await openPage(undefined, '?test-hooks');
  let resumed;
  try {
    const { page } = second;
    await page.evaluate(writeRecord, record);
    await page.reload();
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    assert.equal(await page.evaluate(() => Number(document.querySelector('#checkpoint-offer').dataset.step)), S);
    const s = await page.evaluate(() => window.lenetPage.resumeCheckpoint());
    assert.equal(s.step, S, 'resumed at the checkpoint step');
    assert.ok((await weights(page)).equals(atS), 'the restored weights are those at the checkpoint');
    const t = await page.evaluate((n) => window.lenetPage.trainSteps(n), K);
    assert.equal(t.step, S + K);
    resumed = await weights(page);
    assertClean(second);
  } finally {
    await second.close();
  }

  // 3. Another new profile: S + K steps without a stop.
  const third = await freshRun();
  let straight;
  try {
    const { page } = third;
    const s = await page.evaluate((n) => window.lenetPage.trainSteps(n), S + K);
    assert.equal(s.step, S + K);
    straight = await weights(page);
    assertClean(third);
  } finally {
    await third.close();
  }

  console.log(`# exact resume: ${resumed.length} bytes of weights at step ${S + K}, checkpoint of ${Math.round((record.checkpoint.length * 3) / 4 / 1024)} KiB`);
  assert.ok(resumed.length > 100_000, `the weights file has only ${resumed.length} bytes`);
  assert.ok(!resumed.equals(atS), `the ${K} steps after resuming changed the weights`);
  assert.ok(resumed.equals(straight), 'the resumed run and the uninterrupted run end with different weights');
});
