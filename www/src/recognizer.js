// Recognition on the main thread: the drawing, turned into the network's 28×28 input, goes
// through an inference-only copy of the chosen network, once per animation frame. The copies come
// from weights: the pretrained file the page fetched, or what the worker posts whenever a
// network changed. Recognizing never waits for the worker.
import { preprocess_strokes } from 'lenet-wasm';

const NAMES = { pretrained: 'pretrained network', training: 'network in training' };
// Once Teach has tuned it on the person's digits, a network is no longer the one it started as.
const TAUGHT_NAMES = { pretrained: 'pretrained + your digits', training: 'network in training + your digits' };

/** The pad's drawing as the core renders it from the strokes (the same renderer, bit for bit,
 * as `lenet eval --unipen`): `{ status: 'digit' | 'empty' | 'too_small', pixels }`, `pixels` a
 * Float32Array(784) in [0, 1] or null. */
export function readDrawing(pad) {
  if (pad.empty) return { status: 'empty', pixels: null };
  const { xy, ends, width, height } = pad.strokes();
  const drawn = preprocess_strokes(xy, ends, width, height);
  return { status: drawn.status, pixels: drawn.pixels ?? null };
}

/** The pad's drawing as the network's input: Float32Array(784) in [0, 1], or null when the pad
 * holds no digit. */
export function toModelInput(pad) {
  return readDrawing(pad).pixels;
}

/**
 * Shows what the chosen network (`store`'s `recognizer`) makes of the pad's drawing.
 * `Model` is the wasm package's inference class; `ui` the page's elements.
 */
export class Recognizer {
  constructor({ ui, store, pad, Model }) {
    this.ui = ui;
    this.store = store;
    this.pad = pad;
    this.Model = Model;
    this.copies = new Map(); // network name → { model, step }
    // Weights that came before WebAssembly was ready on this thread.
    this.early = new Map();
    this.enabled = false;
    this.pixels = null; // the last input, or null when the pad is empty
    this.frame = 0;
    this.seenCtx = ui.seen.getContext('2d');
    this.seenImage = this.seenCtx.createImageData(28, 28);
    this.bars = [];
    this.watchers = new Set(); // see watch()
    for (let d = 0; d < 10; d++) {
      const li = document.createElement('li');
      li.innerHTML = `<span class="label">${d}</span><span class="track"><span class="fill"></span></span><span class="value">–</span>`;
      ui.bars.append(li);
      this.bars.push({ li, fill: li.querySelector('.fill'), value: li.querySelector('.value') });
    }
    pad.addEventListener('change', () => this.schedule());
    store.subscribe((state, previous) => {
      if (state.recognizer !== previous.recognizer) this.refresh();
      else if (state.taught !== previous.taught && this.enabled) this.#showName();
    });
  }

  /** WebAssembly is ready on this thread: recognize from now on. */
  enable() {
    this.enabled = true;
    for (const [net, { bytes, step }] of this.early) this.setWeights(net, bytes, step);
    this.early.clear();
    this.#showName();
    this.recognize();
  }

  /** A new copy of network `net` from the bytes of a .safetensors file; throws on a bad file. */
  setWeights(net, bytes, step) {
    if (!this.enabled) {
      this.early.set(net, { bytes, step });
      return;
    }
    const model = this.Model.from_safetensors(bytes);
    this.copies.get(net)?.model.free();
    this.copies.set(net, { model, step });
    if (net === this.store.get().recognizer) this.refresh();
  }

  /** Forgets the copy of `net` (its worker is gone). */
  drop(net) {
    this.early.delete(net);
    this.copies.get(net)?.model.free();
    this.copies.delete(net);
    if (net === this.store.get().recognizer) this.refresh();
  }

