// The page's elements, found once, and the few ways the page shows a message.

/** Every element the page's modules draw into or listen to. */
export function findElements(document) {
  const $ = (id) => document.getElementById(id);
  return {
    body: document.body,
    status: $('weights-status'),
    pad: $('pad'),
    padHint: $('pad-hint'),
    undo: $('undo'),
    clear: $('clear'),
    seen: $('seen'),
    predicted: $('predicted'),
    padAnswer: $('pad-answer'),
    confidence: $('confidence'),
    bars: $('bars'),
    recognizerName: $('recognizer-name'),
    recognizers: [...document.querySelectorAll('input[name=recognizer]')],
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
    lossChart: $('loss-chart'),
    accChart: $('acc-chart'),
  };
}

export function show(el, text) {
  el.textContent = text;
  el.hidden = false;
}

export function hide(el) {
  el.hidden = true;
}

/** A time of day, with the date when it is not today. */
export function clock(time, seconds = false) {
  const date = new Date(time);
  const options = { hour: '2-digit', minute: '2-digit', ...(seconds && { second: '2-digit' }) };
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString([], options) : date.toLocaleString([], { day: 'numeric', month: 'short', ...options });
}

/** A number the core keeps as an f32, as a person would write it: 0.01, not 0.009999999776. */
export function fromF32(value) {
  return Number(Math.fround(value).toPrecision(7));
}

// A confirmation stays this long in the status pill.
const FLASH_MS = 4000;

/** The status pill at the top: the pretrained network's state, or a short-lived confirmation. */
export function bindStatusPill({ ui, store }) {
  let timer = 0;
  let shown = '';
  const pill = (text, kind) => {
    if (shown === kind + text) return;
    shown = kind + text;
    ui.status.textContent = text;
    ui.status.className = `pill ${kind}`;
  };
  store.subscribe((state, previous) => {
    if (state.flash !== previous.flash && state.flash) {
      clearTimeout(timer);
      timer = setTimeout(() => store.set({ flash: null }), FLASH_MS);
    }
    if (state.flash) pill(state.flash, 'ok');
    else if (state.page === 'failed') pill(`The network could not start: ${state.pageError}`, 'bad');
    else if (state.page !== 'ready') return;
    else if (state.pretrainedOnPage) pill('Pretrained weights loaded', 'ok');
    else pill('No pretrained weights: train the network, or load a weights file', 'warn');
  });
}
