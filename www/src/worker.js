// The training worker: owns the model being trained and the MNIST data, and trains batch after
// batch in short slices so that messages from the page (pause, settings, predictions) are
// answered between two slices.
//
// Protocol: every message is a plain object tagged by `type`; see protocol.js.
import init, { Model } from 'lenet-wasm';
import { MSG } from './protocol.js';
import { SITE_URL } from './base.js';
import { readCheckpoint, writeCheckpoint, deleteCheckpoint, describeCheckpoint } from './checkpoints.js';

const PIXELS = 784;
// One slice of training before the worker looks at its inbox again.
const SLICE_MS = 40;
// Held-out accuracy is measured this often (in training time) and on at most this many digits.
const EVAL_EVERY_MS = 1500;
const EVAL_MAX = 1000;
const EVAL_CHUNK = 250;
// While training, a checkpoint at most this often; when training stops, one at once.
const SAVE_EVERY_MS = 10_000;

// Messages can arrive while wasm and the data are still loading: keep them, in order.
const inbox = [];
let ready = false;
self.onmessage = (event) => {
  // The heartbeat is answered at once, even while loading: it asks "are you alive", not "ready".
  if (event.data?.type === MSG.PING) post({ type: MSG.PONG, seq: event.data.seq });
  else if (ready) handle(event.data);
  else inbox.push(event.data);
};

const state = {
  model: null,
  pretrained: null, // Uint8Array of the pretrained .safetensors file, or null
  train: null, // { images: Uint8Array, labels: Uint8Array, count }
  test: null, // { images: Float32Array, labels: Uint8Array, count }
  source: '',
  running: false,
  batchSize: 32,
  learningRate: 0.05,
  seed: 1,
  // Position in the data.
  step: 0,
  seen: 0,
  epoch: 0,
  cursor: 0,
  order: null,
  // Speed, measured over training time only.
  speed: 0,
  trainMs: 0,
  lastEvalAt: -Infinity,
  eval: null, // an evaluation in progress, spread over several tasks
  generation: 0, // bumped by every reset, so a late evaluation of an old model is dropped
  // Checkpoints: `version` changes with the weights, `savedVersion` is the one last written.
  version: 0,
  savedVersion: 0,
  lastSaveAt: 0,
  saving: false,
  saveAgain: false,
  checkpointsOff: false, // storage refused once: no more attempts, the page has been told
};

const toUnit = new Float32Array(256).map((_, v) => v / 255);
let batchImages = new Float32Array(0);
let batchLabels = new Uint8Array(0);

function post(message, transfer) {
  self.postMessage(message, transfer ?? []);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const body = new Uint8Array(await response.arrayBuffer());
  // Decompress here unless the server already did (some send .gz with Content-Encoding: gzip).
  if (body[0] === 0x1f && body[1] === 0x8b) {
    const stream = new Blob([body]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return body;
}

async function loadSplit(base, split, name) {
  const [images, labels] = await Promise.all([fetchBytes(base + split.images), fetchBytes(base + split.labels)]);
  if (images.length !== split.count * PIXELS || labels.length !== split.count) {
    throw new Error(
      `${name} data holds ${images.length} pixel bytes and ${labels.length} labels, expected ${split.count * PIXELS} and ${split.count}: run the set-up again`,
    );
  }
  return { images, labels, count: split.count };
}

async function loadPretrained(url) {
  try {
    const response = await fetch(url);
    const type = response.headers.get('content-type') ?? '';
    // A dev server answers a missing file with its index page: that is "no weights", not a bad file.
    if (!response.ok || type.includes('text/html')) return null;
    return new Uint8Array(await response.arrayBuffer());
  } catch {
    return null;
  }
}

async function boot() {
  const base = SITE_URL;
  post({ type: MSG.STATUS, text: 'Loading WebAssembly and MNIST…' });
  const manifestUrl = `${base}data/manifest.json`;
  const [, manifest, pretrained, checkpoint] = await Promise.all([
    init(),
    fetch(manifestUrl).then(async (r) => {
      const type = r.headers.get('content-type') ?? '';
      if (!r.ok || !type.includes('json')) {
        throw new Error('No MNIST data was found on the server: run the set-up (.ci/app), which prepares it');
      }
      return r.json();
    }),
    loadPretrained(`${base}lenet5-mnist.safetensors`),
    readCheckpoint().catch((error) => {
      checkpointsUnavailable(error);
      return null;
    }),
  ]);
  const dataBase = `${base}data/`;
  const [train, test] = await Promise.all([
    loadSplit(dataBase, manifest.train, 'training'),
    loadSplit(dataBase, manifest.test, 'held-out'),
  ]);
  state.train = train;
  // The held-out digits are converted once; at most EVAL_MAX of them, spread over all classes.
  const n = Math.min(test.count, EVAL_MAX);
  const stride = test.count / n;
  const images = new Float32Array(n * PIXELS);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i * stride);
    for (let p = 0; p < PIXELS; p++) images[i * PIXELS + p] = toUnit[test.images[k * PIXELS + p]];
    labels[i] = test.labels[k];
  }
  state.test = { images, labels, count: n, total: test.count };
  state.source = manifest.source;
  state.pretrained = pretrained;
  if (pretrained) {
    try {
      Model.from_safetensors(pretrained).free();
    } catch (error) {
      post({ type: MSG.ERROR, op: 'pretrained', message: `The pretrained weights cannot be used: ${messageOf(error)}` });
      state.pretrained = null;
    }
  }
  state.model = new Model(state.seed);
  applyLearningRate(state.model.settings().learning_rate);
  shuffle();
  post({
    type: MSG.READY,
    data: { source: manifest.source, train: train.count, test: test.count, evaluated: n },
    pretrained: state.pretrained !== null,
    settings: { learningRate: state.learningRate, batchSize: state.batchSize },
    checkpoint: describeCheckpoint(checkpoint),
    ...progress(),
  });
  ready = true;
  state.lastSaveAt = performance.now();
  startEval();
  while (inbox.length) handle(inbox.shift());
  schedule();
}

