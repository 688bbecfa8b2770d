// The messages between the page and the training worker. Every message is a plain object with a
// `type`; requests that expect an answer carry an `id` that the answer repeats.
//
// A checkpoint, as READY reports it: { step, seen, epoch, savedAt, dataSource, settings }, or null.
export const MSG = Object.freeze({
  // page → worker
  START: 'start', // train batch after batch until paused
  PAUSE: 'pause',
  RESET: 'reset', // { from: 'scratch' | 'pretrained', seed? }: a new model, counters and charts back to 0
  CONFIGURE: 'configure', // { id?, learningRate?, batchSize? }: applies while training runs
  PREDICT: 'predict', // { id, pixels: Float32Array(784) }
  EXPORT: 'export', // { id }: the weights as a .safetensors file
  LOAD_WEIGHTS: 'load-weights', // { id, bytes: Uint8Array, name }: replaces the weights, or changes nothing
  RESUME: 'resume', // { id }: weights, counters and settings from the saved checkpoint; training starts
  DISCARD_CHECKPOINT: 'discard-checkpoint', // { id }
  SAVE: 'save', // checkpoint now if there is unsaved progress (the page is being hidden)
  PING: 'ping', // { seq }: answered even while loading; silence means the worker is stuck
  CRASH: 'crash', // { how: 'throw' | 'hang' }: for the tests of recovery, sent only under ?test-crash

  // worker → page
  STATUS: 'status', // { text }: while loading
  READY: 'ready', // { data: { source, train, test, evaluated }, pretrained, settings, checkpoint, ...state }
  FATAL: 'fatal', // { message }: the worker could not start
  STATE: 'state', // { running, step, seen, epoch, epochProgress, examplesPerSec, batchSize, learningRate }
  WAS_RESET: 'was-reset', // { from, ...state }: a fresh model; the page clears its charts
  STEPS: 'steps', // { steps: [{ step, loss }], ...state }: the losses of the last slice, NaN kept
  EVAL: 'eval', // { step, accuracy, loss, count }: on the held-out digits
  DIVERGED: 'diverged', // { step, message }: a non-finite loss; training is paused, weights restored
  SETTINGS: 'settings', // { id, learningRate, batchSize }
  PREDICTION: 'prediction', // { id, probabilities: Float32Array(10), step }
  WEIGHTS: 'weights', // { id, bytes: Uint8Array, step }
  WEIGHTS_LOADED: 'weights-loaded', // { id, name }
  RESUMED: 'resumed', // { id, savedAt, ...state }
  CHECKPOINT_SAVED: 'checkpoint-saved', // { step, savedAt }
  CHECKPOINT_DISCARDED: 'checkpoint-discarded', // { id }
  CHECKPOINTS_UNAVAILABLE: 'checkpoints-unavailable', // { message }: storage refused; training goes on
  PONG: 'pong', // { seq }
  ERROR: 'error', // { id?, op, message }: a request failed and changed nothing
});
