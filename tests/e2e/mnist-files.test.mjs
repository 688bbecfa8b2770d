// Training on the full MNIST from the person's own files: MNIST's four IDX files, dropped on the
// training panel or picked, replace the digits the network trains and is tested on; a wrong or
// truncated file is named with what is wrong, and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, copyFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { openPage, waitUntilReady, assertClean } from './browser.mjs';

const SMALL = fileURLToPath(new URL('../fixtures/mnist-small/', import.meta.url));
const NAMES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];

/** A folder with MNIST's four files from mnist-small, `change(dir)` altering some. */
async function folder(change = async () => {}) {
  const dir = await mkdtemp(join(tmpdir(), 'lenet-idx-'));
  for (const name of NAMES) await copyFile(join(SMALL, name), join(dir, name));
  await change(dir);
  return dir;
}

async function pick(page, paths) {
  await page.evaluate(() => {
    const s = document.querySelector('#mnist-status');
    s.dataset.kind = '';
    s.textContent = '';
  });
  await page.setInputFiles('#mnist-files', paths);
  await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#mnist-status').dataset.kind), null, {
    timeout: 60_000,
  });
  return page.evaluate(() => {
    const s = document.querySelector('#mnist-status');
    return { kind: s.dataset.kind, text: s.textContent };
  });
}

/** Drops the four files of `dir` (mnist-small's good ones unless told) on the training panel; the
 * status line when it settles. */
async function dropGood(page, dir = SMALL) {
  const files = await Promise.all(NAMES.map(async (name) => ({ name, base64: (await readFile(join(dir, name))).toString('base64') })));
  await page.evaluate((files) => {
    const s = document.querySelector('#mnist-status');
    s.dataset.kind = '';
    const dt = new DataTransfer();
    for (const { name, base64 } of files) dt.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], name));
    const zone = document.querySelector('#mnist-drop');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files);
  await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#mnist-status').dataset.kind), null, {
    timeout: 60_000,
  });
  return page.textContent('#mnist-status');
}

const snapshot = (page) =>
  page.evaluate(() => ({ source: document.querySelector('#data-source').textContent, training: window.lenetPage.trainingState() }));

test('a wrong, truncated or missing MNIST file is named, and nothing changes; the four good files are trained on', async () => {
  const browser = await openPage({}, '?test-hooks');
  const dirs = [];
  try {
    const { page } = browser;
    await page.evaluate(() => window.lenetPage.trainSteps(3));
    const before = await snapshot(page);
    assert.equal(before.training.step, 3);

    // A labels file where the training images should be.
    const swapped = await folder((dir) => copyFile(join(SMALL, NAMES[1]), join(dir, NAMES[0])));
    // The training images, uncompressed and cut short.
    const truncated = await folder(async (dir) => {
      const plain = gunzipSync(await readFile(join(SMALL, NAMES[0])));
      await rm(join(dir, NAMES[0]));
      await writeFile(join(dir, 'train-images-idx3-ubyte'), plain.subarray(0, 16 + 784 * 100 + 300));
    });
    // The test labels, gzipped and cut short, as an interrupted download leaves them.
    const cutGzip = await folder(async (dir) => {
      const gz = await readFile(join(SMALL, NAMES[3]));
      await writeFile(join(dir, NAMES[3]), gz.subarray(0, Math.floor(gz.length / 2)));
    });
    // The test labels, whole, with bytes after their gzip data.
    const trailing = await folder(async (dir) => {
      const gz = await readFile(join(SMALL, NAMES[3]));
      await writeFile(join(dir, NAMES[3]), Buffer.concat([gz, Buffer.from('garbage\n')]));
    });
    dirs.push(swapped, truncated, cutGzip, trailing);

    // A weights file that is not one leaves its error on the page; the next drop, which has its
    // own status line, takes it away.
    const notWeights = join(swapped, 'notes.safetensors');
    await writeFile(notWeights, 'not weights at all');
    await page.setInputFiles('#load-file', notWeights);
    await page.waitForSelector('#train-error:not([hidden])');
    assert.match(await page.textContent('#train-error'), /^notes\.safetensors was not loaded, nothing changed: /);

    const cases = [
      [NAMES.map((n) => join(swapped, n)), /train-images-idx3-ubyte\.gz/],
      [['train-images-idx3-ubyte', ...NAMES.slice(1)].map((n) => join(truncated, n)), /train-images-idx3-ubyte\b/],
      [NAMES.map((n) => join(cutGzip, n)), /t10k-labels-idx1-ubyte\.gz is not a complete gzip file: it may have been cut short/],
      [NAMES.map((n) => join(trailing, n)), /t10k-labels-idx1-ubyte\.gz: bytes follow the end of its gzip data, and they are not gzip/],
    ];
    for (const [paths, names] of cases) {
      const result = await pick(page, paths);
      assert.equal(await page.isHidden('#train-error'), true, 'the weights file\'s error went with the drop');
      assert.equal(result.kind, 'error', result.text);
      assert.match(result.text, /^Nothing changed: /);
      assert.match(result.text, names);
      console.error(`refused: ${result.text}`);
      assert.deepEqual(await snapshot(page), before, 'the data and the training state are unchanged');
    }
    // Two files for one of MNIST's four (here a plain and a gzipped training images file) are
    // refused before anything is read: which one was meant is not known.
    const both = await pick(page, [...NAMES.map((n) => join(SMALL, n)), join(truncated, 'train-images-idx3-ubyte')]);
    assert.equal(both.kind, 'error');
    assert.equal(
      both.text,
      'Nothing changed: “train-images-idx3-ubyte.gz” and “train-images-idx3-ubyte” are both MNIST\'s “train-images-idx3-ubyte”, and they may hold different digits. Drop or choose one of each.',
    );
    // A missing file is named before anything is read.
    const three = await pick(page, NAMES.slice(0, 3).map((n) => join(SMALL, n)));
    assert.equal(three.kind, 'error');
    assert.match(three.text, /“t10k-labels-idx1-ubyte” is missing/);

    // The good files: 2,500 training and 500 test digits, by drag and drop.
    const status = await dropGood(page);
    assert.equal(
      status,
      'Training on 2,500 digits and testing on 500 from your files. The network in training goes on over them from step 3; its charts start again.',
    );
    assert.match(await page.textContent('#data-source'), /2,500 training digits/);
    // It trains on them and is evaluated on the 500.
    const after = await page.evaluate(() => window.lenetPage.trainSteps(5));
    assert.equal(after.step, 8);
    await page.waitForFunction(() => document.querySelector('#acc-caption').textContent === 'Accuracy on 500 held-out digits', null, {
      timeout: 60_000,
    });
    // A file dropped outside the zone is refused by the page, not opened by the browser in its
    // place, and is not loaded.
    const outside = await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['not a digit'], 'notes.txt'));
      const target = document.querySelector('#pad');
      const over = new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true });
      const drop = new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
      target.dispatchEvent(over);
      target.dispatchEvent(drop);
      return { over: over.defaultPrevented, drop: drop.defaultPrevented, status: document.querySelector('#mnist-status').textContent };
    });
    assert.deepEqual(outside, { over: true, drop: true, status });
    assertClean(browser);
  } finally {
    await browser.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
});

