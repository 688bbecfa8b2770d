// The page: the drawing pad, the pretrained network that recognizes the drawing, and the
// controls and charts of the network that the worker trains.
import './boot.js';
import init, { Model, preprocess_canvas } from 'lenet-wasm';
import { DrawingPad } from './pad.js';
import { TrainingCharts, fmt } from './charts.js';
import { MSG } from './protocol.js';

const $ = (id) => document.getElementById(id);
const WEIGHTS_URL = `${import.meta.env.BASE_URL}lenet5-mnist.safetensors`;
// The end-to-end tests of recovery crash the worker on purpose; nothing else can.
const TEST_CRASH = new URLSearchParams(location.search).has('test-crash');
// A worker that leaves a ping unanswered for this many beats is stuck. The longest thing it does
// without looking at its messages is one training step (a second for a large batch on a slow
// machine), so a few beats leave room for a loaded machine.
const HEARTBEAT_MS = 2000;
const HEARTBEAT_BEATS = 4;
// A worker that keeps dying is not restarted for ever: past this many restarts a minute, the
// page gives up and says so.
const MAX_RESTARTS_PER_MINUTE = 3;

const ui = {
  status: $('weights-status'),
  pad: $('pad'),
  padHint: $('pad-hint'),
  undo: $('undo'),
  clear: $('clear'),
  seen: $('seen'),
  predicted: $('predicted'),
  confidence: $('confidence'),
  bars: $('bars'),
  recognizerName: $('recognizer-name'),
  useTraining: $('use-training'),
  usePretrained: document.querySelector('input[name=recognizer][value=pretrained]'),
  run: $('run'),
  reset: $('reset'),
  resetFrom: $('reset-from'),
  lr: $('lr'),
  batch: $('batch'),
  download: $('download'),
  load: $('load'),
  loadFile: $('load-file'),
  trainError: $('train-error'),
  diverged: $('diverged'),
  workerNotice: $('worker-notice'),
  offer: $('checkpoint-offer'),
  offerNote: $('checkpoint-offer-note'),
  resume: $('resume-checkpoint'),
  discard: $('discard-checkpoint'),
  checkpointStatus: $('checkpoint-status'),
  dataSource: $('data-source'),
  step: $('stat-step'),
  epoch: $('stat-epoch'),
  progress: $('stat-progress'),
  progressText: $('stat-progress-text'),
  speed: $('stat-speed'),
  loss: $('stat-loss'),
  acc: $('stat-acc'),
  accCaption: $('acc-caption'),
};

const app = {
  pretrained: null, // Model, on the main thread: one prediction takes about a millisecond
  pixels: null, // the last 28×28 input, or null when the pad is empty
  workerReady: false,
  dataSource: '',
  running: false,
  lastState: null,
  nextId: 1,
  pending: new Map(), // id → { message, resolve, reject }
  latestPrediction: 0,
  heartbeat: { alive: false, waiting: 0, beats: 0, seq: 0 },
  restarts: [], // when the worker was restarted (performance.now())
  // When the last checkpoint of the run on the charts was saved (its savedAt).
  plottedCheckpoint: null,
  // After a restart the charts still plot the dead worker's run, until the person resumes it
  // or starts another.
  chartsStale: false,
};

// ---------- the worker ----------

let worker = null;

// The worker starts loading at once; messages posted before it is ready wait in its inbox.
function startWorker() {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'lenet-trainer' });
  worker.onmessage = onWorkerMessage;
  worker.onerror = onWorkerError;
  app.workerReady = false;
  app.heartbeat = { alive: false, waiting: 0, beats: 0, seq: 0 };
}
startWorker();

function request(message) {
  const id = app.nextId++;
  const full = { ...message, id };
  return new Promise((resolve, reject) => {
    app.pending.set(id, { message: full, resolve, reject });
    worker.postMessage(full);
  });
}