  /** Recognizes at most once per frame, however fast the pointer events come. */
  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.recognize());
  }

  /** The drawing is unchanged but the network is not: answer again with the input already made. */
  refresh() {
    if (!this.enabled) return;
    this.#showName();
    this.#predict();
  }

  recognize() {
    this.frame = 0;
    if (!this.enabled) return;
    const drawing = readDrawing(this.pad);
    this.pixels = drawing.pixels;
    this.status = drawing.status;
    this.#drawSeen();
    this.#predict();
  }

  #predict() {
    const copy = this.copies.get(this.store.get().recognizer);
    this.#showProbabilities(this.pixels && copy ? copy.model.predict(this.pixels) : null);
    for (const watcher of this.watchers) watcher({ pixels: this.pixels, model: copy?.model ?? null, net: this.store.get().recognizer });
  }

  /** Calls `watcher({ pixels, model, net })` whenever the input or the chosen network's copy
   * changed: `pixels` the Float32Array(784) input or null, `model` the copy (borrowed: valid until
   * the next call) or null. Returns a function that stops watching. */
  watch(watcher) {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  #showName() {
    const { recognizer: net, taught } = this.store.get();
    const name = (taught[net] ? TAUGHT_NAMES : NAMES)[net];
    const copy = this.copies.get(net);
    const step = net === 'training' && copy ? `, step ${copy.step.toLocaleString('en')}` : '';
    this.ui.recognizerName.textContent = copy ? name + step : `${name} (loading)`;
  }

  #drawSeen() {
    const data = this.seenImage.data;
    for (let i = 0; i < 784; i++) {
      // White ink on black, as MNIST is usually shown.
      const v = this.pixels ? Math.round(this.pixels[i] * 255) : 0;
      data[i * 4] = v;
      data[i * 4 + 1] = v;
      data[i * 4 + 2] = v;
      data[i * 4 + 3] = 255;
    }
    this.seenCtx.putImageData(this.seenImage, 0, 0);
  }

  #showProbabilities(probabilities) {
    const { ui } = this;
    if (!probabilities) {
      ui.predicted.textContent = '–';
      ui.predicted.dataset.digit = '';
      ui.padAnswer.textContent = '';
      // A tap or a dot is no digit: say so rather than guess.
      ui.confidence.textContent =
        this.status === 'too_small' ? 'Too small to be a digit: draw it bigger' : 'Draw to see a prediction';
      for (const bar of this.bars) {
        bar.fill.style.transform = 'scaleX(0)';
        bar.value.textContent = '–';
        bar.li.classList.remove('best');
      }
      ui.body.dataset.probabilities = '';
      return;
    }
    let best = 0;
    for (let d = 1; d < 10; d++) if (probabilities[d] > probabilities[best]) best = d;
    ui.predicted.textContent = String(best);
    ui.predicted.dataset.digit = String(best);
    const sure = `${(probabilities[best] * 100).toFixed(1)} %`;
    ui.confidence.textContent = `${sure} sure`;
    ui.padAnswer.textContent = `${best} · ${sure}`;
    this.bars.forEach((bar, d) => {
      const p = probabilities[d];
      bar.fill.style.transform = `scaleX(${p.toFixed(4)})`;
      bar.value.textContent = `${(p * 100).toFixed(1)} %`;
      bar.li.classList.toggle('best', d === best);
    });
    // Exact values for tests and tools that read the page.
    ui.body.dataset.probabilities = Array.from(probabilities, (p) => p.toFixed(6)).join(',');
  }
}

/** The "Recognize with" choice, kept in the state's `recognizer`; without pretrained weights,
 * only the network in training can recognize. */
export function bindRecognizerChoice({ ui, store }) {
  for (const input of ui.recognizers) {
    input.addEventListener('change', () => {
      if (input.checked) store.set({ recognizer: input.value });
    });
  }
  store.subscribe((state, previous) => {
    if (state.recognizer === previous.recognizer && state.pretrainedAvailable === previous.pretrainedAvailable) return;
    if (!state.pretrainedAvailable && state.recognizer === 'pretrained') {
      store.set({ recognizer: 'training' });
      return;
    }
    for (const input of ui.recognizers) {
      input.checked = input.value === state.recognizer;
      if (input.value === 'pretrained') input.disabled = !state.pretrainedAvailable;
    }
  });
}
