// The page: wires the modules together. The drawing pad (pad.js) feeds the recognizer
// (recognizer.js), which answers on this thread from a copy of the chosen network; the training
// worker (worker/) hosts the networks and trains them, reached through worker-client.js; its
// messages change the page's state (messages.js, state.js), from which the training panel
// (controls.js, checkpoint-offer.js) and the charts are drawn.
import './boot.js';
import init, { Model, defaults } from 'lenet-wasm';
import { MSG } from './protocol.js';
import { createStore } from './state.js';
import { findElements, bindStatusPill, fromF32 } from './ui.js';
import { DrawingPad, bindPadControls } from './pad.js';
import { TrainingCharts } from './charts.js';
import { Recognizer, bindRecognizerChoice } from './recognizer.js';
import { WorkerClient } from './worker-client.js';
import { createMessageHandlers } from './messages.js';
import { bindControls, downloadWeights } from './controls.js';
import { bindTeach } from './teach.js';
import { bindCheckpointOffer, resumeTraining } from './checkpoint-offer.js';
import { fetchWeights } from './weights-file.js';
import { createInsidePanels } from './panels.js';
import { ConfusionPanel } from './confusion.js';
import { bindMnistFiles } from './mnist-files.js';
import { guardTraining } from './trainer-lock.js';
import { bindWorkersChoice } from './workers-choice.js';

const WEIGHTS_URL = `${import.meta.env.BASE_URL}lenet5-mnist.safetensors`;
const params = new URLSearchParams(location.search);

const ui = findElements(document);
const store = createStore();
const pad = new DrawingPad(ui.pad);
const charts = new TrainingCharts(ui.lossChart, ui.accChart);
const recognizer = new Recognizer({ ui, store, pad, Model });

const handlers = createMessageHandlers({ store, charts, recognizer });
const client = new WorkerClient({
  createWorker: () => new Worker(new URL('./worker/worker.js', import.meta.url), { type: 'module', name: 'lenet-trainer' }),
  handlers,
  // The worker sends the weights of the network that recognizes, whenever they change.
  onStart: (post) => post({ type: MSG.WATCH, net: store.get().recognizer }),
  onRestart: () => {
    recognizer.drop('training');
    const { training, restarts } = store.get();
    store.set({
      worker: 'restarting',
      restarts: restarts + 1,
      // The new worker's networks are the shipped and a fresh one, whatever Teach did to the old ones'.
      taught: { pretrained: false, training: false },
      training: training && { ...training, running: false },
      requested: null,
      chartsStale: true,
      offer: null,
      notice: 'The training worker stopped unexpectedly and is being restarted…',
    });
  },
  // Nothing is pending from a worker that is gone: no Pause to wait for before leaving.
  onFailed: (reason) => {
    const { training } = store.get();
    store.set({ worker: 'failed', error: reason, requested: null, training: training && { ...training, running: false } });
  },
});

// "Inside the network": feature maps, filters, saliency, and the confusion matrix fed by EVAL.
const inside = createInsidePanels({ after: ui.seen.closest('section'), recognizer });
const confusion = new ConfusionPanel({ panel: inside.confusionPanel, store, client });
const onEval = handlers[MSG.EVAL];
handlers[MSG.EVAL] = (msg) => {
  onEval(msg);
  confusion.addEval(msg);
};