function onWorkerMessage({ data: msg }) {
  app.heartbeat.alive = true;
  const waiting = msg.id !== undefined ? app.pending.get(msg.id) : undefined;
  if (waiting) {
    app.pending.delete(msg.id);
    if (msg.type === MSG.ERROR) waiting.reject(new Error(msg.message));
    else waiting.resolve(msg);
    return;
  }
  switch (msg.type) {
    case MSG.PONG:
      if (msg.seq === app.heartbeat.waiting) app.heartbeat.waiting = 0;
      break;
    case MSG.STATUS:
      ui.dataSource.textContent = msg.text;
      break;
    case MSG.READY:
      app.workerReady = true;
      app.dataSource = msg.data.source;
      ui.dataSource.textContent = `${msg.data.source} · ${msg.data.train.toLocaleString('en')} training digits`;
      ui.accCaption.textContent =
        msg.data.evaluated < msg.data.test
          ? `Accuracy on ${msg.data.evaluated.toLocaleString('en')} of the ${msg.data.test.toLocaleString('en')} held-out digits`
          : `Accuracy on ${msg.data.evaluated.toLocaleString('en')} held-out digits`;
      ui.resetFrom.querySelector('[value=pretrained]').disabled = !msg.pretrained;
      // The worker's default, unless the person already chose one while it loaded.
      if (!ui.lr.dataset.edited) ui.lr.value = String(msg.settings.learningRate);
      // The page's own choices, made while the worker was loading, win over its defaults.
      configure();
      // Unless Start was pressed meanwhile: the button then stays as pressed.
      if (!app.running) showState(msg);
      if (app.restarts.length) {
        show(
          ui.workerNotice,
          'The training worker stopped unexpectedly and was restarted. ' +
            (msg.checkpoint && !app.running
              ? 'Training can resume from its last checkpoint.'
              : 'Its network in training starts over.'),
        );
      }
      // A checkpoint is offered unless a new run was started before the worker was ready: that
      // run's own checkpoints replace it.
      if (msg.checkpoint && !app.running) offerCheckpoint(msg.checkpoint);
      document.body.dataset.worker = 'ready';
      break;
    case MSG.FATAL:
      showError(`The training worker could not start: ${msg.message}`);
      ui.dataSource.textContent = 'Training is unavailable';
      ui.run.disabled = true;
      document.body.dataset.worker = 'failed';
      break;
    case MSG.WAS_RESET:
      resetCharts();
      hide(ui.diverged);
      showState(msg);
      // The drawing's answer came from the network that was just replaced.
      if (ui.useTraining.checked) refreshTrainingPrediction();
      break;
    case MSG.STATE:
      showState(msg);
      break;
    case MSG.STEPS:
      if (app.chartsStale) resetCharts();
      charts.addSteps(msg.steps);
      showState(msg);
      if (ui.useTraining.checked) refreshTrainingPrediction();
      break;
    case MSG.EVAL:
      // The replacement's fresh network is not the run on the charts.
      if (app.chartsStale) break;
      charts.addEval(msg.step, msg.accuracy);
      ui.acc.textContent = `${(msg.accuracy * 100).toFixed(1)} %`;
      ui.acc.dataset.value = String(msg.accuracy);
      break;
    case MSG.DIVERGED:
      show(
        ui.diverged,
        `Step ${msg.step}: the loss is not a finite number, so training was paused and the weights were ` +
          `restored to the last finite state. Lower the learning rate, then resume. (${msg.message})`,
      );
      break;
    case MSG.CHECKPOINT_SAVED:
      app.plottedCheckpoint = msg.savedAt;
      ui.checkpointStatus.textContent = `Checkpoint saved at step ${msg.step.toLocaleString('en')}, ${clock(msg.savedAt, true)}`;
      ui.checkpointStatus.dataset.step = String(msg.step);
      break;
    case MSG.CHECKPOINTS_UNAVAILABLE:
      ui.checkpointStatus.textContent = 'Checkpoints cannot be saved in this browser';
      ui.checkpointStatus.title = msg.message;
      console.warn(`checkpoints are off: ${msg.message}`);
      break;
    case MSG.ERROR:
      showError(msg.message);
      break;
    default:
      console.warn('unexpected message from the worker', msg);
  }
}

function onWorkerError(event) {
  // A worker that never got ready cannot be loaded at all: starting another would fail the same way.
  if (app.workerReady) {
    event.preventDefault();
    restartWorker(`failed: ${event.message || 'no message'}`);
    return;
  }
  showError(`The training worker failed: ${event.message || 'it could not be loaded'}`);
  document.body.dataset.worker = 'failed';
}

// The heartbeat starts with the worker's first message (a worker that cannot load fires an error
// event instead); a ping is outstanding at most one at a time.
setInterval(() => {
  const beat = app.heartbeat;
  if (!beat.alive || document.body.dataset.worker === 'failed') return;
  if (beat.waiting) {
    if (++beat.beats >= HEARTBEAT_BEATS) restartWorker(`did not answer for ${(HEARTBEAT_BEATS * HEARTBEAT_MS) / 1000} s`);
    return;
  }
  beat.waiting = ++beat.seq;
  beat.beats = 0;
  worker.postMessage({ type: MSG.PING, seq: beat.seq });
}, HEARTBEAT_MS);

