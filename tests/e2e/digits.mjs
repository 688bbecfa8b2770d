// Digits as a person draws them: strokes in pad coordinates (0..1 across, 0..1 down), each a
// list of control points that a Catmull-Rom curve passes through, drawn at a hand's pace.

const TAU = 2 * Math.PI;
const arc = (cx, cy, rx, ry, from, to, n = 24) =>
  Array.from({ length: n + 1 }, (_, i) => {
    const t = from + ((to - from) * i) / n;
    return [cx + rx * Math.cos(t), cy + ry * Math.sin(t)];
  });

export const DIGITS = {
  0: [arc(0.5, 0.5, 0.19, 0.3, -Math.PI / 2, -Math.PI / 2 - TAU * 1.03, 36)],
  1: [[[0.47, 0.24], [0.55, 0.18], [0.53, 0.5], [0.51, 0.82]]],
  2: [[[0.32, 0.33], [0.4, 0.22], [0.52, 0.18], [0.64, 0.24], [0.66, 0.36], [0.58, 0.5], [0.44, 0.65], [0.31, 0.8], [0.5, 0.79], [0.72, 0.8]]],
  3: [[[0.33, 0.26], [0.47, 0.18], [0.62, 0.22], [0.64, 0.35], [0.5, 0.47], [0.44, 0.48], [0.56, 0.5], [0.67, 0.6], [0.66, 0.73], [0.52, 0.81], [0.33, 0.76]]],
  4: [[[0.42, 0.18], [0.36, 0.4], [0.3, 0.6], [0.5, 0.6], [0.72, 0.59]], [[0.62, 0.36], [0.61, 0.6], [0.6, 0.84]]],
  5: [[[0.68, 0.2], [0.52, 0.2], [0.38, 0.2], [0.36, 0.35], [0.35, 0.48], [0.5, 0.43], [0.64, 0.49], [0.68, 0.62], [0.62, 0.76], [0.48, 0.81], [0.33, 0.76]]],
  6: [[[0.62, 0.18], [0.47, 0.3], [0.37, 0.48], [0.35, 0.66], [0.42, 0.79], [0.54, 0.81], [0.65, 0.72], [0.64, 0.59], [0.52, 0.52], [0.4, 0.58], [0.36, 0.66]]],
  7: [[[0.3, 0.22], [0.5, 0.21], [0.7, 0.2], [0.6, 0.4], [0.52, 0.6], [0.45, 0.82]]],
  8: [Array.from({ length: 49 }, (_, i) => {
    const t = (TAU * i) / 48;
    return [0.5 + 0.16 * Math.sin(2 * t) * (t < Math.PI / 2 || t > (3 * Math.PI) / 2 ? 0.8 : 1), 0.5 - 0.31 * Math.cos(t)];
  })],
  9: [[...arc(0.5, 0.36, 0.15, 0.15, 0, -TAU, 24), [0.65, 0.5], [0.63, 0.66], [0.61, 0.83]]],
};

// Dense points along a Catmull-Rom spline through the control points.
export function spline(points, perSegment = 6) {
  if (points.length < 3) {
    const out = [];
    for (let i = 0; i < points.length - 1; i++) {
      for (let k = 0; k < perSegment; k++) {
        const t = k / perSegment;
        out.push([points[i][0] + t * (points[i + 1][0] - points[i][0]), points[i][1] + t * (points[i + 1][1] - points[i][1])]);
      }
    }
    out.push(points[points.length - 1]);
    return out;
  }
  const p = [points[0], ...points, points[points.length - 1]];
  const out = [];
  for (let i = 1; i < p.length - 2; i++) {
    for (let k = 0; k < perSegment; k++) {
      const t = k / perSegment;
      const t2 = t * t;
      const t3 = t2 * t;
      const f = (a, b, c, d) => 0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t2 + (-a + 3 * b - 3 * c + d) * t3);
      out.push([f(p[i - 1][0], p[i][0], p[i + 1][0], p[i + 2][0]), f(p[i - 1][1], p[i][1], p[i + 1][1], p[i + 2][1])]);
    }
  }
  out.push(points[points.length - 1]);
  return out;
}

/** Draws strokes on the pad with the mouse: pointerdown, a run of pointermoves, pointerup. */
export async function drawWithMouse(page, strokes, selector = '#pad') {
  // A click elsewhere (a button further down the page) may have scrolled the pad out of view.
  await page.locator(selector).scrollIntoViewIfNeeded();
  const box = await page.locator(selector).boundingBox();
  const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
  for (const stroke of strokes) {
    const path = spline(stroke).map(at);
    await page.mouse.move(...path[0]);
    await page.mouse.down();
    for (const point of path.slice(1)) await page.mouse.move(...point);
    await page.mouse.up();
  }
}

/** Draws strokes with a finger, through the DevTools protocol's touch events. */
export async function drawWithTouch(page, strokes, selector = '#pad') {
  await page.locator(selector).scrollIntoViewIfNeeded();
  const box = await page.locator(selector).boundingBox();
  const at = ([x, y]) => ({ x: box.x + x * box.width, y: box.y + y * box.height, id: 1 });
  const cdp = await page.context().newCDPSession(page);
  try {
    for (const stroke of strokes) {
      const path = spline(stroke).map(at);
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [path[0]] });
      for (const point of path.slice(1)) {
        await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [point] });
      }
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    }
  } finally {
    await cdp.detach();
  }
}
