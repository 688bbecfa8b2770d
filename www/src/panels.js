// "Inside the network": the feature maps of the current drawing, the learned filters and the
// saliency of a chosen class, from the recognizer's own copy of the chosen network
// (`Model.explain`, `Model.filters`). Each panel folds away; work is done only for open panels,
// at most once per input or weights change (the recognizer calls at most once per frame), and
// drawn with putImageData into small canvases whose ImageData buffers are reused.

const GAP = 1;

/** A canvas showing `count` tiles of h×w values, `cols` to a row, with reused ImageData. */
class TileCanvas {
  constructor(canvas, { count, h, w, cols, rows = Math.ceil(count / cols), at = (t) => [t % cols, Math.floor(t / cols)] }) {
    this.shape = { count, h, w, cols, at };
    canvas.width = cols * (w + GAP) - GAP;
    canvas.height = rows * (h + GAP) - GAP;
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.image = this.ctx.createImageData(canvas.width, canvas.height);
    this.image.data.fill(255); // the gaps stay white
  }

  /**
   * Draws `values` (count·h·w, tile after tile, row-major), or blank tiles for null. `signed`:
   * blue for negative, red for positive, scaled by the largest magnitude; otherwise black to white
   * (activations after ReLU), scaled by the largest value.
   */
  draw(values, signed) {
    const { count, h, w, cols, at } = this.shape;
    const data = this.image.data;
    const width = this.canvas.width;
    let scale = 0;
    if (values) for (let i = 0; i < values.length; i++) scale = Math.max(scale, Math.abs(values[i]));
    scale = scale > 0 ? 1 / scale : 0;
    for (let t = 0; t < count; t++) {
      const [col, row] = at(t);
      const x0 = col * (w + GAP);
      const y0 = row * (h + GAP);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = values ? values[t * h * w + y * w + x] * scale : 0;
          const o = ((y0 + y) * width + x0 + x) * 4;
          if (signed) {
            const m = Math.round(Math.min(1, Math.abs(v)) * 255);
            data[o] = v < 0 ? 255 - m : 255;
            data[o + 1] = 255 - m;
            data[o + 2] = v > 0 ? 255 - m : 255;
          } else {
            const g = Math.round(Math.min(1, Math.max(0, v)) * 255);
            data[o] = g;
            data[o + 1] = g;
            data[o + 2] = g;
          }
          data[o + 3] = 255;
        }
      }
    }
    this.ctx.putImageData(this.image, 0, 0);
  }
}

// The layers shown, with their shapes (channels × h × w) and how their tiles are laid out.
const MAPS = [
  { key: 'conv1', title: 'conv1 (after ReLU)', count: 6, h: 28, w: 28, cols: 6 },
  { key: 'pool1', title: 'pool1', count: 6, h: 14, w: 14, cols: 6 },
  { key: 'conv2', title: 'conv2 (after ReLU)', count: 16, h: 10, w: 10, cols: 8 },
  { key: 'pool2', title: 'pool2', count: 16, h: 5, w: 5, cols: 8 },
  { key: 'fc1', title: 'fc1', count: 1, h: 1, w: 120, cols: 1, signed: true },
  { key: 'fc2', title: 'fc2', count: 1, h: 1, w: 84, cols: 1, signed: true },
];
const FILTERS = [
  { key: 'conv1', title: 'conv1: 6 filters of 5×5', count: 6, h: 5, w: 5, cols: 6 },
  // Column o holds output channel o's six 5×5 kernels, one per input channel, top to bottom.
  { key: 'conv2', title: 'conv2: 16 × 6 filters of 5×5', count: 96, h: 5, w: 5, cols: 16, rows: 6, at: (t) => [Math.floor(t / 6), t % 6] },
];

