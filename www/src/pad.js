// A square drawing pad for mouse, touch and pen, through pointer events.
//
// Strokes are kept as point lists in CSS pixels, so the backing store can follow
// devicePixelRatio (sharp on high-DPI screens) and be redrawn at any time, and undo is a pop.
// Ink is opaque black on a transparent backing store: the alpha channel is the ink.
// The model reads a second copy drawn at a fixed 168 × 168 (6 × 28): the same input on every
// screen and at every pad size, and preprocessing cheap enough to run on every frame while
// training competes for the CPU; the digit is scaled down to 20 px anyway.
const INK_SIDE = 168;

// A touch that comes this soon after the pen was on the pad is the palm resting on the screen.
const PALM_MS = 500;

// Relative to the pad's side: with a digit drawn across most of the pad, this gives strokes as
// thick, relative to the digit, as MNIST's (about 2–3 px of the 20 px box).
const STROKE = 0.085;

export class DrawingPad extends EventTarget {
  #strokes = []; // finished strokes, each a list of [x, y] in CSS pixels

  constructor(canvas) {
    super();
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    // A detached <canvas> where OffscreenCanvas is missing (Safari before 16.4): the same 2D context.
    this.ink = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
    this.inkCtx = this.ink.getContext('2d', { willReadFrequently: true });
    this.active = null; // { pointerId, pointerType, points }
    this.pens = new Set(); // pen pointers that are down
    this.penAt = -Infinity; // when a pen last touched the pad (event time stamp)
    this.size = 0;
    this.dpr = 1;

    canvas.style.touchAction = 'none';
    canvas.addEventListener('pointerdown', (e) => this.#down(e));
    canvas.addEventListener('pointermove', (e) => this.#move(e));
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
      canvas.addEventListener(type, (e) => this.#up(e));
    }
    // Touch and pen must draw, never scroll, zoom or open a menu.
    canvas.addEventListener('touchstart', (e) => e.preventDefault(), { passive: false });
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());

    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#watchDpr();
    this.#resize();
  }

  get empty() {
    return this.#strokes.length === 0 && !this.active;
  }

  clear() {
    this.#strokes = [];
    this.active = null;
    this.#redraw();
    this.#changed(true);
  }

  undo() {
    if (this.active) this.active = null;
    else this.#strokes.pop();
    this.#redraw();
    this.#changed(true);
  }

  /**
   * The strokes, finished and in progress, in CSS pixels of the pad: `xy` holds x, y of every
   * point, stroke after stroke; `ends[i]` is the number of points up to the end of stroke i.
   * `width` and `height` are the pad's size in CSS pixels.
   */
  strokes() {
    const all = this.active ? [...this.#strokes, this.active.points] : this.#strokes;
    const ends = new Uint32Array(all.length);
    let n = 0;
    all.forEach((stroke, i) => {
      n += stroke.length;
      ends[i] = n;
    });
    const xy = new Float32Array(2 * n);
    let k = 0;
    for (const stroke of all) {
      for (const [x, y] of stroke) {
        xy[k++] = x;
        xy[k++] = y;
      }
    }
    return { xy, ends, width: this.size, height: this.size };
  }

  /** The backing store's pixels, for the model's preprocessing (ink is opaque on transparent). */
  pixels() {
    const { width, height } = this.ink;
    return { rgba: this.inkCtx.getImageData(0, 0, width, height).data, width, height };
  }

  #watchDpr() {
    const query = matchMedia(`(resolution: ${devicePixelRatio}dppx)`);
    query.addEventListener(
      'change',
      () => {
        this.#resize();
        this.#watchDpr();
      },
      { once: true },
    );
  }

  #resize() {
    const rect = this.canvas.getBoundingClientRect();
    const size = rect.width;
    const dpr = window.devicePixelRatio || 1;
    if (size === 0 || (size === this.size && dpr === this.dpr)) return;
    this.size = size;
    this.dpr = dpr;
    this.canvas.width = Math.round(size * dpr);
    this.canvas.height = Math.round(size * dpr);
    this.ink.width = INK_SIDE;
    this.ink.height = INK_SIDE;
    this.#redraw();
    if (!this.empty) this.#changed(true);
  }

