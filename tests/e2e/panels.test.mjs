// "Inside the network": the feature maps and saliency follow the drawing, the filters follow
// training, the confusion matrix opens the held-out digits behind a cell, and on a phone the
// folded panels leave the pad and the answer on the first screen.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { openPage, assertClean } from './browser.mjs';
import { DIGITS, drawWithMouse } from './digits.mjs';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
});

/** The RGBA bytes of a canvas, as an array, read in the page. */
const canvasPixels = (page, selector) =>
  page.evaluate((s) => {
    const c = document.querySelector(s);
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, selector);

const differing = (a, b) => a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0);

async function clearPad(page) {
  if (await page.isEnabled('#clear')) await page.click('#clear');
  await page.waitForFunction(() => !document.body.dataset.probabilities);
}

async function openPanel(page, id) {
  await page.click(`#${id} > summary`);
  await page.waitForFunction((i) => document.getElementById(i).open, id);
}

/** Draws on the pad, scrolled into view first (opening panels may have scrolled the page). */
async function draw(page, strokes) {
  await page.evaluate(() => scrollTo(0, 0));
  await drawWithMouse(page, strokes);
}

test('feature maps, filters and saliency follow the drawing; the saliency class can be chosen', async () => {
  const browser = await openPage({ viewport: { width: 1280, height: 1000 } });
  try {
    const { page } = browser;
    for (const id of ['panel-maps', 'panel-filters', 'panel-saliency', 'panel-confusion']) {
      assert.equal(await page.evaluate((i) => document.getElementById(i).open, id), false, `${id} starts folded`);
    }
    await openPanel(page, 'panel-maps');
    await openPanel(page, 'panel-filters');
    await openPanel(page, 'panel-saliency');

    await draw(page, DIGITS[8]);
    await page.waitForFunction(() => document.querySelector('#inside').dataset.explained);
    const conv1Of8 = await canvasPixels(page, '#map-conv1');
    const fc1Of8 = await canvasPixels(page, '#map-fc1');
    const mapsText8 = await page.textContent('#maps-text');
    const explained8 = await page.evaluate(() => document.querySelector('#inside').dataset.explained);
    const predicted8 = await page.evaluate(() => document.querySelector('#predicted').dataset.digit);
    assert.equal(explained8, predicted8, 'without a chosen class, the saliency explains the answer');
    assert.match(await page.textContent('#saliency-text'), new RegExp(`evidence for ${predicted8}|Nothing in the drawing speaks for ${predicted8}`));
    assert.match(mapsText8, /conv1: 6 maps of 28×28, the most active is map \d/);
    const overlayVisible = await page.evaluate(() => !document.querySelector('.saliency-overlay').hidden);
    assert.ok(overlayVisible, 'the saliency is laid over the 28×28 input');

    // The filters are those of the network that recognizes: not blank, and signed.
    const filters = await canvasPixels(page, '#filter-conv1');
    const coloured = filters.filter((v, i) => i % 4 !== 3 && v < 250).length;
    assert.ok(coloured > 50, `conv1's filters are drawn (${coloured} coloured channel values)`);
    assert.match(await page.textContent('#filters-text'), /conv1: 6 filters of 5×5, weights from -?\d/);

    // Choose another class: the saliency now explains it, not the answer.
    const other = predicted8 === '3' ? 5 : 3;
    const salBefore = await canvasPixels(page, '#saliency-canvas');
    await page.click(`.class-buttons button[data-digit="${other}"]`);
    await page.waitForFunction((d) => document.querySelector('#inside').dataset.explained === String(d), other);
    assert.equal(await page.getAttribute(`.class-buttons button[data-digit="${other}"]`, 'aria-pressed'), 'true');
    assert.match(await page.textContent('#saliency-text'), new RegExp(`for ${other} \\(the answer is ${predicted8}\\)`));
    const salOther = await canvasPixels(page, '#saliency-canvas');
    assert.ok(differing(salBefore, salOther) > 20, 'the saliency map changed with the class');
    // Gradient × input is another picture.
    await page.selectOption('#saliency-mode', 'gradient_x_input');
    const gxi = await canvasPixels(page, '#saliency-canvas');
    assert.ok(differing(salOther, gxi) > 20, 'gradient × input differs from the saliency');

    await page.screenshot({ path: join(ARTIFACTS, 'panels.png'), fullPage: true });

    // Another drawing: every map changes.
    await clearPad(page);
    await draw(page, DIGITS[1]);
    await page.waitForFunction(() => document.querySelector('#inside').dataset.explained);
    const conv1Of1 = await canvasPixels(page, '#map-conv1');
    const fc1Of1 = await canvasPixels(page, '#map-fc1');
    const changed = differing(conv1Of8, conv1Of1);
    console.log(`# conv1 canvas: ${changed} of ${conv1Of8.length} bytes differ between an 8 and a 1`);
    assert.ok(changed > 500, `conv1's maps hardly changed between an 8 and a 1 (${changed} bytes)`);
    assert.ok(differing(fc1Of8, fc1Of1) > 20, "fc1's strip changed");
    assert.notEqual(await page.textContent('#maps-text'), mapsText8);

    // Training changes the filters of the network in training.
    await page.check('#use-training', { force: true });
    await page.waitForFunction(() => /training/.test(document.querySelector('#recognizer-name').textContent) && !/loading/.test(document.querySelector('#recognizer-name').textContent));
    const untrained = await canvasPixels(page, '#filter-conv1');
    await page.click('#run');
    await page.waitForFunction(() => document.body.dataset.training === 'running');
    await page.waitForFunction(() => Number(document.querySelector('#stat-step').textContent.replace(/,/g, '')) >= 100, null, { timeout: 60_000 });
    await page.click('#run');
    await page.waitForFunction(() => document.body.dataset.training === 'paused');
    await page.waitForFunction(
      (before) => {
        const c = document.querySelector('#filter-conv1');
        const now = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return now.some((v, i) => v !== before[i]);
      },
      untrained,
      { timeout: 15_000 },
    );
    // The matrix of the network in training comes from its evaluations (at step 0, then during the run).
    await openPanel(page, 'panel-confusion');
    await page.waitForFunction(() => document.querySelector('#confusion').dataset.net === 'training' && document.querySelector('#confusion').dataset.step !== '');
    const trained = await page.evaluate(() => ({
      caption: document.querySelector('#confusion caption').textContent,
      counted: [...document.querySelectorAll('#confusion td button')].reduce((a, b) => a + Number(b.textContent), 0),
      rows: [...document.querySelectorAll('#confusion td.accuracy')].map((td) => td.textContent),
    }));
    console.log(`# network in training: ${trained.caption.split(' held-out')[0]}; per-class accuracy ${trained.rows.join(', ')}`);
    assert.match(trained.caption, /^The network in training at step [\d,]+: \d+\.\d % of/);
    assert.ok(trained.counted >= 1000, `the matrix counts ${trained.counted} digits`);
    assert.ok(trained.rows.every((r) => /^\d+\.\d %$/.test(r)), `per-class accuracy: ${trained.rows}`);
    assertClean(browser);
  } finally {
    await browser.close();
  }
  const { size } = await stat(join(ARTIFACTS, 'panels.png'));
  console.log(`# screenshot with the panels open: ${Math.round(size / 1024)} KiB`);
});

