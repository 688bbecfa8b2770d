// The training panel: its controls (Start/Pause, Reset, learning rate, batch size, weights files)
// send requests to the worker; everything it shows is drawn from the page's state.
import { MSG } from './protocol.js';
import { fmt } from './charts.js';
import { show, hide, clock, fromF32 } from './ui.js';
import { parseDecimal, formatDecimal } from './decimal.js';
import { taughtPatch } from './state.js';

const NET = 'training';

/** Binds the panel's controls; `client` is the WorkerClient, `charts` the TrainingCharts. */
export function bindControls({ ui, store, client, charts }) {
  const fail = (error, prefix = '') => store.set({ error: prefix + error.message });

  ui.run.addEventListener('click', () => {
    const start = !runs(store.get());
    // The button follows the request at once; the worker confirms with a state message, and may
    // still be loading.
    // The person has moved on: a failure shown from an earlier action is stale.
    store.set({ requested: start ? 'run' : 'pause', error: null, ...(start && { diverged: null, offer: null, notice: null }) });
    client.post({ type: start ? MSG.START : MSG.PAUSE, net: NET });
  });
  ui.resetFrom.addEventListener('change', () => store.set({ resetFrom: ui.resetFrom.value }));
  ui.reset.addEventListener('click', () => {
    store.set({ error: null });
    client.post({ type: MSG.RESET, net: NET, from: store.get().resetFrom });
  });

  async function configure(settings, prefix = '') {
    try {
      const msg = await client.request({ type: MSG.CONFIGURE, net: NET, settings });
      store.set({ training: msg, settings: msg.settings, error: null });
    } catch (error) {
      fail(error, prefix);
      // The controls go back to what the network has.
      store.set({ settings: { ...store.get().settings } });
    }
  }
  // A text field (inputmode=decimal) so that "0,01" can be typed where the locale writes a decimal comma;
  // the core's validation judges the number, and a refusal quotes what was typed.
  ui.lr.addEventListener('input', () => {
    ui.lr.dataset.typing = 'true';
  });
  ui.lr.addEventListener('change', () => {
    delete ui.lr.dataset.typing;
    const typed = ui.lr.value;
    const lr = parseDecimal(typed, navigator.language);
    const prefix = `The learning rate “${typed}” was not accepted: `;
    if (Number.isNaN(lr)) {
      fail(new Error(`it is not a number (write it like ${formatDecimal(0.01, navigator.language)})`), prefix);
      store.set({ settings: { ...store.get().settings } });
    } else configure({ learning_rate: lr }, prefix);
  });
  ui.batch.addEventListener('change', () => configure({ batch_size: Number(ui.batch.value) }));

  // A replacement worker starts with the core's settings: the person's choices are applied again.
  store.subscribe((state, previous) => {
    if (state.worker !== 'ready' || previous.worker === 'ready') return;
    const mine = state.settings;
    const its = state.training.settings;
    if (!mine) store.set({ settings: its });
    else if (mine.learning_rate !== its.learning_rate || mine.batch_size !== its.batch_size) {
      configure({ learning_rate: mine.learning_rate, batch_size: mine.batch_size });
    }
  });

  ui.download.addEventListener('click', () => downloadWeights(client, NET).catch((error) => fail(error, 'Could not export the weights: ')));
  ui.load.addEventListener('click', () => ui.loadFile.click());
  ui.loadFile.addEventListener('change', async () => {
    const file = ui.loadFile.files?.[0];
    ui.loadFile.value = '';
    if (!file) return;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      // Copied, not transferred: if the worker restarts first, the request is sent again.
      await client.request({ type: MSG.LOAD_WEIGHTS, net: NET, bytes, name: file.name });
      if (store.get().chartsStale) {
        charts.reset();
        store.set({ chartsStale: false, plottedCheckpoint: null });
      }
      // A divergence notice described the weights just replaced.
      store.set({ ...taughtPatch(store.get(), NET, false), error: null, diverged: null, flash: `Loaded ${file.name} into the network in training` });
    } catch (error) {
      fail(error, `${file.name} was not loaded, nothing changed: `);
    }
  });

  store.subscribe((state, previous) => render(ui, charts, state, previous));
}

/** Whether the network in training runs, or is about to: a request not yet confirmed counts. */
function runs({ requested, training }) {
  return requested ? requested === 'run' : Boolean(training?.running);
}

