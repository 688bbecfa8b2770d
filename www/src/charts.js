// Live charts of the training run, drawn with uPlot.
//
// Data arrive many times a second; the charts are redrawn at most a few times a second, on an
// animation frame, so that drawing them never holds the main thread for long.
import uPlot from 'uplot';

const REDRAW_MS = 250;
// Beyond this many steps the loss chart plots a thinned copy.
const MAX_POINTS = 4000;
// Exponential moving average of the loss, debiased at the start as TensorBoard does.
const SMOOTHING = 0.95;

const COLORS = { raw: 'rgba(99, 102, 241, 0.35)', smooth: '#4338ca', bad: '#dc2626', acc: '#059669' };

const decades = (_, ticks) => ticks.map((t) => (Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9 ? t : null));

function sizeOf(el) {
  const width = Math.max(240, Math.floor(el.clientWidth));
  return { width, height: Math.round(Math.min(260, Math.max(180, width * 0.5))) };
}

export class TrainingCharts {
  constructor(lossEl, accEl) {
    this.lossEl = lossEl;
    this.accEl = accEl;
    this.reset();

    const common = {
      ...sizeOf(lossEl),
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
    };
    this.loss = new uPlot(
      {
        ...common,
        series: [
          { label: 'step' },
          { label: 'loss', stroke: COLORS.raw, width: 1, points: { show: false }, value: (_, v) => fmt(v, 4) },
          { label: 'smoothed', stroke: COLORS.smooth, width: 2, points: { show: false }, value: (_, v) => fmt(v, 4) },
          {
            label: 'non-finite',
            stroke: COLORS.bad,
            fill: COLORS.bad,
            width: 0,
            paths: () => null,
            points: { show: true, size: 9, stroke: COLORS.bad, fill: COLORS.bad },
            value: (_, v) => (v == null ? '–' : 'NaN/∞'),
          },
        ],
        axes: [
          { label: 'step', size: 40 },
          {
            label: 'cross-entropy',
            size: 56,
            // Decades only: a log axis with every minor tick is a wall of grey.
            filter: decades,
            grid: { filter: decades, stroke: 'rgba(0, 0, 0, 0.07)', width: 1 },
            ticks: { filter: decades },
            values: (_, ticks) => ticks.map((t) => (t == null ? '' : t < 1e-3 ? `1e${Math.round(Math.log10(t))}` : fmt(t, 2))),
          },
        ],
        scales: {
          x: { time: false, range: (_, min, max) => (min == null ? [0, 100] : min === max ? [min - 1, max + 1] : [min, max]) },
          // Before the first step, an empty decade range keeps the axes on screen.
          y: { distr: 3, log: 10, range: (_, min, max) => (min == null || !(max > 0) ? [0.01, 10] : uPlot.rangeLog(min, max, 10, true)) },
        },
      },
      this.lossData(),
      lossEl,
    );
    this.acc = new uPlot(
      {
        ...common,
        series: [
          { label: 'step' },
          {
            label: 'accuracy',
            stroke: COLORS.acc,
            width: 2,
            points: { show: true, size: 5 },
            value: (_, v) => (v == null ? '–' : `${(v * 100).toFixed(1)} %`),
          },
        ],
        axes: [
          { label: 'step', size: 40 },
          { label: 'accuracy', size: 56, values: (_, ticks) => ticks.map((t) => `${Math.round(t * 100)} %`) },
        ],
        scales: { x: { time: false }, y: { range: [0, 1] } },
      },
      [[], []],
      accEl,
    );
    new ResizeObserver(() => {
      this.loss.setSize(sizeOf(this.lossEl));
      this.acc.setSize(sizeOf(this.accEl));
    }).observe(lossEl.parentElement.parentElement);
  }

  reset() {
    this.steps = [];
    this.raw = [];
    this.smooth = [];
    this.bad = [];
    this.ema = 0;
    this.emaWeight = 0;
    this.evalSteps = [];
    this.accuracy = [];
    this.nonFinite = 0;
    this.lossDirty = true;
    this.accDirty = true;
    this.schedule();
  }