function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

// A seeded shuffle, so a reset from scratch with the same seed replays the same run.
function shuffle() {
  const n = state.train.count;
  if (!state.order || state.order.length !== n) state.order = new Uint32Array(n).map((_, i) => i);
  let s = (state.seed * 2654435761 + state.epoch * 40503 + 1) >>> 0;
  const random = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const order = state.order;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  state.cursor = 0;
}

function nextBatch() {
  const size = state.batchSize;
  if (batchLabels.length !== size) {
    batchImages = new Float32Array(size * PIXELS);
    batchLabels = new Uint8Array(size);
  }
  const { images, labels, count } = state.train;
  for (let b = 0; b < size; b++) {
    if (state.cursor >= count) {
      state.epoch++;
      shuffle();
    }
    const k = state.order[state.cursor++];
    const from = k * PIXELS;
    const to = b * PIXELS;
    for (let p = 0; p < PIXELS; p++) batchImages[to + p] = toUnit[images[from + p]];
    batchLabels[b] = labels[k];
  }
}

function progress() {
  return {
    step: state.step,
    seen: state.seen,
    epoch: state.epoch + 1,
    epochProgress: state.cursor / state.train.count,
    examplesPerSec: state.speed,
    running: state.running,
    batchSize: state.batchSize,
    learningRate: state.learningRate,
  };
}

function trainSlice() {
  const start = performance.now();
  const steps = [];
  let diverged = null;
  while (state.running && performance.now() - start < SLICE_MS) {
    nextBatch();
    const t0 = performance.now();
    let loss;
    try {
      loss = state.model.train_step(batchImages, batchLabels);
    } catch (error) {
      const message = messageOf(error);
      state.running = false;
      if (message.startsWith('training diverged')) {
        state.step++;
        // Recorded, not dropped: the page plots and reports every non-finite step.
        steps.push({ step: state.step, loss: Number.NaN });
        diverged = message;
      } else {
        post({ type: MSG.ERROR, op: 'train', message: `Training stopped: ${message}` });
      }
      break;
    }
    const dt = performance.now() - t0;
    state.trainMs += dt;
    state.step++;
    state.seen += state.batchSize;
    steps.push({ step: state.step, loss });
    if (dt > 0) {
      const rate = (state.batchSize * 1000) / dt;
      state.speed = state.speed ? 0.9 * state.speed + 0.1 * rate : rate;
    }
    if (!Number.isFinite(loss)) {
      state.running = false;
      diverged = `training diverged: the loss is ${loss}`;
      break;
    }
  }
  if (steps.length) {
    state.version++;
    post({ type: MSG.STEPS, steps, ...progress() });
  }
  if (diverged) {
    post({ type: MSG.DIVERGED, step: state.step, message: diverged });
    post({ type: MSG.STATE, ...progress() });
  }
  if (state.trainMs - state.lastEvalAt >= EVAL_EVERY_MS && !state.eval) startEval();
}