const TEMPLATE = `
  <div class="card-head"><h2 id="inside-title">Inside the network</h2></div>
  <details id="panel-maps" class="panel">
    <summary>Feature maps of your drawing</summary>
    <p class="muted small">Each layer's outputs for the drawing, brighter for stronger (fc1 and fc2: red positive, blue negative).</p>
    <div class="maps"></div>
    <p id="maps-text" class="sr-text small"></p>
  </details>
  <details id="panel-filters" class="panel">
    <summary>Learned filters</summary>
    <p class="muted small">The convolution kernels, red for positive weights, blue for negative; they change as the network trains.</p>
    <div class="filters"></div>
    <p id="filters-text" class="sr-text small"></p>
  </details>
  <details id="panel-saliency" class="panel">
    <summary>Why this digit? (saliency)</summary>
    <p class="muted small">Which pixels raise (red) or lower (blue) the score of a digit; shown over the 28 × 28 input too.</p>
    <div class="saliency-controls">
      <div class="class-buttons" role="group" aria-label="Explain the score of digit"></div>
      <label class="field">Show
        <select id="saliency-mode">
          <option value="saliency">saliency (∂ score / ∂ pixel)</option>
          <option value="gradient_x_input">gradient × input</option>
        </select>
      </label>
    </div>
    <div class="saliency-view">
      <canvas id="saliency-canvas" width="28" height="28" role="img" aria-label="Saliency of the chosen digit over the 28 × 28 input" aria-describedby="saliency-text"></canvas>
      <p id="saliency-text" class="small" aria-live="polite">Draw a digit to see where its evidence lies.</p>
    </div>
  </details>
  <details id="panel-confusion" class="panel">
    <summary>Confusion matrix on held-out digits</summary>
  </details>`;

/**
 * Builds the "Inside the network" section after `after` (an element) and keeps its panels drawn
 * from `recognizer` (recognizer.js, through `recognizer.watch`). Returns `{ section, confusionPanel }`,
 * the latter the empty <details> the confusion matrix fills.
 */