  #point(e) {
    const rect = this.canvas.getBoundingClientRect();
    // Scale by the displayed size, which CSS transforms or zoom may make differ from this.size.
    return [((e.clientX - rect.left) * this.size) / rect.width, ((e.clientY - rect.top) * this.size) / rect.height];
  }

  // Palm rejection: while a pen is down, or has just been lifted, touches draw nothing; a pen that
  // comes down discards the touch stroke in progress (the palm landed first).
  #palm(e) {
    if (e.pointerType === 'pen') {
      this.penAt = e.timeStamp;
      return false;
    }
    return e.pointerType === 'touch' && (this.pens.size > 0 || e.timeStamp - this.penAt < PALM_MS);
  }

  #down(e) {
    if (e.pointerType === 'pen') {
      this.pens.add(e.pointerId);
      if (this.active?.pointerType === 'touch') {
        this.active = null;
        this.#redraw();
        this.#changed(true);
      }
    }
    if (this.#palm(e)) {
      e.preventDefault();
      return;
    }
    if (this.active || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    try {
      // Keeps the stroke alive when the pointer leaves the pad, and brings the pointerup back.
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // A pointer that is already gone: its pointerup or pointercancel ends the stroke.
    }
    this.active = { pointerId: e.pointerId, pointerType: e.pointerType, points: [this.#point(e)] };
    this.#drawSegment(this.active.points, 0);
    this.#changed(false);
  }

  #move(e) {
    if (e.pointerType === 'pen') this.penAt = e.timeStamp;
    if (!this.active || e.pointerId !== this.active.pointerId) return;
    e.preventDefault();
    // Coalesced events keep fast strokes smooth: the browser may fire one event per frame.
    const events = e.getCoalescedEvents?.() ?? [];
    const points = this.active.points;
    const from = points.length - 1;
    for (const ev of events.length ? events : [e]) points.push(this.#point(ev));
    this.#drawSegment(points, from);
    this.#changed(false);
  }

  #up(e) {
    if (e.pointerType === 'pen') {
      this.pens.delete(e.pointerId);
      this.penAt = e.timeStamp;
    }
    if (!this.active || e.pointerId !== this.active.pointerId) return;
    // A lifted, cancelled or lost pointer all end the stroke; none leaves the pen down.
    const stroke = this.active.points;
    this.active = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    this.#strokes.push(stroke);
    this.#changed(true);
  }

  #drawSegment(points, from) {
    this.#stroke(this.ctx, this.dpr, points, from);
    this.#stroke(this.inkCtx, this.ink.width / this.size, points, from);
  }

  #stroke(ctx, scale, points, from) {
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = this.size * STROKE;
    ctx.strokeStyle = '#000';
    ctx.fillStyle = '#000';
    ctx.beginPath();
    if (points.length === 1) {
      ctx.arc(points[0][0], points[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.moveTo(points[from][0], points[from][1]);
    for (let i = from + 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
    ctx.stroke();
  }

  #redraw() {
    for (const ctx of [this.ctx, this.inkCtx]) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    }
    for (const stroke of this.#strokes) this.#drawSegment(stroke, 0);
    if (this.active) this.#drawSegment(this.active.points, 0);
  }

  #changed(final) {
    this.dispatchEvent(new CustomEvent('change', { detail: { final } }));
  }
}

// Inputs whose keys are not text: a radio button, a checkbox or a button keeps the pad's keys
// working after a click on it.
const NOT_TEXT = new Set(['radio', 'checkbox', 'button', 'submit', 'reset', 'file', 'color', 'image']);

/** Whether `element` (a key event's target, or the focused element) takes typed text or keys of
 * its own (a text field, a select, a slider), so that the page's shortcuts leave it its keys. */
export function takesKeys(element) {
  if (!element || typeof element.matches !== 'function') return false;
  if (element instanceof HTMLInputElement) return !NOT_TEXT.has(element.type);
  return element.matches('select, textarea, [contenteditable]:not([contenteditable="false"])');
}

/** The pad's buttons and keys: Undo, Clear, Escape, Ctrl+Z, and the hint shown on an empty pad. */
export function bindPadControls(pad, { undo, clear, hint }, target = window) {
  pad.addEventListener('change', () => {
    undo.disabled = pad.empty;
    clear.disabled = pad.empty;
    hint.hidden = !pad.empty;
  });
  undo.addEventListener('click', () => pad.undo());
  clear.addEventListener('click', () => pad.clear());
  target.addEventListener('keydown', (e) => {
    if (takesKeys(e.target)) return;
    if (e.key === 'Escape') pad.clear();
    else if ((e.ctrlKey || e.metaKey) && e.key === 'z') {
      e.preventDefault();
      pad.undo();
    }
  });
}