function render(ui, charts, state, previous) {
  const changed = (key) => state[key] !== previous[key];
  if (changed('training') || changed('requested')) {
    const running = runs(state);
    ui.run.textContent = running ? 'Pause' : state.training?.step > 0 ? 'Resume' : 'Start training';
    ui.run.classList.toggle('running', running);
  }
  if (changed('training') && state.training) {
    const s = state.training;
    ui.body.dataset.training = s.running ? 'running' : 'paused';
    ui.step.textContent = s.step.toLocaleString('en');
    ui.epoch.textContent = String(s.epoch + 1);
    ui.progress.value = s.epochProgress;
    ui.progressText.textContent = `${Math.floor(s.epochProgress * 100)} %`;
    ui.speed.textContent = s.examplesPerSec ? Math.round(s.examplesPerSec).toLocaleString('en') : '–';
    ui.speed.dataset.value = String(s.examplesPerSec || 0);
  }
  if (changed('training') || changed('chartsStale')) {
    // Stale charts hold the loss of a dead worker's run, not of this network.
    ui.loss.textContent = fmt(state.chartsStale ? null : charts.smoothedLoss, 4);
  }
  if (changed('accuracy')) {
    ui.acc.textContent = state.accuracy === null ? '–' : `${(state.accuracy * 100).toFixed(1)} %`;
    ui.acc.dataset.value = String(state.accuracy ?? '');
  }
  if ((changed('data') || changed('evaluated')) && state.data) {
    const { test } = state.data;
    const n = state.evaluated;
    ui.accCaption.textContent =
      n && n < test
        ? `Accuracy on ${n.toLocaleString('en')} of the ${test.toLocaleString('en')} held-out digits`
        : `Accuracy on ${test.toLocaleString('en')} held-out digits`;
  }
  if (changed('data') || changed('loading')) {
    const { data } = state;
    ui.dataSource.textContent = data ? `${data.source} · ${data.train.toLocaleString('en')} training digits` : state.loading;
  }
  if (changed('settings') && state.settings) {
    // Not under the person's typing: an answer to another change (the batch size) must not undo
    // an entry that is not committed yet.
    if (ui.lr.dataset.typing !== 'true') ui.lr.value = formatDecimal(fromF32(state.settings.learning_rate), navigator.language);
    const batch = String(state.settings.batch_size);
    if (![...ui.batch.options].some((o) => o.value === batch)) ui.batch.append(new Option(batch));
    ui.batch.value = batch;
  }
  if (changed('pretrainedAvailable')) {
    ui.resetFrom.querySelector('[value=pretrained]').disabled = !state.pretrainedAvailable;
  }
  if (changed('worker')) {
    ui.body.dataset.worker = state.worker;
    ui.run.disabled = state.worker === 'failed';
  }
  if (changed('restarts')) ui.body.dataset.restarts = String(state.restarts);
  if (changed('error')) state.error ? show(ui.trainError, state.error) : hide(ui.trainError);
  if (changed('diverged')) state.diverged ? show(ui.diverged, state.diverged) : hide(ui.diverged);
  if (changed('notice')) state.notice ? show(ui.workerNotice, state.notice) : hide(ui.workerNotice);
  if (changed('saved')) {
    const { saved } = state;
    if (!saved) {
      ui.checkpointStatus.textContent = '';
      delete ui.checkpointStatus.dataset.step;
    } else if (saved.unavailable) {
      ui.checkpointStatus.textContent = 'Checkpoints are off: this browser refused to store them (training goes on)';
      delete ui.checkpointStatus.dataset.step;
      ui.checkpointStatus.title = saved.unavailable;
    } else {
      ui.checkpointStatus.textContent = `Checkpoint saved at step ${saved.step.toLocaleString('en')}, ${clock(saved.savedAt, true)}`;
      ui.checkpointStatus.dataset.step = String(saved.step);
    }
  }
}

/** Saves network `net`'s weights as a .safetensors file (the training panel's and the teaching
 * panel's download). */
export async function downloadWeights(client, net) {
  const { bytes, step } = await client.request({ type: MSG.EXPORT, net });
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = net === NET ? `lenet5-step${step}.safetensors` : `lenet5-${net}-tuned.safetensors`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