export function createInsidePanels({ after, recognizer }) {
  const section = document.createElement('section');
  section.className = 'card inside';
  section.id = 'inside';
  section.setAttribute('aria-labelledby', 'inside-title');
  section.innerHTML = TEMPLATE;
  after.after(section);
  const $ = (selector) => section.querySelector(selector);

  const figure = (parent, { key, title }, prefix) => {
    const f = document.createElement('figure');
    f.innerHTML = `<figcaption class="small muted"></figcaption><canvas role="img"></canvas>`;
    f.querySelector('figcaption').textContent = title;
    const canvas = f.querySelector('canvas');
    canvas.id = `${prefix}-${key}`;
    canvas.setAttribute('aria-label', title);
    canvas.className = key.startsWith('fc') ? 'strip' : 'tiles';
    parent.append(f);
    return canvas;
  };
  const maps = MAPS.map((m) => ({ ...m, view: new TileCanvas(figure($('.maps'), m, 'map'), m) }));
  const filters = FILTERS.map((m) => ({ ...m, view: new TileCanvas(figure($('.filters'), m, 'filter'), m) }));
  const panels = { maps: $('#panel-maps'), filters: $('#panel-filters'), saliency: $('#panel-saliency') };

  // Saliency: drawn in the panel over the input, and over the page's own 28×28 input canvas.
  const seen = document.getElementById('seen');
  const overlay = document.createElement('canvas');
  overlay.width = overlay.height = 28;
  overlay.className = 'saliency-overlay';
  overlay.hidden = true;
  overlay.setAttribute('aria-hidden', 'true');
  seen.parentElement.classList.add('has-overlay');
  seen.after(overlay);
  const overlayCtx = overlay.getContext('2d');
  const overlayImage = overlayCtx.createImageData(28, 28);
  const big = $('#saliency-canvas');
  const bigCtx = big.getContext('2d');
  const bigImage = bigCtx.createImageData(28, 28);
  const modeSelect = $('#saliency-mode');
  let chosen = null; // the digit explained, or null for the predicted one
  const classButtons = [];
  for (let d = 0; d < 10; d++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'ghost';
    b.textContent = String(d);
    b.dataset.digit = String(d);
    b.setAttribute('aria-pressed', 'false');
    b.addEventListener('click', () => {
      chosen = chosen === d ? null : d;
      render();
    });
    $('.class-buttons').append(b);
    classButtons.push(b);
  }
  modeSelect.addEventListener('change', () => render());

  let latest = { pixels: null, model: null, net: null };
  let filtersOf = null; // the model whose filters are drawn
  recognizer.watch((input) => {
    latest = input;
    render();
  });
  for (const panel of Object.values(panels)) panel.addEventListener('toggle', () => render());

  function render() {
    const { pixels, model } = latest;
    if (panels.filters.open && model !== filtersOf) drawFilters(model);
    overlay.hidden = !panels.saliency.open || !pixels || !model;
    if (!panels.maps.open && !panels.saliency.open) return;
    let explained = null;
    if (pixels && model) {
      try {
        explained = model.explain(pixels, chosen ?? undefined);
      } catch (error) {
        console.error(error);
      }
    }
    if (panels.maps.open) drawMaps(explained);
    if (panels.saliency.open) drawSaliency(explained, pixels);
    section.dataset.explained = explained ? String(explained.class) : '';
  }

  function drawMaps(x) {
    const words = [];
    for (const m of maps) {
      const values = x ? x[m.key] : null;
      m.view.draw(values, m.signed);
      if (values) words.push(describeLayer(m, values));
    }
    $('#maps-text').textContent = x ? words.join(' ') : 'Draw a digit to see the feature maps.';
  }

  function drawFilters(model) {
    filtersOf = model;
    const f = model ? model.filters() : null;
    const words = [];
    for (const m of filters) {
      const values = f ? f[m.key] : null;
      m.view.draw(values, true);
      if (values) {
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of values) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        words.push(`${m.title}, weights from ${lo.toFixed(2)} to ${hi.toFixed(2)}.`);
      }
    }
    $('#filters-text').textContent = f ? words.join(' ') : 'The network is still loading.';
  }

  function drawSaliency(x, pixels) {
    for (const b of classButtons) b.setAttribute('aria-pressed', String(x ? Number(b.dataset.digit) === x.class : false));
    const values = x ? x[modeSelect.value] : null;
    let scale = 0;
    if (values) for (let i = 0; i < 784; i++) scale = Math.max(scale, Math.abs(values[i]));
    scale = scale > 0 ? 1 / scale : 0;
    const o = overlayImage.data;
    const b = bigImage.data;
    for (let i = 0; i < 784; i++) {
      const v = values ? values[i] * scale : 0;
      const a = Math.min(1, Math.abs(v));
      const [r, g, bl] = v > 0 ? [220, 38, 38] : [37, 99, 235];
      o[i * 4] = r;
      o[i * 4 + 1] = g;
      o[i * 4 + 2] = bl;
      o[i * 4 + 3] = Math.round(a * 230);
      // In the panel: the input, dimmed, under the same colours.
      const base = pixels ? pixels[i] * 110 : 0;
      b[i * 4] = Math.round(base * (1 - a) + r * a);
      b[i * 4 + 1] = Math.round(base * (1 - a) + g * a);
      b[i * 4 + 2] = Math.round(base * (1 - a) + bl * a);
      b[i * 4 + 3] = 255;
    }
    overlayCtx.putImageData(overlayImage, 0, 0);
    bigCtx.putImageData(bigImage, 0, 0);
    const text = $('#saliency-text');
    if (!x) {
      text.textContent = latest.model ? 'Draw a digit to see where its evidence lies.' : 'The network is still loading.';
      return;
    }
    const p = `${(x.probabilities[x.class] * 100).toFixed(1)} %`;
    const which = x.class === x.predicted ? `${x.class} (the network's answer)` : `${x.class} (the answer is ${x.predicted})`;
    text.textContent =
      x.evidence === 'nowhere'
        ? `Nothing in the drawing speaks for ${which}; its probability is ${p}.`
        : `The strongest evidence for ${which} is in ${x.evidence}; its probability is ${p}.`;
  }

  return { section, confusionPanel: $('#panel-confusion') };
}

/** One layer in words, for screen readers. */
function describeLayer(m, values) {
  if (m.count === 1) {
    let active = 0;
    for (const v of values) if (v > 0) active++;
    return `${m.key}: ${active} of ${values.length} units positive.`;
  }
  const size = m.h * m.w;
  let best = 0;
  let bestSum = -Infinity;
  let peak = 0;
  for (let t = 0; t < m.count; t++) {
    let sum = 0;
    for (let i = t * size; i < (t + 1) * size; i++) {
      sum += values[i];
      peak = Math.max(peak, values[i]);
    }
    if (sum > bestSum) {
      bestSum = sum;
      best = t;
    }
  }
  return `${m.key}: ${m.count} maps of ${m.h}×${m.w}, the most active is map ${best + 1}, peak ${peak.toFixed(2)}.`;
}