test('the training worker restarted after a crash gets the dropped files again, and trains on them', async () => {
  const browser = await openPage({}, '?test-hooks&test-crash');
  try {
    const { page } = browser;
    assert.equal(await dropGood(page), 'Training on 2,500 digits and testing on 500 from your files.');
    await page.evaluate(() => window.lenetPage.crashWorker('throw'));
    await page.waitForSelector('body[data-restarts="1"]', { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector('#mnist-status').dataset.kind === 'done', null, { timeout: 60_000 });
    assert.equal(await page.textContent('#mnist-status'), 'Training on 2,500 digits and testing on 500 from your files.');
    assert.match(await page.textContent('#data-source'), /2,500 training digits/);
    const after = await page.evaluate(() => window.lenetPage.trainSteps(3));
    assert.equal(after.running, false);
    assert.ok(after.step >= 3, `the restarted worker trains on the files (step ${after.step})`);
    await page.waitForFunction(() => document.querySelector('#acc-caption').textContent === 'Accuracy on 500 held-out digits', null, {
      timeout: 60_000,
    });
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a checkpoint of a run on dropped files waits for those files: after a reload its Resume is disabled and says why, until they are dropped again', async () => {
  const browser = await openPage({}, '?test-hooks');
  // Files of the same names holding other digits (one training label changed): not the digits
  // the checkpoint was trained on, though the page names them alike.
  const relabelled = await folder(async (dir) => {
    const labels = gunzipSync(await readFile(join(SMALL, NAMES[1])));
    labels[8] = (labels[8] + 1) % 10;
    await writeFile(join(dir, NAMES[1]), gzipSync(labels));
  });
  try {
    const { page } = browser;
    assert.equal(await dropGood(page), 'Training on 2,500 digits and testing on 500 from your files.');
    await page.click('#run');
    await page.waitForFunction(() => window.lenetPage.trainingState()?.step >= 5, null, { timeout: 60_000 });
    await page.click('#run');
    await page.waitForFunction(() => document.body.dataset.training === 'paused');
    const { step } = await page.evaluate(() => window.lenetPage.trainingState());
    await page.waitForFunction((step) => Number(document.querySelector('#checkpoint-status').dataset.step) === step, step);

    // The reloaded page's worker holds the site's digits, which the checkpoint was not trained on.
    await page.reload();
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer:not([hidden])');
    assert.equal(await page.isDisabled('#resume-checkpoint'), true, 'Resume waits for the files');
    assert.match(
      await page.textContent('#checkpoint-offer-note'),
      /It was trained on MNIST from your files \(train-images-idx3-ubyte\.gz, …\), not on the digits loaded now: to resume it, load those digits again/,
    );

    // The same names, the same count, other digits: still not the checkpoint's.
    assert.equal(await dropGood(page, relabelled), 'Training on 2,500 digits and testing on 500 from your files.');
    assert.equal(await page.isDisabled('#resume-checkpoint'), true, 'Resume waits for the files the checkpoint was trained on');
    assert.match(await page.textContent('#checkpoint-offer-note'), /not on the digits loaded now: to resume it, load those digits again/);

    assert.equal(await dropGood(page), 'Training on 2,500 digits and testing on 500 from your files.');
    await page.waitForFunction(() => !document.querySelector('#resume-checkpoint').disabled);
    assert.doesNotMatch(await page.textContent('#checkpoint-offer-note'), /not on the digits loaded now/);
    await page.click('#resume-checkpoint');
    await page.waitForSelector('#checkpoint-offer', { state: 'hidden' });
    assert.equal((await page.evaluate(() => window.lenetPage.trainingState())).step >= step, true, 'resumed from the checkpoint');
    assertClean(browser);
  } finally {
    await browser.close();
    await rm(relabelled, { recursive: true, force: true });
  }
});
