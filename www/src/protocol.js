// The messages between the page and the training worker. Every message is a plain object with a
// `type`; requests that expect an answer carry an `id` that the answer repeats. Messages about a
// network name it: `net` is 'pretrained' (the shipped weights) or 'training' (the network trained
// from scratch, or reset from the pretrained weights).
//
// A network's state, as STATE, STEPS, WAS_RESET, RESUMED and READY carry it:
//   { net, running, step, seen, epoch, epochProgress, examplesPerSec, settings }
// where `settings` is the core's full settings object (Session.settings()).
// The saved checkpoint, as READY and DATA_LOADED report it, or null:
//   { step, seen, epoch, savedAt, dataSource, settings, fits, unreadable }
// where `fits` says whether the training digits loaded now can resume it (the core decides, by
// their count and fingerprint), `dataSource` names the digits it was trained on, and `unreadable`
// is why it cannot be resumed on any digits, or null.
export const MSG = Object.freeze({
  // page → worker
  START: 'start', // { net }: train batch after batch until paused
  PAUSE: 'pause', // { net }: answered (STATE) once the pause's checkpoint is committed, or after 5 s of storage not answering
  TRAIN_STEPS: 'train-steps', // { id, net, count }: exactly `count` more steps, then pause (test hook)
  RESET: 'reset', // { net, from: 'scratch' | 'pretrained', seed? }: a new network, counters back to 0; the old run's checkpoint is deleted (CHECKPOINT_DISCARDED follows), a checkpoint on offer is kept
  CONFIGURE: 'configure', // { id, net, settings }: any subset of the core's settings; applies while training runs
  WATCH: 'watch', // { net }: post this network's weights now and whenever they change
  EXPORT: 'export', // { id, net }: the weights as a .safetensors file
  LOAD_WEIGHTS: 'load-weights', // { id, net, bytes: Uint8Array, name }: replaces the weights, or changes nothing
  RESUME: 'resume', // { id, net, run }: the whole state from the saved checkpoint; training starts if `run`
  DISCARD_CHECKPOINT: 'discard-checkpoint', // { id, net }
  SAVE: 'save', // checkpoint now if there is unsaved progress (the page is being hidden)
  PING: 'ping', // { seq }: answered even while loading; silence means the worker is stuck
  TEACH: 'teach', // { id, net, images: Uint8Array(n·784), labels: Uint8Array(n) }: fine-tune on a person's digits (worker/teach.js)
  LOAD_IDX: 'load-idx', // { id, files: { trainImages, trainLabels, testImages, testLabels: { name, bytes } } }: train and test on these
  CLOSE_DB: 'close-db', // { id }: closes the checkpoint database's connection, for the tests of storage (?test-hooks)
  CRASH: 'crash', // { how: 'throw' | 'hang' }: for the tests of recovery, sent only under ?test-crash
  EVALUATE: 'evaluate', // { net }: a pass over the held-out digits now; its EVAL follows
  CELL: 'cell', // { id, net, label, predicted }: the held-out digits of one cell of the confusion matrix
  SET_WORKERS: 'set-workers', // { id, count }: train on `count` workers (1 to max), the training worker included; without `count`, only the answer
  CRASH_GRADIENT: 'crash-gradient', // { how: 'throw' | 'hang', times }: a gradient worker fails during its next step, and so do `times − 1` replacements (?test-crash)

  // worker → page
  STATUS: 'status', // { text }: while loading
  READY: 'ready', // { data: { source, train, test }, nets: { [net]: state }, checkpoint, workers }
  FATAL: 'fatal', // { message }: the worker could not start
  STATE: 'state', // a network's state
  WAS_RESET: 'was-reset', // { from, ...state }: a fresh network; the page clears its charts
  STEPS: 'steps', // { steps: [{ step, loss, diverged? }], ...state }: the losses of the last slice, NaN kept
  EVAL: 'eval', // { net, step, accuracy, loss, count, per_class: [10], confusion: [10][10] }: on the held-out digits
  DIVERGED: 'diverged', // { net, step, message }: training is paused, the last good weights restored
  WEIGHTS_CHANGED: 'weights-changed', // { net, bytes: Uint8Array, step }: for the page's copy of a WATCHed network
  SETTINGS: 'settings', // { id, ...state }
  STEPPED: 'stepped', // { id, ...state }: TRAIN_STEPS is done
  WEIGHTS: 'weights', // { id, net, bytes: Uint8Array, step }
  WEIGHTS_LOADED: 'weights-loaded', // { id, net, name }
  RESUMED: 'resumed', // { id, savedAt, ...state }
  CHECKPOINT_SAVED: 'checkpoint-saved', // { net, step, savedAt }
  CHECKPOINT_DISCARDED: 'checkpoint-discarded', // { id?, net }: the saved checkpoint is deleted, on request or after RESET
  CHECKPOINTS_UNAVAILABLE: 'checkpoints-unavailable', // { message }: storage refused; training goes on
  TAUGHT: 'taught', // { id, net, before: { mine, mnist }, after: { mine, mnist }, held, steps, teachMs, evalMs }
  DATA_PROGRESS: 'data-progress', // { text }: while LOAD_IDX decompresses and checks the files
  DATA_LOADED: 'data-loaded', // { id, data: { source, train, test }, checkpoint, ...state }: LOAD_IDX is done
  DB_CLOSED: 'db-closed', // { id }: CLOSE_DB is done
  PONG: 'pong', // { seq }
  WORKERS: 'workers', // { id?, size, max, transport: 'shared' | 'message', replaced, steps, failure }: the workers steps are computed on (`steps` taken over several; `failure`, why it fell back to one)
  ERROR: 'error', // { id?, op, message }: a request failed and changed nothing
  CELL_DIGITS: 'cell-digits', // { id, net, label, predicted, step, total, digits: [{ index, pixels: Uint8Array(784), probabilities: [10] }] }
});

/** The networks the worker hosts. */
export const NETS = Object.freeze(['pretrained', 'training']);
