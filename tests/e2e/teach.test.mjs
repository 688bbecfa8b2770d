// "Teach it your handwriting": digits drawn in a style the pretrained network misreads are
// labelled on the page (one tap, one key), taught in the worker, and then read right more often;
// MNIST held-out accuracy stays where it was, teaching stays within its time budget, and the
// gallery and the tuned weights survive a reload.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openPage, waitUntilReady, assertClean } from './browser.mjs';
import { drawWithMouse } from './digits.mjs';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const README_SHOT = fileURLToPath(new URL('../../www/teach.png', import.meta.url));
const TAU = 2 * Math.PI;
const arc = (cx, cy, rx, ry, from, to, n = 20) =>
  Array.from({ length: n + 1 }, (_, i) => [cx + rx * Math.cos(from + ((to - from) * i) / n), cy + ry * Math.sin(from + ((to - from) * i) / n)]);

// Unusual ways of writing a digit: which of them the pretrained network misreads is measured.
const STYLES = {
  'hook-flag 1': { label: 1, strokes: [[[0.3, 0.24], [0.46, 0.2], [0.6, 0.17], [0.6, 0.5], [0.6, 0.85]]] },
  'hook-flag 1 with a base': { label: 1, strokes: [[[0.3, 0.24], [0.46, 0.2], [0.6, 0.17], [0.6, 0.5], [0.6, 0.82]], [[0.4, 0.83], [0.6, 0.83], [0.8, 0.83]]] },
  'serif 1': { label: 1, strokes: [[[0.34, 0.2], [0.66, 0.2]], [[0.5, 0.2], [0.5, 0.82]], [[0.34, 0.82], [0.66, 0.82]]] },
  'Z-shaped 2': { label: 2, strokes: [[[0.3, 0.22], [0.5, 0.22], [0.7, 0.22], [0.5, 0.5], [0.3, 0.8], [0.5, 0.8], [0.72, 0.8]]] },
  'long-flag 1': { label: 1, strokes: [[[0.25, 0.45], [0.4, 0.32], [0.58, 0.16], [0.56, 0.5], [0.55, 0.84]]] },
  'steep-flag 1': { label: 1, strokes: [[[0.18, 0.6], [0.4, 0.38], [0.62, 0.15], [0.6, 0.5], [0.58, 0.86]]] },
  'flat-top 3': { label: 3, strokes: [[[0.3, 0.2], [0.5, 0.2], [0.7, 0.2], [0.55, 0.35], [0.45, 0.45], [0.6, 0.5], [0.7, 0.64], [0.62, 0.8], [0.45, 0.84], [0.3, 0.78]]] },
};

/** A seeded variant of `strokes` as a hand would redraw it: shifted, scaled, sheared, wobbly. */
function variant(strokes, seed) {
  let s = seed * 2654435761 + 12345;
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  const [dx, dy, scale, shear] = [0.08 * rand(), 0.08 * rand(), 1 + 0.2 * rand(), 0.2 * rand()];
  return strokes.map((stroke) =>
    stroke.map(([x, y]) => [0.5 + scale * (x - 0.5 + shear * (y - 0.5)) + dx + 0.015 * rand(), 0.5 + scale * (y - 0.5) + dy + 0.015 * rand()]),
  );
}

const recognizerName = (page) => page.textContent('#recognizer-name');

/** Opens the confusion panel and waits for its caption to match `pattern`; scrolls back to the pad. */
async function confusionNamed(page, pattern) {
  if (!(await page.evaluate(() => document.getElementById('panel-confusion').open))) await page.click('#panel-confusion > summary');
  await page.waitForFunction((source) => new RegExp(source).test(document.querySelector('#confusion caption').textContent), pattern.source, { timeout: 60_000 });
  await page.evaluate(() => scrollTo(0, 0));
}

const reading = (page) => page.evaluate(() => document.body.dataset.probabilities && Number(document.querySelector('#predicted').dataset.digit));

async function clearPad(page) {
  if (await page.isEnabled('#clear')) await page.click('#clear');
  await page.waitForFunction(() => !document.body.dataset.probabilities);
}

async function draw(page, strokes) {
  await clearPad(page);
  await drawWithMouse(page, strokes);
  await page.waitForFunction(() => document.body.dataset.probabilities);
  return reading(page);
}

/** How many of `drawings` ([label, strokes]) the page's recognizer reads right. */
async function score(page, drawings) {
  let right = 0;
  for (const [label, strokes] of drawings) if ((await draw(page, strokes)) === label) right++;
  await clearPad(page);
  return right;
}

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
});

