// Accessibility and locales: an axe-core audit, forced colours, a decimal comma, a phone's width,
// the keyboard, and a browser without OffscreenCanvas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { openBrowser, openPage, waitUntilReady, assertClean, BASE_URL } from './browser.mjs';
import { DIGITS, drawWithMouse } from './digits.mjs';

const require = createRequire(import.meta.url);

test('axe-core finds no serious or critical violation, with every panel open', async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    // Every panel and message open: the details, the error and notice boxes, the MNIST status.
    await page.evaluate(() => {
      for (const d of document.querySelectorAll('details')) d.open = true;
    });
    await page.fill('#lr', 'abc');
    await page.press('#lr', 'Enter');
    await page.waitForSelector('#train-error', { state: 'visible' });
    await page.setInputFiles('#mnist-files', []);
    // The page's Content-Security-Policy refuses inline scripts, so axe is evaluated, not injected as a tag.
    await page.evaluate(await readFile(require.resolve('axe-core/axe.min.js'), 'utf8'));
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = result.violations
      .filter((v) => ['serious', 'critical'].includes(v.impact))
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    const minor = result.violations.filter((v) => !['serious', 'critical'].includes(v.impact)).map((v) => `${v.id} (${v.impact})`);
    console.error(`axe: ${result.violations.length} violations; minor: ${minor.join(', ') || 'none'}`);
    assert.deepEqual(bad, []);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('in forced-colours mode the ink stays visible on the pad', async () => {
  const browser = await openPage();
  try {
    const { page } = browser;
    await page.emulateMedia({ forcedColors: 'active', colorScheme: 'dark' });
    assert.equal(await page.evaluate(() => matchMedia('(forced-colors: active)').matches), true);
    await drawWithMouse(page, DIGITS[7]);
    const png = (await page.locator('#pad').screenshot()).toString('base64');
    // The screenshot's pixels: ink is what differs strongly from the pad's background.
    const { dark, light } = await page.evaluate(async (png) => {
      // Decoded here: the page's Content-Security-Policy refuses to fetch data: URLs.
      const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bitmap, 0, 0);
      const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
      let dark = 0;
      let light = 0;
      for (let i = 0; i < data.length; i += 4) {
        const y = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
        if (y < 64) dark++;
        else if (y > 192) light++;
      }
      return { dark: dark / (data.length / 4), light: light / (data.length / 4) };
    }, png);
    console.error(`forced colours: ${(dark * 100).toFixed(1)} % dark (ink), ${(light * 100).toFixed(1)} % light (pad)`);
    assert.ok(dark > 0.02 && dark < 0.4, `the ink covers ${dark} of the pad`);
    assert.ok(light > 0.5, `the pad behind the ink is light: ${light}`);
    // And the drawing is recognized as before.
    await page.waitForFunction(() => document.querySelector('#predicted').textContent === '7');
  } finally {
    await browser.close();
  }
});

test('with a German locale the learning rate takes "0,01", and a refusal quotes what was typed', async () => {
  const browser = await openPage({ locale: 'de-DE' }, '?test-hooks');
  try {
    const { page } = browser;
    assert.equal(await page.evaluate(() => navigator.language), 'de-DE');
    assert.match(await page.inputValue('#lr'), /^\d+,\d+$/, 'the learning rate is shown with a decimal comma');
    await page.fill('#lr', '0,01');
    await page.press('#lr', 'Enter');
    await page.waitForFunction(() => window.lenetPage.trainingState()?.learningRate === 0.01);
    assert.equal(await page.inputValue('#lr'), '0,01');
    assert.ok(await page.isHidden('#train-error'));

    for (const [typed, why] of [
      ['-0,5', /was not accepted: learning_rate must be a positive finite number, got -0\.5$/],
      ['0,0,1', /not a number/],
    ]) {
      await page.fill('#lr', typed);
      await page.press('#lr', 'Enter');
      await page.waitForFunction((typed) => {
        const box = document.querySelector('#train-error');
        return !box.hidden && box.textContent.includes(`“${typed}”`);
      }, typed);
      const text = await page.textContent('#train-error');
      assert.ok(text.includes(`“${typed}”`), `the refusal quotes the entry: ${text}`);
      assert.match(text, why);
      console.error(`refused: ${text}`);
      assert.equal((await page.evaluate(() => window.lenetPage.trainingState())).learningRate, 0.01, 'the rate is unchanged');
      assert.equal(await page.inputValue('#lr'), '0,01', 'the field shows the rate in force again');
    }
    // A good entry after a refusal is taken, and clears it.
    await page.fill('#lr', '0,02');
    await page.press('#lr', 'Enter');
    await page.waitForSelector('#train-error', { state: 'hidden' });
    assert.equal((await page.evaluate(() => window.lenetPage.trainingState())).learningRate, 0.02);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('at 390 px nothing scrolls sideways; the pad is labelled; every control is reached with Tab', async () => {
  const browser = await openPage({ viewport: { width: 390, height: 844 }, hasTouch: true });
  try {
    const { page } = browser;
    const width = await page.evaluate(() => document.scrollingElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    assert.ok((await page.getAttribute('#pad', 'aria-label')).length > 10);
    const labelId = await page.getAttribute('#pad', 'aria-describedby');
    assert.ok(await page.isVisible(`#${labelId}`), 'the pad has a visible label');

    const controls = await page.evaluate(() =>
      [...document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')]
        // A folded <details> hides its content from Tab (Chromium lays it out with content-visibility: hidden).
        .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')
        .filter((el) => !el.closest('details:not([open])'))
        .map((el) => el.id || `${el.tagName.toLowerCase()}[${el.name || el.value || el.textContent.trim()}]`),
    );
    const reached = new Set();
    await page.locator('body').focus();
    for (let i = 0; i < controls.length * 2 + 5; i++) {
      await page.keyboard.press('Tab');
      reached.add(
        await page.evaluate(() => {
          const el = document.activeElement;
          return el.id || `${el.tagName.toLowerCase()}[${el.name || el.value || el.textContent.trim()}]`;
        }),
      );
    }
    const missed = controls.filter((c) => !reached.has(c));
    // Radio buttons of one group are one tab stop: reaching the checked one reaches the group.
    const radiosOk = missed.every((c) => c.startsWith('input[recognizer') || c === 'use-training');
    assert.ok(radiosOk && controls.length > 8, `not reached with Tab: ${missed.join(', ')} (of ${controls.join(', ')})`);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('without OffscreenCanvas the pad still draws and the digit is recognized', async () => {
  const browser = await openBrowser();
  try {
    const { page, context } = browser;
    await context.addInitScript(() => {
      delete globalThis.OffscreenCanvas;
    });
    await page.goto(BASE_URL);
    await waitUntilReady(page);
    assert.equal(await page.evaluate(() => typeof OffscreenCanvas), 'undefined');
    await drawWithMouse(page, DIGITS[3]);
    await page.waitForFunction(() => document.querySelector('#predicted').textContent === '3');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
