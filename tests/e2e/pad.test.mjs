// The drawing pad's palm rejection, with synthetic pointer events: a hand resting on the screen
// while a pen writes must not draw. Like every browser test, it fails on a request to another
// origin, a Content-Security-Policy violation or an error in the console.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, assertClean } from './browser.mjs';

/**
 * Runs in the page: plays `script`, a list of [type, pointerType, pointerId, x, y] (x, y in 0..1
 * of the pad) or ['wait', ms], and after each named check records the pad's strokes and the ink
 * under the given points.
 */
function play(script) {
  const pad = document.querySelector('#pad');
  const rect = pad.getBoundingClientRect();
  const inkAt = ([x, y]) => {
    const scale = pad.width / rect.width;
    return pad.getContext('2d').getImageData(Math.round(x * rect.width * scale), Math.round(y * rect.height * scale), 1, 1).data[3];
  };
  const checks = {};
  const run = async () => {
    for (const [type, ...args] of script) {
      if (type === 'wait') {
        await new Promise((resolve) => setTimeout(resolve, args[0]));
      } else if (type === 'check') {
        const [name, points] = args;
        checks[name] = { strokes: window.lenetPage.strokes().ends.length, ink: points.map(inkAt) };
      } else {
        const [pointerType, pointerId, x, y] = args;
        pad.dispatchEvent(
          new PointerEvent(type, {
            pointerId,
            pointerType,
            isPrimary: true,
            button: type === 'pointermove' ? -1 : 0,
            buttons: type === 'pointerup' ? 0 : 1,
            clientX: rect.left + x * rect.width,
            clientY: rect.top + y * rect.height,
            bubbles: true,
            cancelable: true,
          }),
        );
      }
    }
    return checks;
  };
  return run();
}

// A horizontal stroke at height y, from x = 0.2 to 0.8.
const line = (pointerType, id, y) => [
  ['pointerdown', pointerType, id, 0.2, y],
  ...[0.35, 0.5, 0.65, 0.8].map((x) => ['pointermove', pointerType, id, x, y]),
  ['pointerup', pointerType, id, 0.8, y],
];

test('palm rejection: touches draw nothing while a pen is down or just lifted; a pen discards the touch stroke in progress', async () => {
  const browser = await openPage(undefined, '?test-hooks');
  try {
    const { page } = browser;
    const checks = await page.evaluate(play, [
      // A finger alone draws.
      ...line('touch', 11, 0.1),
      ['check', 'finger', [[0.5, 0.1]]],
      // A pen writes while the palm rests: the palm's touches draw nothing.
      ['pointerdown', 'pen', 21, 0.2, 0.3],
      ['pointermove', 'pen', 21, 0.4, 0.3],
      ...line('touch', 12, 0.5),
      ['pointermove', 'pen', 21, 0.8, 0.3],
      ['pointerup', 'pen', 21, 0.8, 0.3],
      ['check', 'pen down', [[0.5, 0.3], [0.5, 0.5]]],
      // Just after the pen lifted, the palm still draws nothing.
      ...line('touch', 13, 0.7),
      ['check', 'pen just lifted', [[0.5, 0.7]]],
      // Long after, a finger draws again...
      ['wait', 700],
      ['pointerdown', 'touch', 14, 0.2, 0.9],
      ['pointermove', 'touch', 14, 0.5, 0.9],
      ['check', 'finger later', [[0.35, 0.9]]],
      // ... until a pen comes down: that touch was the palm, and its stroke goes.
      ['pointerdown', 'pen', 22, 0.2, 0.8],
      ['pointermove', 'pen', 22, 0.5, 0.8],
      ['pointermove', 'touch', 14, 0.8, 0.9],
      ['pointerup', 'pen', 22, 0.5, 0.8],
      ['pointerup', 'touch', 14, 0.8, 0.9],
      ['check', 'pen after finger', [[0.35, 0.9], [0.35, 0.8]]],
    ]);
    console.log(`# palm rejection: ${JSON.stringify(checks)}`);
    assert.deepEqual(checks.finger, { strokes: 1, ink: [255] }, 'a finger alone draws');
    assert.deepEqual(checks['pen down'], { strokes: 2, ink: [255, 0] }, 'the pen draws, the palm does not');
    assert.deepEqual(checks['pen just lifted'], { strokes: 2, ink: [0] }, 'a touch just after the pen lifted');
    assert.deepEqual(checks['finger later'], { strokes: 3, ink: [255] }, 'a finger draws again later');
    assert.deepEqual(checks['pen after finger'], { strokes: 3, ink: [0, 255] }, 'the pen discarded the touch stroke');

    // The strokes are kept as points, in CSS pixels of the pad.
    const strokes = await page.evaluate(() => {
      const { xy, ends, width, height } = window.lenetPage.strokes();
      return { xy: Array.from(xy), ends: Array.from(ends), width, height };
    });
    const size = await page.evaluate(() => document.querySelector('#pad').getBoundingClientRect().width);
    assert.equal(strokes.width, size);
    assert.equal(strokes.height, size);
    assert.deepEqual(strokes.ends, [5, 8, 10], 'points per stroke: the finger, the first pen, the second pen');
    assert.equal(strokes.xy.length, 2 * 10);
    const near = (a, b) => Math.abs(a - b) < 0.5;
    assert.ok(near(strokes.xy[0], 0.2 * size) && near(strokes.xy[1], 0.1 * size), `the first point: ${strokes.xy.slice(0, 2)}`);
    assert.ok(near(strokes.xy[2 * 9], 0.5 * size) && near(strokes.xy[2 * 9 + 1], 0.8 * size), 'the last point');
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