function restartWorker(reason) {
  const now = performance.now();
  app.restarts = app.restarts.filter((t) => now - t < 60_000);
  worker.terminate();
  if (app.restarts.length >= MAX_RESTARTS_PER_MINUTE) {
    showError(`The training worker ${reason}, and keeps failing: reload the page to try again`);
    document.body.dataset.worker = 'failed';
    ui.run.disabled = true;
    return;
  }
  app.restarts.push(now);
  console.warn(`the training worker ${reason}; starting another`);
  startWorker();
  // Requests the dead worker never answered go to the new one, which queues them until it is ready.
  for (const { message } of app.pending.values()) worker.postMessage(message);
  app.running = false;
  app.chartsStale = true;
  document.body.dataset.worker = 'restarting';
  document.body.dataset.restarts = String((Number(document.body.dataset.restarts) || 0) + 1);
  hide(ui.offer);
  show(ui.workerNotice, 'The training worker stopped unexpectedly and is being restarted…');
  ui.run.textContent = 'Start training';
  ui.run.classList.remove('running');
  document.body.dataset.training = 'paused';
}

function resetCharts() {
  charts.reset();
  app.chartsStale = false;
  app.plottedCheckpoint = null;
}

// ---------- checkpoints ----------

function clock(time, seconds = false) {
  const date = new Date(time);
  const options = { hour: '2-digit', minute: '2-digit', ...(seconds && { second: '2-digit' }) };
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString([], options) : date.toLocaleString([], { day: 'numeric', month: 'short', ...options });
}

function offerCheckpoint(checkpoint) {
  ui.resume.textContent = `Resume training from step ${checkpoint.step.toLocaleString('en')} (saved ${clock(checkpoint.savedAt)})`;
  const notes = ['A checkpoint of the network in training is saved in this browser.'];
  if (checkpoint.dataSource && checkpoint.dataSource !== app.dataSource) notes.push(`It was trained on ${checkpoint.dataSource}.`);
  notes.push('Training a new network replaces it.');
  ui.offerNote.textContent = notes.join(' ');
  ui.offer.dataset.step = String(checkpoint.step);
  ui.offer.hidden = false;
}

function withdrawOffer() {
  hide(ui.offer);
  hide(ui.workerNotice);
}

ui.resume.addEventListener('click', async () => {
  ui.resume.disabled = ui.discard.disabled = true;
  try {
    const msg = await request({ type: MSG.RESUME });
    // The charts keep the history of the run the checkpoint came from, if they still plot it.
    if (app.chartsStale && msg.savedAt === app.plottedCheckpoint) charts.truncate(msg.step);
    else charts.reset();
    app.chartsStale = false;
    app.plottedCheckpoint = msg.savedAt;
    withdrawOffer();
    hide(ui.diverged);
    hide(ui.trainError);
    ui.lr.value = String(msg.learningRate);
    ui.batch.value = String(msg.batchSize);
    showState(msg);
    flash(`Resumed training from step ${msg.step.toLocaleString('en')}`);
    if (ui.useTraining.checked) refreshTrainingPrediction();
  } catch (error) {
    showError(`Could not resume from the checkpoint: ${error.message}`);
  } finally {
    ui.resume.disabled = ui.discard.disabled = false;
  }
});
ui.discard.addEventListener('click', async () => {
  ui.resume.disabled = ui.discard.disabled = true;
  try {
    await request({ type: MSG.DISCARD_CHECKPOINT });
    withdrawOffer();
    ui.checkpointStatus.textContent = '';
    delete ui.checkpointStatus.dataset.step;
  } catch (error) {
    showError(`Could not discard the checkpoint: ${error.message}`);
  } finally {
    ui.resume.disabled = ui.discard.disabled = false;
  }
});
// A tab that is hidden may be closed or discarded without warning: save what it has learnt.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') worker.postMessage({ type: MSG.SAVE });
});

function showState(s) {
  app.running = s.running;
  app.lastState = s;
  ui.run.textContent = s.running ? 'Pause' : s.step > 0 ? 'Resume' : 'Start training';
  ui.run.classList.toggle('running', s.running);
  document.body.dataset.training = s.running ? 'running' : 'paused';
  ui.step.textContent = s.step.toLocaleString('en');
  ui.epoch.textContent = String(s.epoch);
  ui.progress.value = s.epochProgress;
  ui.progressText.textContent = `${Math.floor(s.epochProgress * 100)} %`;
  ui.speed.textContent = s.examplesPerSec ? Math.round(s.examplesPerSec).toLocaleString('en') : '–';
  ui.speed.dataset.value = String(s.examplesPerSec || 0);
  // Stale charts hold the loss of a dead worker's run, not of this network.
  ui.loss.textContent = fmt(app.chartsStale ? null : charts.smoothedLoss, 4);
  if (s.step === 0) ui.acc.textContent = '–';
}