test('teaching the recognizer a handwriting it misreads: labelling, gallery, teach, reload', async () => {
  const browser = await openPage(undefined, '?test-hooks');
  try {
    const { page } = browser;
    // An empty pad cannot be labelled.
    assert.ok(await page.isDisabled('.teach-digit[data-digit="3"]'), 'a digit button is enabled on an empty pad');

    // The two styles the pretrained network reads worst (two variants each).
    const misread = [];
    for (const [name, style] of Object.entries(STYLES)) {
      const right = await score(page, [100, 101].map((seed) => [style.label, variant(style.strokes, seed)]));
      misread.push({ name, right });
    }
    misread.sort((a, b) => a.right - b.right);
    console.log(`# pretrained reads right (of 2): ${misread.map((m) => `${m.name} ${m.right}`).join(', ')}`);
    const chosen = misread.slice(0, 2).map((m) => m.name);
    assert.ok(misread[0].right < 2, 'every style was read right: there is nothing to teach');

    // Label 5 of each: the first style by tapping the digit button, the second by key.
    for (const [k, name] of chosen.entries()) {
      const { label, strokes } = STYLES[name];
      for (let i = 0; i < 5; i++) {
        await draw(page, variant(strokes, i + 1));
        if (k === 0 && i === 0) await page.screenshot({ path: join(ARTIFACTS, 'teach-label.png') });
        if (k === 0) await page.click(`.teach-digit[data-digit="${label}"]`);
        else {
          // A focused radio button (the recognizer's choice, just clicked) leaves the keys to the pad.
          if (i === 0) await page.focus('input[name="recognizer"][value="pretrained"]');
          await page.keyboard.press(String(label));
        }
        await page.waitForFunction(() => !document.body.dataset.probabilities);
      }
    }
    assert.equal(await page.locator('#teach-gallery li').count(), 10, 'the gallery shows the ten labelled digits');
    const galleryLabels = await page.$$eval('#teach-gallery li', (items) => items.map((li) => Number(li.dataset.label)));
    assert.deepEqual(galleryLabels, chosen.flatMap((name) => Array(5).fill(STYLES[name].label)));

    // Held-out drawings of the same styles, never labelled.
    const heldOut = chosen.flatMap((name) => [11, 12, 13, 14, 15].map((seed) => [STYLES[name].label, variant(STYLES[name].strokes, seed)]));
    const before = await score(page, heldOut);
    assert.equal(await recognizerName(page), 'pretrained network');

    const report = await page.evaluate(() => window.lenetPage.teach.teach());
    assert.ok(report, `teaching failed: ${await page.textContent('#teach-error')}`);
    // Taught, it is no longer the pretrained network: beside the answer and in the confusion matrix.
    await page.waitForFunction(() => document.querySelector('#recognizer-name').textContent === 'pretrained + your digits');
    await confusionNamed(page, /^The pretrained network \+ your digits at step 0: \d+\.\d % of/);
    const after = await score(page, heldOut);
    const shown = await page.textContent('#teach-result');
    await page.locator('#teach').screenshot({ path: join(ARTIFACTS, 'teach-gallery.png') });
    await page.locator('#teach').screenshot({ path: README_SHOT, scale: 'css' });
    console.log(
      `# styles ${chosen.join(' and ')}; held-out drawings read right: ${before}/${heldOut.length} → ${after}/${heldOut.length}; ` +
        `worker's held-out share (${report.held}): ${report.before.mine} → ${report.after.mine}; ` +
        `MNIST held-out: ${report.before.mnist} → ${report.after.mnist}; ${report.steps} steps in ${report.teachMs.toFixed(0)} ms of worker time ` +
        `(+ ${report.evalMs.toFixed(0)} ms evaluating); page shows "${shown}"`,
    );
    assert.ok(after > before, `held-out drawings read right ${before} → ${after}: teaching did not help`);
    assert.ok(report.teachMs <= 2000, `teaching took ${report.teachMs} ms of worker time`);
    assert.match(shown, /→.*→/);

    // A reload brings back the gallery and the tuned weights.
    const weights = await page.evaluate(() => window.lenetPage.teach.weights());
    await page.reload();
    await waitUntilReady(page);
    await page.evaluate(() => window.lenetPage.teach.restored);
    await page.waitForFunction(() => document.querySelectorAll('#teach-gallery li').length === 10);
    assert.equal(await page.evaluate(() => window.lenetPage.teach.weights()), weights, 'the tuned weights after a reload');
    assert.equal(await recognizerName(page), 'pretrained + your digits', 'the tuned weights after a reload are named');
    assert.equal(await score(page, heldOut), after, 'the reloaded network reads the held-out drawings as the tuned one did');

    // Reset to pretrained brings the shipped weights back; deleting a digit removes it.
    await page.click('#teach-reset');
    await page.waitForFunction(() => /shipped/.test(document.querySelector('#teach-result').textContent));
    assert.equal(await score(page, heldOut), before, 'the shipped weights read as before teaching');
    assert.equal(await recognizerName(page), 'pretrained network', 'the shipped weights are named as the pretrained network again');
    await confusionNamed(page, /^The pretrained network at step 0: /);
    await page.click('#teach-gallery li:first-child .teach-delete');
    assert.equal(await page.locator('#teach-gallery li').count(), 9);
    assertClean(browser);
    // Last, so that everything above is checked whatever it says.
    assert.ok(Math.abs(report.after.mnist - report.before.mnist) <= 0.003, `MNIST held-out accuracy moved ${report.before.mnist} → ${report.after.mnist}`);

  } finally {
    await browser.close();
  }
});