test('the confusion matrix of the pretrained network opens the held-out digits behind a cell', async () => {
  const browser = await openPage({ viewport: { width: 1280, height: 1000 } });
  try {
    const { page } = browser;
    await openPanel(page, 'panel-confusion');
    // The pretrained network is evaluated when the panel first opens.
    await page.waitForFunction(() => document.querySelector('#confusion').dataset.step !== '', null, { timeout: 60_000 });
    const matrix = await page.evaluate(() =>
      [...document.querySelectorAll('#confusion tbody tr')].map((tr) => [...tr.querySelectorAll('td button')].map((b) => Number(b.textContent))),
    );
    const total = matrix.flat().reduce((a, b) => a + b, 0);
    const right = matrix.reduce((a, row, i) => a + row[i], 0);
    console.log(`# pretrained confusion matrix: ${right} of ${total} held-out digits on the diagonal`);
    assert.ok(total >= 1000, `the matrix counts ${total} digits`);
    assert.ok(right / total > 0.95, `the pretrained network's diagonal holds ${right} of ${total}`);
    assert.equal(await page.locator('#confusion thead th[scope=col]').count(), 12, 'column headers: the corner, ten answers, accuracy');
    assert.equal(await page.locator('#confusion tbody th[scope=row]').count(), 10, 'a header for each label');
    assert.match(await page.textContent('#confusion caption'), /pretrained network at step 0: \d+\.\d % of/);

    // The largest mistake (or, for a network that makes none here, the 8s read as 8): its digits,
    // most confident first.
    let cell = { label: 8, predicted: 8, count: matrix[8][8] };
    let worst = 0;
    matrix.forEach((row, label) =>
      row.forEach((count, predicted) => {
        if (label !== predicted && count > worst) {
          worst = count;
          cell = { label, predicted, count };
        }
      }),
    );
    await page.click(`#confusion button[data-label="${cell.label}"][data-predicted="${cell.predicted}"]`);
    await page.waitForFunction((c) => document.querySelector('#cell-digits').dataset.cell === c, `${cell.label},${cell.predicted}`, { timeout: 60_000 });
    const shown = await page.evaluate(() =>
      [...document.querySelectorAll('#cell-digits li')].map((li) => ({ label: li.querySelector('canvas').getAttribute('aria-label'), text: li.textContent })),
    );
    console.log(`# cell ${cell.label}→${cell.predicted} (${cell.count} in the matrix): ${shown.length} digits shown, first ${shown[0]?.text}`);
    assert.equal(shown.length, Math.min(30, cell.count), 'the cell shows its digits (at most 30)');
    const confidences = shown.map((s) => Number(new RegExp(`${cell.predicted}: ([\\d.]+) %`).exec(s.text)?.[1]));
    assert.ok(confidences.every((c) => c > 0), `each digit shows its probability of ${cell.predicted}: ${JSON.stringify(shown.map((s) => s.text))}`);
    for (let i = 1; i < confidences.length; i++) assert.ok(confidences[i] <= confidences[i - 1], `sorted by confidence: ${confidences}`);
    const digitPixels = await canvasPixels(page, '#cell-digits li canvas');
    assert.ok(digitPixels.some((v, i) => i % 4 === 0 && v > 128), 'the digit is drawn');

    // Every panel open, for the picture (the README's www/panels.png is a copy of it).
    for (const id of ['panel-maps', 'panel-filters', 'panel-saliency']) await openPanel(page, id);
    await draw(page, DIGITS[8]);
    await page.waitForFunction(() => document.querySelector('#inside').dataset.explained);
    await page.locator('#inside').screenshot({ path: join(ARTIFACTS, 'panels-inside.png') });
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('on a phone, the folded panels leave the pad and the answer on the first screen, without horizontal scrolling', async () => {
  const browser = await openPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, hasTouch: true });
  try {
    const { page } = browser;
    const layout = () =>
      page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        padBottom: document.querySelector('#pad').getBoundingClientRect().bottom + scrollY,
        answerBottom: document.querySelector('#predicted').getBoundingClientRect().bottom + scrollY,
      }));
    const folded = await layout();
    assert.ok(folded.scrollWidth <= 390, `the page is ${folded.scrollWidth} px wide`);
    // The answer's card is below the fold: the pad carries the answer too, on the first screen
    // of this phone and of a small one (360 × 640).
    await draw(page, DIGITS[8]);
    await page.waitForFunction(() => document.querySelector('#predicted').dataset.digit !== '');
    for (const [width, height] of [[390, 844], [360, 640]]) {
      await page.setViewportSize({ width, height });
      const chip = await page.evaluate(() => {
        const box = document.querySelector('#pad-answer').getBoundingClientRect();
        return {
          text: document.querySelector('#pad-answer').textContent,
          digit: document.querySelector('#predicted').dataset.digit,
          sure: document.querySelector('#confidence').textContent,
          top: box.top + scrollY,
          bottom: box.bottom + scrollY,
          height: box.height,
          padTop: document.querySelector('#pad').getBoundingClientRect().top + scrollY,
        };
      });
      assert.equal(chip.text, `${chip.digit} · ${chip.sure.replace(' sure', '')}`);
      assert.ok(chip.height > 0 && chip.top >= chip.padTop && chip.bottom <= height, `${width}×${height}: the answer on the pad spans ${chip.top}–${chip.bottom} px`);
    }
    // At a desktop's width the answer's own card is beside the pad, and the chip is not shown.
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.equal(await page.locator('#pad-answer').isVisible(), false);
    await page.setViewportSize({ width: 390, height: 844 });
    // Open every panel: still no horizontal scrolling.
    for (const id of ['panel-maps', 'panel-filters', 'panel-saliency', 'panel-confusion']) await openPanel(page, id);
    await page.waitForFunction(() => document.querySelector('#confusion').dataset.step !== '', null, { timeout: 60_000 });
    const open = await layout();
    console.log(`# phone: pad ends at ${Math.round(folded.padBottom)} px, the answer at ${Math.round(folded.answerBottom)} px; width ${open.scrollWidth} px with panels open`);
    assert.ok(open.scrollWidth <= 390, `with the panels open the page is ${open.scrollWidth} px wide`);
    assert.equal(open.padBottom, folded.padBottom, 'the panels come after the pad');
    await page.screenshot({ path: join(ARTIFACTS, 'panels-phone.png'), fullPage: true });
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