function startEval() {
  state.lastEvalAt = state.trainMs;
  state.eval = { step: state.step, generation: state.generation, next: 0, correct: 0, loss: 0 };
}

// One chunk of the held-out evaluation; a whole pass would hold the inbox up for too long.
function evalChunk() {
  const ev = state.eval;
  const { images, labels, count } = state.test;
  const end = Math.min(count, ev.next + EVAL_CHUNK);
  const n = end - ev.next;
  const result = state.model.evaluate(images.subarray(ev.next * PIXELS, end * PIXELS), labels.subarray(ev.next, end));
  ev.correct += result.accuracy * n;
  ev.loss += result.loss * n;
  ev.next = end;
  if (end === count) {
    state.eval = null;
    if (ev.generation === state.generation) {
      post({ type: MSG.EVAL, step: ev.step, accuracy: ev.correct / count, loss: ev.loss / count, count });
    }
  }
}

// Each slice is its own task, so messages from the page are handled in between. A
// MessageChannel, unlike setTimeout, is not clamped to 4 ms.
const tick = new MessageChannel();
let scheduled = false;
tick.port1.onmessage = () => {
  scheduled = false;
  try {
    if (state.eval) evalChunk();
    else if (state.running) trainSlice();
  } catch (error) {
    state.running = false;
    state.eval = null;
    post({ type: MSG.ERROR, op: 'train', message: `Training stopped: ${messageOf(error)}` });
    post({ type: MSG.STATE, ...progress() });
  }
  checkpointIfDue();
  schedule();
};
function schedule() {
  if (!scheduled && ready && (state.running || state.eval)) {
    scheduled = true;
    tick.port2.postMessage(null);
  }
}

function applyLearningRate(learningRate) {
  const settings = state.model.settings();
  state.model.set_settings({ ...settings, learning_rate: learningRate });
  // The model keeps an f32: report the value as the person typed it, not 0.05000000074505806.
  state.learningRate = Number(learningRate.toPrecision(6));
}

function reset(from, seed) {
  if (from === 'pretrained' && !state.pretrained) {
    throw new Error('There are no pretrained weights to start from');
  }
  const model = from === 'pretrained' ? Model.from_safetensors(state.pretrained) : new Model(seed ?? state.seed);
  state.model.free();
  state.model = model;
  if (seed !== undefined) state.seed = seed >>> 0;
  applyLearningRate(state.learningRate);
  state.generation++;
  Object.assign(state, { step: 0, seen: 0, epoch: 0, speed: 0, trainMs: 0, eval: null, running: false });
  shuffle();
  post({ type: MSG.WAS_RESET, from, ...progress() });
  startEval();
}

// ---------- checkpoints ----------

function checkpointsUnavailable(error) {
  state.checkpointsOff = true;
  post({ type: MSG.CHECKPOINTS_UNAVAILABLE, message: messageOf(error) });
}

// A model that has learnt something and changed since the last checkpoint is saved: while it
// trains, every SAVE_EVERY_MS; when training stops (paused, diverged, failed), at once.
function checkpointIfDue(now = false) {
  if (state.checkpointsOff || state.step === 0 || state.version === state.savedVersion) return;
  if (state.running && !now && performance.now() - state.lastSaveAt < SAVE_EVERY_MS) return;
  // One write at a time; progress made meanwhile is written when it completes.
  if (state.saving) {
    state.saveAgain = true;
    return;
  }
  const version = state.version;
  const record = {
    // Copying out the weights takes well under a millisecond; the write itself runs off this
    // thread, so training goes on while it completes.
    weights: state.model.to_safetensors(),
    step: state.step,
    seen: state.seen,
    epoch: state.epoch,
    cursor: state.cursor,
    trainCount: state.train.count,
    seed: state.seed,
    settings: { ...sgdSettings(), learningRate: state.learningRate, batchSize: state.batchSize },
    savedAt: Date.now(),
    dataSource: state.source,
  };
  state.saving = true;
  state.lastSaveAt = performance.now();
  writeCheckpoint(record).then(
    () => {
      state.savedVersion = version;
      post({ type: MSG.CHECKPOINT_SAVED, step: record.step, savedAt: record.savedAt });
    },
    checkpointsUnavailable,
  ).finally(() => {
    state.saving = false;
    if (state.saveAgain) {
      state.saveAgain = false;
      checkpointIfDue();
    }
  });
}

