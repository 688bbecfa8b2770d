// What the page does with each message the worker sends on its own (answers to requests go back to
// whoever asked): a table from message type to handler, each turning the message into changes of
// the page's state, the charts or the recognizer's copies.
import { MSG } from './protocol.js';
import { taughtPatch } from './state.js';

/** The handler table for WorkerClient. */
export function createMessageHandlers({ store, charts, recognizer }) {
  // The panel and charts follow the network in training; the worker may report on the other too.
  const training = (handler) => (msg) => {
    if (msg.net === 'training') handler(msg);
  };
  const resetCharts = () => {
    charts.reset();
    store.set({ chartsStale: false, plottedCheckpoint: null, accuracy: null });
  };
  return {
    [MSG.STATUS]: (msg) => store.set({ loading: msg.text }),
    [MSG.READY]: (msg) => {
      const state = store.get();
      // Start may have been pressed while the worker loaded: the START waits in its inbox.
      const running = state.requested === 'run';
      store.set({
        worker: 'ready',
        data: msg.data,
        training: msg.nets.training,
        pretrainedAvailable: 'pretrained' in msg.nets,
        // Unless a new run was started before the worker was ready: its checkpoints replace this one.
        offer: msg.checkpoint && !running ? msg.checkpoint : null,
        notice: state.restarts
          ? 'The training worker stopped unexpectedly and was restarted. ' +
            (msg.checkpoint && !running ? 'Training can resume from its last checkpoint.' : 'Its network in training starts over.')
          : null,
      });
    },
    [MSG.FATAL]: (msg) =>
      store.set({ worker: 'failed', loading: 'Training is unavailable', error: `The training worker could not start: ${msg.message}` }),
    [MSG.WAS_RESET]: training((msg) => {
      resetCharts();
      // A checkpoint on offer stays on offer: the worker keeps it (CHECKPOINT_DISCARDED says when
      // a checkpoint is deleted).
      store.set({
        ...taughtPatch(store.get(), 'training', false),
        training: msg,
        settings: msg.settings,
        diverged: null,
        requested: null,
        notice: null,
      });
    }),
    // The old run's checkpoint is gone from the store, after a reset: the line saying when it was saved goes too.
    [MSG.CHECKPOINT_DISCARDED]: training(() => store.set({ saved: null, offer: null })),
    // The answer to START or PAUSE (or a stop): the request is confirmed.
    [MSG.STATE]: training((msg) => store.set({ training: msg, requested: null })),
    [MSG.STEPS]: training((msg) => {
      if (store.get().chartsStale) resetCharts();
      charts.addSteps(msg.steps);
      store.set({ training: msg });
    }),
    [MSG.EVAL]: training((msg) => {
      // The replacement's fresh network is not the run on the charts.
      if (store.get().chartsStale) return;
      charts.addEval(msg.step, msg.accuracy);
      store.set({ accuracy: msg.accuracy, evaluated: msg.count });
    }),
    [MSG.DIVERGED]: training((msg) =>
      store.set({
        // The core's message names the step, the learning rate it ran at (the schedule's, which
        // may be below the one typed) and which weights were kept.
        diverged: `Training diverged and was paused: ${msg.message}. Lower the learning rate, then resume.`,
      }),
    ),
    [MSG.WEIGHTS_CHANGED]: (msg) => recognizer.setWeights(msg.net, msg.bytes, msg.step),
    [MSG.CHECKPOINT_SAVED]: training((msg) =>
      store.set({ saved: { step: msg.step, savedAt: msg.savedAt }, plottedCheckpoint: msg.savedAt }),
    ),
    [MSG.CHECKPOINTS_UNAVAILABLE]: (msg) => {
      console.warn(`checkpoints are off: ${msg.message}`);
      store.set({ saved: { unavailable: msg.message } });
    },
    [MSG.ERROR]: (msg) => store.set({ error: msg.message }),
  };
}