bindPadControls(pad, { undo: ui.undo, clear: ui.clear, hint: ui.padHint });
bindRecognizerChoice({ ui, store });
bindStatusPill({ ui, store });
bindControls({ ui, store, client, charts });
bindCheckpointOffer({ ui, store, client, charts });
const teach = bindTeach({
  pad,
  client,
  store,
  downloadWeights: (net) => downloadWeights(client, net).catch((error) => store.set({ error: `Could not export the weights: ${error.message}` })),
  shippedWeights: () => fetchWeights(WEIGHTS_URL),
});
guardTraining({ buttons: [ui.run, ui.resume], notice: document.getElementById('trainer-lock') });
Object.assign(
  client.handlers,
  bindMnistFiles({
    store,
    client,
    charts,
    zone: document.getElementById('mnist-drop'),
    button: document.getElementById('mnist-pick'),
    input: document.getElementById('mnist-files'),
    status: document.getElementById('mnist-status'),
  }),
);
// How many workers train (the training worker's gradient workers), from its READY and WORKERS.
const workers = bindWorkersChoice({
  client,
  select: document.getElementById('workers'),
  status: document.getElementById('workers-status'),
});
const onReady = handlers[MSG.READY];
handlers[MSG.READY] = (msg) => {
  onReady(msg);
  workers.ready(msg.workers);
  // Which module the training worker chose (wasm-module.js); the page's own is data-wasm.
  document.body.dataset.workerWasm = msg.wasm ?? '';
};
handlers[MSG.WORKERS] = workers.show;
store.subscribe((state, previous) => {
  if (state.recognizer !== previous.recognizer) client.post({ type: MSG.WATCH, net: state.recognizer });
  if (state.page !== previous.page) ui.body.dataset.ready = state.page === 'ready' ? 'true' : state.page;
});
// A tab that is hidden may be closed or discarded without warning: save what it has learnt.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') client.post({ type: MSG.SAVE });
});

// Until the worker confirms a Pause, its checkpoint is not written (the worker may still be in a
// slice): leaving then would lose the run since the last one, so the browser asks first.
// A worker that is gone (restarting or given up) has no Pause pending.
window.addEventListener('beforeunload', (event) => {
  const { requested, training, worker } = store.get();
  if (requested === 'pause' && training?.running && worker === 'ready') event.preventDefault();
});

// For the end-to-end tests: what the charts plot and the state of the network in training.
window.lenetPage = Object.freeze({
  charts,
  trainingState: () => describeTraining(store.get().training),
  // ?test-crash: the tests of recovery crash the worker on purpose; nothing else can.
  ...(params.has('test-crash') && {
    crashWorker: (how) => client.post({ type: MSG.CRASH, how }),
    crashGradientWorker: (how = 'throw', times = 1) => client.post({ type: MSG.CRASH_GRADIENT, how, times }),
  }),
  // ?test-hooks: exact step counts and the raw weights and strokes, for the tests of resuming and drawing.
  ...(params.has('test-hooks') && {
    strokes: () => pad.strokes(),
    setWorkers: (count) => workers.choose(count),
    workers: () => workers.report(),
    teach,
    closeCheckpointDb: () => client.request({ type: MSG.CLOSE_DB }).then(() => true),
    resetTraining: (seed) => client.post({ type: MSG.RESET, net: 'training', from: 'scratch', seed }),
    trainSteps: async (count) => describeTraining(await client.request({ type: MSG.TRAIN_STEPS, net: 'training', count })),
    resumeCheckpoint: async () => describeTraining(await resumeTraining({ store, client, charts }, false)),
    exportWeights: async () => {
      const { bytes } = await client.request({ type: MSG.EXPORT, net: 'training' });
      return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
    },
  }),
});

function describeTraining(s) {
  if (!s) return null;
  const { running, step, seen, epoch, epochProgress, examplesPerSec, settings } = s;
  return {
    running,
    step,
    seen,
    epoch,
    epochProgress,
    examplesPerSec,
    ...(settings && { batchSize: settings.batch_size, learningRate: fromF32(settings.learning_rate) }),
  };
}

// The controls work from here on, even while wasm, the weights and the data still load.
ui.body.dataset.page = 'interactive';
async function start() {
  await init();
  // The core's recipe, until the worker reports the network's own settings.
  if (!store.get().settings) store.set({ settings: defaults().settings });
  recognizer.enable();
  const bytes = await fetchWeights(WEIGHTS_URL);
  if (bytes) {
    try {
      recognizer.setWeights('pretrained', bytes, 0);
      store.set({ pretrainedOnPage: true });
    } catch (error) {
      console.error(error);
      store.set({ error: `The pretrained weights could not be read: ${error.message}` });
    }
  }
  store.set({ pretrainedAvailable: store.get().pretrainedOnPage, page: 'ready' });
}
start().catch((error) => store.set({ page: 'failed', pageError: error.message }));