function sgdSettings() {
  const { momentum, weight_decay: weightDecay } = state.model.settings();
  return { momentum, weightDecay };
}

async function resume(id) {
  const record = await readCheckpoint();
  if (!record) throw new Error('There is no saved checkpoint to resume from');
  const { settings } = record;
  checkBatchSize(settings.batchSize);
  // Throws, changing nothing, on weights that do not fit.
  state.model.load_safetensors(record.weights);
  state.model.set_settings({ momentum: settings.momentum, weight_decay: settings.weightDecay });
  applyLearningRate(settings.learningRate);
  state.batchSize = settings.batchSize;
  state.generation++;
  state.seed = record.seed >>> 0;
  Object.assign(state, { step: record.step, seen: record.seen, epoch: record.epoch, speed: 0, eval: null });
  shuffle();
  // The same data: carry on through the epoch where the checkpoint was. Other data: a new epoch.
  if (record.trainCount === state.train.count) state.cursor = Math.min(record.cursor, state.train.count);
  state.version++;
  state.savedVersion = state.version;
  state.lastSaveAt = performance.now();
  state.running = true;
  post({ type: MSG.RESUMED, id, savedAt: record.savedAt, ...progress() });
  startEval();
  schedule();
}

function checkBatchSize(size) {
  if (!Number.isInteger(size) || size < 1 || size > 4096) {
    throw new Error(`batch size must be a whole number from 1 to 4096, got ${size}`);
  }
}

// Only for the end-to-end tests of recovery: the page sends it only when its URL asks for it.
function crash(how) {
  if (how === 'hang') {
    for (;;);
  }
  // Thrown outside any handler, so that it reaches the page as the Worker's error event.
  setTimeout(() => {
    throw new Error('the training worker crashed on request (test)');
  });
}

function handle(message) {
  const { type, id } = message ?? {};
  try {
    switch (type) {
      case MSG.START:
        if (!state.running) state.lastSaveAt = performance.now();
        state.running = true;
        post({ type: MSG.STATE, ...progress() });
        break;
      case MSG.PAUSE:
        state.running = false;
        post({ type: MSG.STATE, ...progress() });
        break;
      case MSG.RESET:
        reset(message.from, message.seed);
        break;
      case MSG.CONFIGURE: {
        if (message.learningRate !== undefined) applyLearningRate(Number(message.learningRate));
        if (message.batchSize !== undefined) {
          const size = Number(message.batchSize);
          checkBatchSize(size);
          state.batchSize = size;
        }
        post({ type: MSG.SETTINGS, id, learningRate: state.learningRate, batchSize: state.batchSize });
        break;
      }
      case MSG.PREDICT:
        post({ type: MSG.PREDICTION, id, probabilities: state.model.predict(message.pixels), step: state.step });
        break;
      case MSG.EXPORT: {
        const bytes = state.model.to_safetensors();
        post({ type: MSG.WEIGHTS, id, bytes, step: state.step }, [bytes.buffer]);
        break;
      }
      case MSG.LOAD_WEIGHTS:
        // The model is unchanged when the file is rejected.
        state.model.load_safetensors(message.bytes);
        state.generation++;
        state.version++;
        state.eval = null;
        post({ type: MSG.WEIGHTS_LOADED, id, name: message.name });
        startEval();
        break;
      case MSG.RESUME:
        resume(id).catch((error) => post({ type: MSG.ERROR, id, op: type, message: messageOf(error) }));
        break;
      case MSG.DISCARD_CHECKPOINT:
        deleteCheckpoint().then(
          () => post({ type: MSG.CHECKPOINT_DISCARDED, id }),
          (error) => post({ type: MSG.ERROR, id, op: type, message: messageOf(error) }),
        );
        break;
      case MSG.SAVE:
        checkpointIfDue(true);
        break;
      case MSG.CRASH:
        crash(message.how);
        break;
      default:
        throw new Error(`unknown message type ${JSON.stringify(type)}`);
    }
  } catch (error) {
    post({ type: MSG.ERROR, id, op: type, message: messageOf(error) });
  }
  checkpointIfDue();
  schedule();
}

boot().catch((error) => {
  post({ type: MSG.FATAL, message: messageOf(error) });
});
