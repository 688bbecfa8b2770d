// Training on the full MNIST: the person drops MNIST's four IDX files (plain or gzipped) on the
// training panel, or picks them; they are recognized by their names, and the worker parses them
// and, only if all four are sound, trains and tests on them.
import { MSG } from './protocol.js';

// MNIST's names (http://yann.lecun.com/exdb/mnist/), also as some mirrors spell them
// ("train-images.idx3-ubyte").
const FILES = [
  { key: 'trainImages', name: 'train-images-idx3-ubyte', pattern: /^train-images[.-]idx3-ubyte(\.gz)?$/i },
  { key: 'trainLabels', name: 'train-labels-idx1-ubyte', pattern: /^train-labels[.-]idx1-ubyte(\.gz)?$/i },
  { key: 'testImages', name: 't10k-images-idx3-ubyte', pattern: /^t10k-images[.-]idx3-ubyte(\.gz)?$/i },
  { key: 'testLabels', name: 't10k-labels-idx1-ubyte', pattern: /^t10k-labels[.-]idx1-ubyte(\.gz)?$/i },
];

/**
 * Which of MNIST's files `files` (File objects, or anything with a `name`) holds:
 * `{ found: { [key]: file }, missing: [MNIST's name], unknown: [name], twice: [[name, name, MNIST's name]] }`,
 * where `twice` lists two files given for the same one (plain and gzipped, say), which may differ.
 */
export function sortMnistFiles(files) {
  const found = {};
  const unknown = [];
  const twice = [];
  for (const file of files) {
    const kind = FILES.find((f) => f.pattern.test(file.name));
    if (!kind) unknown.push(file.name);
    else if (found[kind.key]) twice.push([found[kind.key].name, file.name, kind.name]);
    else found[kind.key] = file;
  }
  const missing = FILES.filter((f) => !found[f.key]).map((f) => f.name);
  return { found, missing, unknown, twice };
}

const list = (names) => names.map((n) => `“${n}”`).join(', ');

/** Binds the drop zone and the file picker; the worker's progress arrives through `handlers()`. */
export function bindMnistFiles({ store, client, charts, zone, button, input, status }) {
  const say = (text, kind = '') => {
    status.textContent = text;
    status.dataset.kind = kind;
  };
  let busy = false;
  // The person's files as read, kept for a restarted worker, which starts on the site's own
  // digits: they are loaded into it again, so that a crash does not take them away.
  let given = null;
  // The offer to resume a checkpoint, with the worker's word on whether these digits can resume
  // it; an offer that is not showing (declined, or a new run started) stays away.
  const offerNow = (msg) => (store.get().offer ? msg.checkpoint : null);
  const trainingOn = (data) =>
    `Training on ${data.train.toLocaleString('en')} digits and testing on ${data.test.toLocaleString('en')} from your files.`;

  async function load(fileList) {
    const files = [...fileList];
    if (!files.length || busy) return;
    // The person has moved on: an error from another action (a weights file, say) goes, and this
    // drop's own outcome shows in its status line.
    store.set({ error: null });
    const { found, missing, unknown, twice } = sortMnistFiles(files);
    if (twice.length) {
      const [a, b, name] = twice[0];
      say(`Nothing changed: “${a}” and “${b}” are both MNIST's “${name}”, and they may hold different digits. Drop or choose one of each.`, 'error');
      return;
    }
    if (missing.length) {
      const extra = unknown.length ? ` (${list(unknown)} ${unknown.length === 1 ? 'is' : 'are'} not one of them)` : '';
      say(`Nothing changed: MNIST has four files, and ${list(missing)} ${missing.length === 1 ? 'is' : 'are'} missing${extra}. Drop or choose all four together.`, 'error');
      return;
    }
    busy = true;
    zone.setAttribute('aria-busy', 'true');
    try {
      say('Reading the files…');
      const payload = {};
      for (const [key, file] of Object.entries(found)) {
        payload[key] = { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
      }
      const msg = await client.request({ type: MSG.LOAD_IDX, files: payload });
      charts.reset();
      loaded = msg.data;
      given = payload;
      store.set({
        reloadingFiles: false,
        data: msg.data,
        training: msg,
        offer: offerNow(msg),
        chartsStale: false,
        plottedCheckpoint: null,
        accuracy: null,
        error: null,
      });
      // A run under way is not thrown away with the digits it started on: say that it goes on.
      const goesOn = msg.step > 0 ? ` The network in training goes on over them from step ${msg.step.toLocaleString('en')}; its charts start again.` : '';
      say(trainingOn(msg.data) + goesOn, 'done');
    } catch (error) {
      say(`Nothing changed: ${error.message}`, 'error');
    } finally {
      busy = false;
      zone.removeAttribute('aria-busy');
    }
  }

  // A restarted worker starts on the site's own digits: the person's files go to it again (the
  // request waits in the client until the new worker is ready). Meanwhile the note goes.
  async function reload() {
    const files = given;
    say('The training worker was restarted: loading your files into it again…');
    // Until they are in, the checkpoint offer waits: the new worker holds the site's digits.
    store.set({ reloadingFiles: true });
    try {
      const msg = await client.request({ type: MSG.LOAD_IDX, files });
      if (files !== given) return; // other files were loaded meanwhile
      loaded = msg.data;
      store.set({ data: msg.data, training: msg, offer: offerNow(msg) });
      say(trainingOn(msg.data), 'done');
    } catch (error) {
      say(`The training worker was restarted and could not load your files again: ${error.message}. Drop them again.`, 'error');
    } finally {
      if (files === given) store.set({ reloadingFiles: false });
    }
  }
  store.subscribe((state, previous) => {
    if (state.restarts !== previous.restarts && given) reload();
    else if (state.data !== previous.data && status.dataset.kind === 'done' && state.data !== loaded) say('');
  });
  let loaded = null;

  button.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const files = input.files;
    load(files ? [...files] : []).finally(() => {
      input.value = '';
    });
  });
  zone.addEventListener('dragover', (event) => {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    zone.classList.remove('dragging');
    if (!event.dataTransfer?.files.length) return;
    event.preventDefault();
    load(event.dataTransfer.files);
  });

  // A file dropped beside the zone would have the browser open it in place of the page, and the
  // person's drawing and training with it.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => {
      if (event.defaultPrevented || !event.dataTransfer?.types.includes('Files')) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'none';
    });
  }

  return {
    [MSG.DATA_PROGRESS]: (msg) => say(msg.text),
  };
}