function configure() {
  const learningRate = Number(ui.lr.value);
  const batchSize = Number(ui.batch.value);
  if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
    showError(`The learning rate must be a positive number, got "${ui.lr.value}"`);
    return;
  }
  request({ type: MSG.CONFIGURE, learningRate, batchSize })
    .then(() => hide(ui.trainError))
    .catch((error) => showError(error.message));
}

// ---------- training controls ----------

ui.run.addEventListener('click', () => {
  // Optimistic: the worker confirms with a state message, and may still be loading.
  const start = !app.running;
  app.running = start;
  ui.run.textContent = start ? 'Pause' : 'Resume';
  if (start) {
    hide(ui.diverged);
    withdrawOffer();
  }
  worker.postMessage({ type: start ? MSG.START : MSG.PAUSE });
});
ui.reset.addEventListener('click', () => {
  worker.postMessage({ type: MSG.RESET, from: ui.resetFrom.value });
});
ui.lr.addEventListener('input', () => {
  ui.lr.dataset.edited = 'true';
});
ui.lr.addEventListener('change', configure);
ui.batch.addEventListener('change', configure);

ui.download.addEventListener('click', async () => {
  try {
    const { bytes, step } = await request({ type: MSG.EXPORT });
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `lenet5-step${step}.safetensors`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showError(`Could not export the weights: ${error.message}`);
  }
});
ui.load.addEventListener('click', () => ui.loadFile.click());
ui.loadFile.addEventListener('change', async () => {
  const file = ui.loadFile.files?.[0];
  ui.loadFile.value = '';
  if (!file) return;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    // Copied, not transferred: if the worker restarts first, the request is sent again.
    await request({ type: MSG.LOAD_WEIGHTS, bytes, name: file.name });
    if (app.chartsStale) resetCharts();
    hide(ui.trainError);
    flash(`Loaded ${file.name} into the network in training`);
    if (ui.useTraining.checked) refreshTrainingPrediction();
  } catch (error) {
    showError(`${file.name} was not loaded, nothing changed: ${error.message}`);
  }
});

function showError(text) {
  show(ui.trainError, text);
}
function show(el, text) {
  el.textContent = text;
  el.hidden = false;
}
function hide(el) {
  el.hidden = true;
}
let flashTimer = 0;
function flash(text) {
  ui.status.textContent = text;
  ui.status.className = 'pill ok';
  clearTimeout(flashTimer);
  flashTimer = setTimeout(showWeightsStatus, 4000);
}

// ---------- drawing and recognition ----------

const pad = new DrawingPad(ui.pad);
const charts = new TrainingCharts($('loss-chart'), $('acc-chart'));
// What the charts plot, for the end-to-end tests to read.
window.lenetPage = Object.freeze({
  charts,
  trainingState: () => app.lastState,
  ...(TEST_CRASH && { crashWorker: (how) => worker.postMessage({ type: MSG.CRASH, how }) }),
});
const seenCtx = ui.seen.getContext('2d');
const seenImage = seenCtx.createImageData(28, 28);

const barEls = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement('li');
  li.innerHTML = `<span class="label">${d}</span><span class="track"><span class="fill"></span></span><span class="value">–</span>`;
  ui.bars.append(li);
  barEls.push({ li, fill: li.querySelector('.fill'), value: li.querySelector('.value') });
}

let frame = 0;
pad.addEventListener('change', () => {
  ui.undo.disabled = pad.empty;
  ui.clear.disabled = pad.empty;
  ui.padHint.hidden = !pad.empty;
  // Recognize at most once per frame, however fast the pointer events come.
  if (!frame) frame = requestAnimationFrame(recognize);
});
ui.undo.addEventListener('click', () => pad.undo());
ui.clear.addEventListener('click', () => pad.clear());
window.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  if (e.key === 'Escape') pad.clear();
  else if ((e.ctrlKey || e.metaKey) && e.key === 'z') {
    e.preventDefault();
    pad.undo();
  }
});
for (const input of document.querySelectorAll('input[name=recognizer]')) {
  input.addEventListener('change', () => {
    showRecognizer();
    recognize();
  });
}

