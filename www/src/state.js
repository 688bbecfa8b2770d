// The page's state, in one place: modules read it here and change it with `set`, and the DOM is
// drawn from it, never read back.

/**
 * What the page knows. `training` is the network in training as the worker last reported it
 * (protocol.js: a network's state), or null before the worker is ready.
 */
export function initialState() {
  return {
    page: 'loading', // 'loading' | 'ready' | 'failed': the page's WebAssembly and pretrained weights
    pageError: null,
    recognizer: 'pretrained', // which network recognizes the drawing: 'pretrained' | 'training'
    // Which networks were taught the person's digits (Teach) since their weights last came from
    // elsewhere: the page names them so, not as the shipped or trained network they started as.
    taught: { pretrained: false, training: false },
    pretrainedAvailable: true, // false once it is known that there are no pretrained weights
    pretrainedOnPage: false, // the page holds a copy of the pretrained network
    worker: 'loading', // 'loading' | 'ready' | 'restarting' | 'failed'
    restarts: 0,
    data: null, // { source, train, test } once the worker has the digits
    reloadingFiles: false, // the person's MNIST files are being loaded into a restarted worker
    training: null,
    requested: null, // 'run' | 'pause' while the worker has not yet confirmed Start or Pause
    // The settings the controls show: the core's defaults until the worker reports the network's own.
    settings: null,
    // When the last checkpoint of the run on the charts was saved (its savedAt).
    plottedCheckpoint: null,
    // After a restart the charts still plot the dead worker's run, until the person resumes it or
    // starts another.
    chartsStale: false,
    offer: null, // the checkpoint offered for resuming, or null
    resetFrom: 'scratch', // what Reset starts the network in training from: 'scratch' | 'pretrained'
    loading: 'Loading MNIST…', // what the worker says while it loads
    accuracy: null, // the last held-out accuracy of the network in training, or null
    evaluated: 0, // how many held-out digits that accuracy was measured on
    saved: null, // the last checkpoint written: { step, savedAt }, or { unavailable: message }
    error: null, // the last failure to show, or null
    diverged: null, // why training was paused, or null
    notice: null, // about the worker's restarts, or null
    flash: null, // a short-lived confirmation, or null
  };
}

/** The patch recording whether network `net` holds what Teach taught it. */
export const taughtPatch = (state, net, taught) => ({ taught: { ...state.taught, [net]: taught } });

/**
 * A store: `get()` the state; `set(patch)` changes it and calls every subscriber with (state,
 * previous). A change made by a subscriber is applied after every subscriber has seen the one
 * before it, so that none is handed an outdated state.
 */
export function createStore(state = initialState()) {
  const subscribers = new Set();
  const queue = [];
  let notifying = false;
  return {
    get: () => state,
    set(patch) {
      queue.push(patch);
      if (notifying) return;
      notifying = true;
      try {
        while (queue.length) {
          const previous = state;
          state = { ...state, ...queue.shift() };
          for (const subscriber of subscribers) subscriber(state, previous);
        }
      } finally {
        notifying = false;
      }
    },
    subscribe(subscriber) {
      subscribers.add(subscriber);
      return () => subscribers.delete(subscriber);
    },
  };
}