test('importing a file that is not what it claims names the error and changes nothing', async () => {
  const browser = await openPage(undefined, '?test-hooks');
  try {
    const { page } = browser;
    const count = () => page.locator('#teach-gallery li').count();
    const n = await count();
    const attempts = [
      ['bad.json', '{"format":"lenet-my-digits","version":2,"digits":[]}', /version 2 is not known/],
      ['bad.json', '{"format":"lenet-my-digits","version":1,"digits":[{"label":12,"pixels":[]}]}', /label 12 is not a digit/],
      ['bad.json', 'not json', /bad.json is not a file of my digits: it is not JSON/],
    ];
    for (const [name, text, error] of attempts) {
      await page.evaluate(([t, nm]) => window.lenetPage.teach.files.importJson(t, nm), [text, name]);
      assert.match(await page.textContent('#teach-error'), error);
      assert.equal(await count(), n, 'a rejected file added digits');
    }
    // IDX files go through the core's reader, which names what is wrong.
    await page.setInputFiles('#teach-import-file', [
      { name: 'x-images-idx3-ubyte', mimeType: 'application/octet-stream', buffer: Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]) },
      { name: 'x-labels-idx1-ubyte', mimeType: 'application/octet-stream', buffer: Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]) },
    ]);
    await page.waitForFunction(() => !document.querySelector('#teach-error').hidden);
    assert.match(await page.textContent('#teach-error'), /x-images-idx3-ubyte/);
    assert.equal(await count(), n);
    // A dataset offered as my digits: well-formed, but more than are kept (the core's limit,
    // teach::MAX_MINE_DIGITS = 2,000). Refused as a whole, before any is shown or stored.
    const many = 2001;
    const be32 = (v) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
    await page.setInputFiles('#teach-import-file', [
      { name: 'big-images-idx3-ubyte', mimeType: 'application/octet-stream', buffer: Buffer.concat([Buffer.from([0, 0, 8, 3, ...be32(many), 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.alloc(many * 784, 7)]) },
      { name: 'big-labels-idx1-ubyte', mimeType: 'application/octet-stream', buffer: Buffer.concat([Buffer.from([0, 0, 8, 1, ...be32(many)]), Buffer.alloc(many, 3)]) },
    ]);
    await page.waitForFunction(() => /big-images/.test(document.querySelector('#teach-error').textContent));
    assert.match(
      await page.textContent('#teach-error'),
      new RegExp(`^Import failed, nothing changed: big-images-idx3-ubyte holds 2001 digits; with the ${n} you have, ${n + 2001} digits of yours are more than the 2000 that are kept and taught from\\. To train on a dataset`),
    );
    assert.equal(await count(), n, 'a refused import added digits');
    // A round trip: a JSON file in, the page's own IDX writer out (gzipped, as exported), the
    // core's reader back in.
    const roundTrip = await page.evaluate(async () => {
      const { files } = window.lenetPage.teach;
      const json = JSON.stringify({ format: 'lenet-my-digits', version: 1, digits: [3, 7].map((label) => ({ label, pixels: Array.from({ length: 784 }, (_, i) => (i * label) % 256), strokes: null })) });
      await files.importJson(json, 'two.json');
      const before = window.lenetPage.teach.digits();
      const { images, labels } = files.digitsToIdx();
      await files.importIdx(Array.from(images), Array.from(labels));
      const after = window.lenetPage.teach.digits();
      return { before: before.length, after: after.length, same: JSON.stringify(after.slice(before.length).map((d) => [d.label, d.pixels])) === JSON.stringify(before.map((d) => [d.label, d.pixels])) };
    });
    assert.equal(roundTrip.before, n + 2);
    assert.equal(roundTrip.after, 2 * (n + 2));
    assert.ok(roundTrip.same, 'the digits read back from IDX differ from those written');
    // Exactly the limit is kept; a digit labelled past it is refused, and the drawing stays on
    // the pad.
    const toLimit = 2000 - roundTrip.after;
    await page.evaluate(async (k) => {
      const digits = Array.from({ length: k }, (_, i) => ({ label: i % 10, pixels: Array.from({ length: 784 }, (_, p) => (p * (i + 1)) % 256), strokes: null }));
      await window.lenetPage.teach.files.importJson(JSON.stringify({ format: 'lenet-my-digits', version: 1, digits }), 'to-the-limit.json');
    }, toLimit);
    assert.equal(await page.textContent('#teach-result'), `Imported ${toLimit} digits.`);
    assert.equal(await count(), 2000);
    await draw(page, variant(STYLES['serif 1'].strokes, 1));
    await page.click('.teach-digit[data-digit="1"]');
    await page.waitForFunction(() => !document.querySelector('#teach-error').hidden);
    assert.equal(
      await page.textContent('#teach-error'),
      'Not kept: 2001 digits of yours are more than the 2000 that are kept and taught from; delete some of my digits first.',
    );
    assert.equal(await count(), 2000);
    assert.ok(!(await page.isDisabled('.teach-digit[data-digit="1"]')), 'the drawing was cleared from the pad');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
