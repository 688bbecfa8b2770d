// "Teach it your handwriting": label a drawing with one tap or key, keep it in "my digits" (a
// gallery, stored in IndexedDB with its strokes), fine-tune the network in use on them in the
// worker (worker/teach.js), show before → after, keep the tuned weights across reloads, reset
// to the shipped weights, and move my digits in and out as JSON or MNIST IDX files.
import { MSG, NETS } from './protocol.js';
import { taughtPatch } from './state.js';
import { toModelInput } from './recognizer.js';
import { takesKeys } from './pad.js';
import { TeachStore } from './teach-store.js';
import { check_mine_count } from 'lenet-wasm';
import { digitsToJson, digitsFromJson, digitsToIdx, digitsFromIdx, gzip } from './teach-files.js';

const PIXELS = 784;
const pct = (x) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)} %`);

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function save(name, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Draws 784 bytes into a 28×28 canvas, ink dark on light as on the pad. */
function thumbnail(pixels) {
  const canvas = el('canvas', { width: 28, height: 28, className: 'teach-thumb' });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < PIXELS; i++) {
    const v = 255 - pixels[i];
    image.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/**
 * Builds the panel into the page. `pad` is the drawing pad, `client` the worker's client,
 * `store` the page's state (its `recognizer` names the network in use), `downloadWeights(net)`
 * the training panel's download; `storage` a TeachStore.
 */
export function bindTeach({ pad, client, store, downloadWeights, shippedWeights, storage = new TeachStore(), target = window }) {
  let digits = []; // { id, label, pixels: Uint8Array(784), strokes, addedAt }
  let busy = false;

  // Ten digit buttons beside the answer.
  const labelRow = el('div', { className: 'teach-labels', role: 'group', ariaLabel: 'Label this drawing as' });
  const labelNote = el('p', { className: 'muted small teach-label-note', textContent: 'Wrong? Tap the right digit (or press 0–9) to add it to my digits.' });
  const labelButtons = Array.from({ length: 10 }, (_, d) => {
    const b = el('button', { type: 'button', className: 'ghost teach-digit', textContent: String(d), disabled: true, title: `Label as ${d}` });
    b.dataset.digit = String(d);
    b.addEventListener('click', () => label(d));
    labelRow.append(b);
    return b;
  });
  const verdict = document.querySelector('section.result .seen');
  verdict.after(labelNote, labelRow);

  // The panel.
  const count = el('span', { className: 'muted small', id: 'teach-count' });
  const gallery = el('ol', { className: 'teach-gallery', id: 'teach-gallery', ariaLabel: 'My digits' });
  const teachButton = el('button', { type: 'button', className: 'primary', id: 'teach-run', textContent: 'Teach' });
  const resetButton = el('button', { type: 'button', className: 'ghost', id: 'teach-reset', textContent: 'Reset to pretrained' });
  const downloadButton = el('button', { type: 'button', className: 'ghost', id: 'teach-download', textContent: 'Download weights' });
  const exportJson = el('button', { type: 'button', className: 'ghost', id: 'teach-export-json', textContent: 'Export JSON' });
  const exportIdx = el('button', { type: 'button', className: 'ghost', id: 'teach-export-idx', textContent: 'Export IDX' });
  const importButton = el('button', { type: 'button', className: 'ghost', id: 'teach-import', textContent: 'Import…' });
  const importFile = el('input', { type: 'file', id: 'teach-import-file', multiple: true, hidden: true, accept: '.json,.gz,.idx1-ubyte,.idx3-ubyte,application/json,application/gzip,application/octet-stream' });
  const result = el('p', { id: 'teach-result', className: 'teach-result', role: 'status' });
  const notice = el('div', { id: 'teach-notice', className: 'alert warn', role: 'alert', hidden: true });
  const error = el('div', { id: 'teach-error', className: 'alert', role: 'alert', hidden: true });
  const section = el('section', { className: 'card teach', id: 'teach' }, [
    el('div', { className: 'card-head' }, [el('h2', { id: 'teach-title', textContent: 'Teach it your handwriting' }), count]),
    el('p', { className: 'muted small', textContent: 'Label drawings it gets wrong, then Teach: the network you recognize with learns your digits, mixed with MNIST so that it keeps the rest.' }),
    el('div', { className: 'buttons teach-buttons' }, [teachButton, resetButton, downloadButton, exportJson, exportIdx, importButton, importFile]),
    result,
    notice,
    error,
    gallery,
  ]);
  section.setAttribute('aria-labelledby', 'teach-title');
  document.querySelector('section.result').after(section);

  const showError = (message) => {
    error.textContent = message ?? '';
    error.hidden = !message;
  };
  const refused = (e) => {
    notice.textContent = `Your digits cannot be stored in this browser (${e?.message ?? e}); they stay on this page until it is closed.`;
    notice.hidden = false;
  };

  function render() {
    gallery.replaceChildren(
      ...digits.map((d) => {
        const remove = el('button', { type: 'button', className: 'ghost teach-delete', textContent: '×', title: `Delete this ${d.label}` });
        remove.setAttribute('aria-label', `Delete this ${d.label}`);
        remove.addEventListener('click', () => removeDigit(d.id));
        const item = el('li', { className: 'teach-item' }, [thumbnail(d.pixels), el('span', { className: 'teach-item-label', textContent: String(d.label) }), remove]);
        item.dataset.label = String(d.label);
        return item;
      }),
    );
    count.textContent = `${digits.length} of my digit${digits.length === 1 ? '' : 's'}`;
    teachButton.disabled = busy || digits.length === 0;
    exportJson.disabled = exportIdx.disabled = digits.length === 0;
    for (const b of labelButtons) b.disabled = pad.empty;
  }

  async function keep(newDigits) {
    digits.push(...newDigits);
    render();
    for (const d of newDigits) await storage.putDigit(d).catch(refused);
  }

  let nextId = Date.now();
  const make = ({ label, pixels, strokes }) => ({ id: `d${nextId++}`, label, pixels, strokes, addedAt: Date.now() + digits.length });

  async function label(d) {
    const input = toModelInput(pad);
    if (!input) return; // an empty pad cannot be labelled
    try {
      check_mine_count(digits.length + 1);
    } catch (e) {
      // The drawing stays on the pad.
      showError(`Not kept: ${e.message ?? e}; delete some of my digits first.`);
      return;
    }
    const pixels = Uint8Array.from(input, (x) => Math.round(Math.min(1, Math.max(0, x)) * 255));
    const strokes = pad.strokes();
    pad.clear();
    await keep([make({ label: d, pixels, strokes })]);
  }

  async function removeDigit(id) {
    digits = digits.filter((d) => d.id !== id);
    render();
    await storage.deleteDigit(id).catch(refused);
  }

  pad.addEventListener('change', () => {
    for (const b of labelButtons) b.disabled = pad.empty;
  });
  target.addEventListener('keydown', (e) => {
    if (!/^[0-9]$/.test(e.key) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (takesKeys(document.activeElement)) return;
    e.preventDefault();
    label(Number(e.key));
  });

  async function teach() {
    const net = store.get().recognizer;
    busy = true;
    render();
    showError(null);
    result.textContent = 'Teaching…';
    try {
      const images = new Uint8Array(digits.length * PIXELS);
      digits.forEach((d, i) => images.set(d.pixels, i * PIXELS));
      const labels = Uint8Array.from(digits, (d) => d.label);
      const report = await client.request({ type: MSG.TEACH, net, images, labels });
      const { before, after } = report;
      result.textContent =
        `Your held-out digits (${report.held}): ${pct(before.mine)} → ${pct(after.mine)} · ` +
        `MNIST held-out: ${pct(before.mnist)} → ${pct(after.mnist)} · ${report.steps} steps in ${Math.round(report.teachMs)} ms`;
      lastReport = report;
      store.set(taughtPatch(store.get(), net, true));
      const { bytes } = await client.request({ type: MSG.EXPORT, net });
      await storage.putWeights({ net, bytes, savedAt: Date.now(), report }).catch(refused);
    } catch (e) {
      result.textContent = '';
      showError(`Teaching failed: ${e.message ?? e}`);
    } finally {
      busy = false;
      render();
    }
  }
  let lastReport = null;

  async function resetToPretrained() {
    const net = store.get().recognizer;
    showError(null);
    try {
      const bytes = await shippedWeights();
      if (!bytes) throw new Error('the shipped weights could not be fetched');
      await client.request({ type: MSG.LOAD_WEIGHTS, net, bytes, name: 'the shipped weights' });
      result.textContent = 'Back to the shipped weights.';
      store.set(taughtPatch(store.get(), net, false));
      await storage.deleteWeights(net).catch(refused);
    } catch (e) {
      showError(`Could not reset: ${e.message ?? e}`);
    }
  }

  async function importFiles(files) {
    showError(null);
    try {
      const list = [...files];
      let imported;
      let source = list[0]?.name; // the file named when there are too many
      if (list.length === 1 && /\.json$/i.test(list[0].name)) {
        imported = digitsFromJson(await list[0].text(), list[0].name);
      } else if (list.length === 2) {
        const images = list.find((f) => /images|idx3/i.test(f.name));
        const labels = list.find((f) => f !== images);
        if (!images) throw new Error(`of ${list[0].name} and ${list[1].name}, none is an image file (its name holds "images" or "idx3")`);
        source = images.name;
        imported = await digitsFromIdx(new Uint8Array(await images.arrayBuffer()), images.name, new Uint8Array(await labels.arrayBuffer()), labels.name);
      } else {
        throw new Error('choose one .json file of my digits, or two IDX files (images and labels)');
      }
      try {
        check_mine_count(digits.length + imported.length);
      } catch (e) {
        throw new Error(
          `${source} holds ${imported.length} digits; with the ${digits.length} you have, ${e.message ?? e}. ` +
            'To train on a dataset, drop its IDX files on "Train on the full MNIST" instead.',
        );
      }
      await keep(imported.map(make));
      result.textContent = `Imported ${imported.length} digit${imported.length === 1 ? '' : 's'}.`;
    } catch (e) {
      showError(`Import failed, nothing changed: ${e.message ?? e}`);
    }
  }

  teachButton.addEventListener('click', teach);
  resetButton.addEventListener('click', resetToPretrained);
  downloadButton.addEventListener('click', () => downloadWeights(store.get().recognizer));
  exportJson.addEventListener('click', () => save('my-digits.json', digitsToJson(digits), 'application/json'));
  exportIdx.addEventListener('click', async () => {
    const { images, labels } = digitsToIdx(digits);
    save('train-images-idx3-ubyte.gz', await gzip(images), 'application/gzip');
    save('train-labels-idx1-ubyte.gz', await gzip(labels), 'application/gzip');
  });
  importButton.addEventListener('click', () => importFile.click());
  importFile.addEventListener('change', () => {
    if (importFile.files.length) importFiles(importFile.files).finally(() => (importFile.value = ''));
  });

  // What survives a reload: my digits, and the tuned weights of the network in use.
  async function restore() {
    try {
      const stored = await storage.digits();
      const known = new Set(digits.map((d) => d.id));
      digits = [...stored.filter((d) => !known.has(d.id)), ...digits];
      render();
      // After the page's own copy of the shipped weights, so that the tuned copy the worker
      // then posts is the one that stays.
      await pageReady;
      for (const net of NETS) {
        const tuned = await storage.weights(net);
        if (!tuned) continue;
        await client.request({ type: MSG.LOAD_WEIGHTS, net, bytes: tuned.bytes, name: 'your tuned weights' });
        store.set(taughtPatch(store.get(), net, true));
        lastReport = tuned.report ?? null;
        result.textContent = 'Your tuned weights are back.';
      }
    } catch (e) {
      refused(e);
    }
  }
  const pageReady = new Promise((resolve) => {
    if (store.get().page === 'ready') resolve();
    store.subscribe((state) => {
      if (state.page === 'ready') resolve();
    });
  });
  render();
  const restored = restore();

  return {
    digits: () => digits.map(({ label, pixels, strokes }) => ({ label, pixels: Array.from(pixels), strokes: strokes && { xy: Array.from(strokes.xy), ends: Array.from(strokes.ends), width: strokes.width, height: strokes.height } })),
    teach: async () => {
      await teach();
      return lastReport;
    },
    restored,
    weights: async () => {
      const { bytes } = await client.request({ type: MSG.EXPORT, net: store.get().recognizer });
      return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
    },
    files: { digitsToJson: () => digitsToJson(digits), digitsToIdx: () => digitsToIdx(digits), importJson: (text, name) => importFiles([new File([text], name)]),
      importIdx: (images, labels) => importFiles([new File([Uint8Array.from(images)], 'mine-images-idx3-ubyte'), new File([Uint8Array.from(labels)], 'mine-labels-idx1-ubyte')]),
    },
  };
}