  /** Losses of consecutive steps; a NaN or infinite loss, or a step where training diverged, is
   * plotted as a red marker. */
  addSteps(steps) {
    for (const { step, loss, diverged } of steps) {
      this.steps.push(step);
      if (Number.isFinite(loss) && !diverged) {
        this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * loss;
        this.emaWeight = SMOOTHING * this.emaWeight + (1 - SMOOTHING);
        this.raw.push(loss);
        this.smooth.push(this.ema / this.emaWeight);
        this.bad.push(null);
      } else {
        this.nonFinite++;
        this.raw.push(null);
        this.smooth.push(null);
        this.bad.push(Number.NaN); // placed on the chart at draw time, where the y range is known
      }
    }
    this.lossDirty = true;
    this.schedule();
  }

  /** Forgets every step after `step`: the run goes on from a checkpoint taken there. */
  truncate(step) {
    let n = this.steps.length;
    while (n && this.steps[n - 1] > step) n--;
    for (const series of [this.steps, this.raw, this.smooth, this.bad]) series.length = n;
    // The running average and the count of non-finite losses, as they were at that step.
    this.ema = 0;
    this.emaWeight = 0;
    this.nonFinite = 0;
    for (const loss of this.raw) {
      if (loss == null) {
        this.nonFinite++;
      } else {
        this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * loss;
        this.emaWeight = SMOOTHING * this.emaWeight + (1 - SMOOTHING);
      }
    }
    while (this.evalSteps.length && this.evalSteps[this.evalSteps.length - 1] > step) {
      this.evalSteps.pop();
      this.accuracy.pop();
    }
    this.lossDirty = true;
    this.accDirty = true;
    this.schedule();
  }

  addEval(step, accuracy) {
    // A reset can follow an evaluation of step 0 of the previous run; keep steps increasing.
    while (this.evalSteps.length && this.evalSteps[this.evalSteps.length - 1] >= step) {
      this.evalSteps.pop();
      this.accuracy.pop();
    }
    this.evalSteps.push(step);
    this.accuracy.push(accuracy);
    this.accDirty = true;
    this.schedule();
  }

  get smoothedLoss() {
    return this.emaWeight ? this.ema / this.emaWeight : null;
  }

  lossData() {
    // Non-finite losses sit at the top of the current range, where they cannot be missed.
    let top = 0;
    for (const v of this.raw) if (v != null && v > top) top = v;
    top = top || 1;
    const n = this.steps.length;
    if (n <= MAX_POINTS) {
      const bad = this.nonFinite ? this.bad.map((v) => (v == null ? null : top)) : this.bad;
      return [this.steps, this.raw, this.smooth, bad];
    }
    // A long run is thinned to one point per bucket, so a redraw stays cheap; a bucket that holds
    // a non-finite loss is represented by it, so no warning marker is ever thinned away.
    const stride = Math.ceil(n / MAX_POINTS);
    const out = [[], [], [], []];
    for (let start = 0; start < n; start += stride) {
      let pick = Math.min(n, start + stride) - 1;
      if (this.nonFinite) {
        for (let i = start; i < start + stride && i < n; i++) {
          if (this.bad[i] != null) {
            pick = i;
            break;
          }
        }
      }
      out[0].push(this.steps[pick]);
      out[1].push(this.raw[pick]);
      out[2].push(this.smooth[pick]);
      out[3].push(this.bad[pick] == null ? null : top);
    }
    return out;
  }

  schedule() {
    if (this.pending || !this.loss) return;
    this.pending = true;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - (this.lastDraw ?? 0)));
    setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
  }

  draw() {
    this.pending = false;
    this.lastDraw = performance.now();
    if (this.lossDirty) this.loss.setData(this.lossData());
    if (this.accDirty) this.acc.setData([this.evalSteps, this.accuracy]);
    this.lossDirty = false;
    this.accDirty = false;
  }
}

export function fmt(v, digits = 4) {
  if (v == null) return '–';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) return v.toExponential(1);
  return a >= 100 ? v.toFixed(0) : Number(v.toPrecision(digits)).toString();
}