function recognize() {
  frame = 0;
  if (!wasmReady) return;
  const { rgba, width, height } = pad.pixels();
  app.pixels = pad.empty ? null : (preprocess_canvas(rgba, width, height) ?? null);
  drawSeen(app.pixels);
  if (!app.pixels) {
    showProbabilities(null);
    return;
  }
  if (ui.useTraining.checked || !app.pretrained) refreshTrainingPrediction();
  else showProbabilities(app.pretrained.predict(app.pixels));
}

let trainingPredictionBusy = false;
function refreshTrainingPrediction() {
  // One request in flight at a time: while training, the worker answers between two slices.
  if (!app.pixels || trainingPredictionBusy) return;
  trainingPredictionBusy = true;
  const id = ++app.latestPrediction;
  request({ type: MSG.PREDICT, pixels: app.pixels })
    .then((msg) => {
      if (id === app.latestPrediction && app.pixels && (ui.useTraining.checked || !app.pretrained)) {
        showProbabilities(msg.probabilities);
        ui.recognizerName.textContent = `network in training, step ${msg.step.toLocaleString('en')}`;
      }
    })
    .catch((error) => showError(`Prediction failed: ${error.message}`))
    .finally(() => {
      trainingPredictionBusy = false;
    });
}

function drawSeen(pixels) {
  const data = seenImage.data;
  for (let i = 0; i < 784; i++) {
    // White ink on black, as MNIST is usually shown.
    const v = pixels ? Math.round(pixels[i] * 255) : 0;
    data[i * 4] = v;
    data[i * 4 + 1] = v;
    data[i * 4 + 2] = v;
    data[i * 4 + 3] = 255;
  }
  seenCtx.putImageData(seenImage, 0, 0);
}

function showProbabilities(probabilities) {
  if (!probabilities) {
    ui.predicted.textContent = '–';
    ui.predicted.dataset.digit = '';
    ui.confidence.textContent = 'Draw to see a prediction';
    for (const bar of barEls) {
      bar.fill.style.transform = 'scaleX(0)';
      bar.value.textContent = '–';
      bar.li.classList.remove('best');
    }
    document.body.dataset.probabilities = '';
    return;
  }
  let best = 0;
  for (let d = 1; d < 10; d++) if (probabilities[d] > probabilities[best]) best = d;
  ui.predicted.textContent = String(best);
  ui.predicted.dataset.digit = String(best);
  ui.confidence.textContent = `${(probabilities[best] * 100).toFixed(1)} % sure`;
  barEls.forEach((bar, d) => {
    const p = probabilities[d];
    bar.fill.style.transform = `scaleX(${p.toFixed(4)})`;
    bar.value.textContent = `${(p * 100).toFixed(1)} %`;
    bar.li.classList.toggle('best', d === best);
  });
  // Exact values for tests and tools that read the page.
  document.body.dataset.probabilities = Array.from(probabilities, (p) => p.toFixed(6)).join(',');
}

function showRecognizer() {
  const training = ui.useTraining.checked || !app.pretrained;
  ui.recognizerName.textContent = training ? 'network in training' : 'pretrained network';
}

function showWeightsStatus() {
  if (app.pretrained) {
    ui.status.textContent = 'Pretrained weights loaded';
    ui.status.className = 'pill ok';
  } else {
    ui.status.textContent = 'No pretrained weights: train the network, or load a weights file';
    ui.status.className = 'pill warn';
  }
}

// ---------- start ----------

let wasmReady = false;
// The controls work from here on, even while wasm, the weights and the data still load.
document.body.dataset.page = 'interactive';
async function start() {
  await init();
  wasmReady = true;
  try {
    const response = await fetch(WEIGHTS_URL);
    const type = response.headers.get('content-type') ?? '';
    // A dev server answers a missing file with its index page: that means no weights.
    if (response.ok && !type.includes('text/html')) {
      app.pretrained = Model.from_safetensors(new Uint8Array(await response.arrayBuffer()));
    }
  } catch (error) {
    console.error(error);
    showError(`The pretrained weights could not be read: ${error.message}`);
  }
  if (!app.pretrained) {
    ui.usePretrained.disabled = true;
    ui.useTraining.checked = true;
  }
  showWeightsStatus();
  showRecognizer();
  document.body.dataset.ready = 'true';
  recognize();
}
start().catch((error) => {
  ui.status.textContent = `The network could not start: ${error.message}`;
  ui.status.className = 'pill bad';
  document.body.dataset.ready = 'failed';
});
