// The training worker: hosts the networks as the core's Sessions — 'pretrained' (from the
// shipped weights) and 'training' (from scratch) — and does their I/O: fetching the digits,
// time slicing (trainer.js), messages and checkpoints in IndexedDB. Messages go through the
// handler table below; see protocol.js for what each carries.
import init, { Session } from 'lenet-wasm';
import { wasmBuild, wasmUrl } from '../wasm-module.js';
import { MSG } from '../protocol.js';
import { SITE_URL } from '../base.js';
import { loadDigits } from './data.js';
import { fetchWeights } from '../weights-file.js';
import { CheckpointStore, Checkpointer, describeCheckpoint, holdsCheckpoint } from './checkpoints.js';
import { Network, Trainer } from './trainer.js';
import { GradientPool } from './pool.js';
import { HeldOutPredictions } from './heldout.js';
import { createTeach } from './teach.js';
import { parseMnistFiles } from './idx-files.js';

// The page's copy of a watched network is refreshed at most this often while it trains.
const PUBLISH_EVERY_MS = 250;
/** The longest a Pause waits for its checkpoint to be committed before it is confirmed. */
const PAUSE_SAVE_WAIT_MS = 5_000;

const post = (message, transfer) => self.postMessage(message, transfer ?? []);
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

// Messages can arrive while wasm and the data are still loading: they wait here, in order.
// They wait too while a slice of training awaits the gradient workers (`busy()`), so that
// nothing changes a network in the middle of a step.
const inbox = [];
let handle = null;
let busy = () => false;
self.onmessage = ({ data }) => {
  // The heartbeat is answered at once, even while loading: it asks "are you alive", not "ready".
  if (data?.type === MSG.PING) post({ type: MSG.PONG, seq: data.seq });
  else if (handle && !busy()) handle(data);
  else inbox.push(data);
};
// An async handler that changes a network after an await waits for `idle()` first.
const idleWaiters = [];
const idle = () => (busy() ? new Promise((resolve) => idleWaiters.push(resolve)) : Promise.resolve());
function drain() {
  if (busy()) return;
  for (const resolve of idleWaiters.splice(0)) resolve();
  while (handle && !busy() && inbox.length) handle(inbox.shift());
}

/** The worker once everything is loaded: its networks and the handlers of the page's messages. */
function createWorker({ digits, pretrained, store, saved, storageError }) {
  const networks = new Map();
  // Sessions that hold the digits; the pretrained network gets them when first used.
  const fed = new WeakSet();
  const feed = (session) => {
    if (!fed.has(session)) {
      session.set_train_data(digits.train.images, digits.train.labels);
      session.set_test_data(digits.test.images, digits.test.labels);
      fed.add(session);
    }
    return session;
  };
  if (pretrained) {
    try {
      networks.set('pretrained', new Network('pretrained', Session.from_safetensors(pretrained)));
    } catch (error) {
      post({ type: MSG.ERROR, op: 'pretrained', message: `The pretrained weights cannot be used: ${messageOf(error)}` });
      pretrained = null;
    }
  }
  networks.set('training', new Network('training', feed(new Session())));

  const network = (name) => {
    const found = networks.get(name);
    if (found) return found;
    if (name === 'pretrained') throw new Error('There are no pretrained weights');
    throw new Error(`unknown network ${JSON.stringify(name)}: the networks are ${[...networks.keys()].join(' and ')}`);
  };

  // The saved checkpoint as the page offers it, with whether the digits loaded now can resume it.
  const offerOf = (record) => describeCheckpoint(record, feed(network('training').session));

  const checkpointer = new Checkpointer({
    store,
    dataSource: digits.source,
    onSaved: (net, record) => post({ type: MSG.CHECKPOINT_SAVED, net, step: record.step, savedAt: record.savedAt }),
    onUnavailable: (error) => post({ type: MSG.CHECKPOINTS_UNAVAILABLE, message: messageOf(error) }),
  });
  if (storageError) checkpointer.unavailable(storageError);

  // The page keeps a copy of the network it recognizes with, for instant answers.
  const watch = { network: null, version: -1, at: 0 };
  function publishWeights() {
    const { network: n } = watch;
    if (!n || n.version === watch.version) return;
    const now = performance.now();
    if (n.running && now - watch.at < PUBLISH_EVERY_MS) return;
    const bytes = n.session.to_safetensors();
    post({ type: MSG.WEIGHTS_CHANGED, net: n.name, bytes, step: n.session.progress().step }, [bytes.buffer]);
    watch.version = n.version;
    watch.at = now;
  }

  function afterTask() {
    for (const n of networks.values()) checkpointer.maybeSave(n);
    publishWeights();
  }

  // The other workers a step's shards are computed on (pool.js).
  const pool = new GradientPool({
    createWorker: () => new Worker(new URL('./gradient.js', import.meta.url), { type: 'module', name: 'lenet-gradients' }),
    onChange: (workers) => post({ type: MSG.WORKERS, ...workers }),
  });
  const trainer = new Trainer({
    networks: () => [...networks.values()],
    post,
    afterTask,
    pool,
    trainData: () => digits.train,
  });
  trainer.onIdle = drain;

  function start(n) {
    feed(n.session);
    if (!n.running) checkpointer.started(n);
    trainer.start(n);
  }

  // Each handler returns the answer to post (the request's id is added), a promise of one, or nothing.
  const handlers = {
    [MSG.START]: ({ net }) => {
      const n = network(net);
      start(n);
      return { type: MSG.STATE, ...n.state() };
    },
    [MSG.PAUSE]: async ({ net }) => {
      const n = network(net);
      n.stop(new Error(`paused at step ${n.session.progress().step}`));
      // Confirmed once its checkpoint is committed: a page that shows training paused may be
      // closed that instant (the page guards its unload until then). Storage that never answers
      // (IndexedDB can hang) holds the confirmation PAUSE_SAVE_WAIT_MS at most, and one that fails
      // is said; the pause stands either way.
      const waited = new Promise((resolve) => setTimeout(resolve, PAUSE_SAVE_WAIT_MS));
      try {
        await Promise.race([checkpointer.saveNow(n), waited]);
      } catch (error) {
        post({ type: MSG.ERROR, message: `Paused, but its checkpoint was not saved: ${messageOf(error)}` });
      }
      return { type: MSG.STATE, ...n.state() };
    },
    [MSG.TRAIN_STEPS]: ({ net, count }) => {
      const n = network(net);
      feed(n.session);
      return new Promise((resolve, reject) => {
        trainer.trainSteps(n, count, (error) => (error ? reject(error) : resolve({ type: MSG.STEPPED, ...n.state() })));
        checkpointer.started(n);
        post({ type: MSG.STATE, ...n.state() });
      });
    },
    [MSG.RESET]: ({ net, from, seed }) => {
      const n = network(net);
      const settings = { ...n.session.settings(), ...(seed !== undefined && { seed }) };
      let session;
      if (from === 'pretrained') {
        if (!pretrained) throw new Error('There are no pretrained weights to start from');
        session = Session.from_safetensors(pretrained, settings);
      } else if (from === 'scratch') {
        session = new Session(settings);
      } else {
        throw new Error(`a network is reset from 'scratch' or 'pretrained', not ${JSON.stringify(from)}`);
      }
      n.replace(feed(session));
      trainer.evaluate(n);
      // The old run is over: its checkpoint must not be offered after a reload as if it were this
      // network's. A checkpoint on offer is of no run here (the person has neither resumed nor
      // replaced it): only Discard or a new run's first checkpoint ends it. Storage that refused
      // before has been reported already.
      if (!checkpointer.holdsRun(n)) return { type: MSG.WAS_RESET, from, ...n.state() };
      checkpointer.discard(n).then(
        () => post({ type: MSG.CHECKPOINT_DISCARDED, net }),
        (error) => {
          if (!checkpointer.off) {
            post({ type: MSG.ERROR, op: MSG.RESET, message: `The checkpoint of the previous network could not be deleted: ${messageOf(error)}` });
          }
        },
      );
      return { type: MSG.WAS_RESET, from, ...n.state() };
    },
    [MSG.CONFIGURE]: ({ net, settings }) => {
      const n = network(net);
      // Throws, changing nothing, naming the bad field.
      n.session.set_settings(settings);
      // The gradient workers' replicas, and the saved checkpoint, take the new settings.
      n.changed();
      return { type: MSG.SETTINGS, ...n.state() };
    },
    [MSG.WATCH]: ({ net }) => {
      watch.network = networks.get(net) ?? null;
      watch.version = -1;
    },
    [MSG.EXPORT]: ({ net }) => {
      const n = network(net);
      return { type: MSG.WEIGHTS, net, bytes: n.session.to_safetensors(), step: n.session.progress().step };
    },
    [MSG.LOAD_WEIGHTS]: ({ net, bytes, name }) => {
      const n = network(net);
      // Unchanged when the file is rejected.
      n.session.load_safetensors(bytes);
      n.changed();
      if (fed.has(n.session)) trainer.evaluate(n);
      return { type: MSG.WEIGHTS_LOADED, net, name };
    },
    [MSG.RESUME]: async ({ net, run = true }) => {
      const n = network(net);
      const record = await store.read(net);
      await idle();
      if (!holdsCheckpoint(record)) throw new Error('There is no saved checkpoint to resume from');
      const session = feed(new Session());
      try {
        session.restore(record.checkpoint);
      } catch (error) {
        session.free();
        throw error;
      }
      n.replace(session);
      checkpointer.markSaved(n);
      if (run) start(n);
      trainer.evaluate(n);
      return { type: MSG.RESUMED, savedAt: record.savedAt, ...n.state() };
    },
    [MSG.DISCARD_CHECKPOINT]: async ({ net }) => {
      await checkpointer.discard(network(net));
      return { type: MSG.CHECKPOINT_DISCARDED, net };
    },
    [MSG.SAVE]: () => {
      for (const n of networks.values()) checkpointer.maybeSave(n, true);
    },
    [MSG.CRASH]: ({ how }) => crash(how),
    [MSG.SET_WORKERS]: ({ count }) => {
      if (count !== undefined) pool.setSize(count);
      return { type: MSG.WORKERS, ...pool.describe() };
    },
    [MSG.CRASH_GRADIENT]: ({ how, times }) => pool.crash(how, times),
    // The confusion matrix: a pass over the held-out digits, and the digits behind one of its cells.
    [MSG.EVALUATE]: ({ net }) => {
      const n = network(net);
      feed(n.session);
      trainer.evaluate(n);
    },
    [MSG.CELL]: ({ net, label, predicted }) => ({ type: MSG.CELL_DIGITS, ...heldOut.cell(network(net), label, predicted) }),
    [MSG.CLOSE_DB]: async () => {
      await store.closeConnection();
      return { type: MSG.DB_CLOSED };
    },
    // Everything is parsed before anything changes: a bad file leaves the data and the networks as they were.
    [MSG.LOAD_IDX]: async ({ files }) => {
      const parsed = await parseMnistFiles(files, (text) => post({ type: MSG.DATA_PROGRESS, text }));
      await idle();
      digits = parsed;
      heldOut = new HeldOutPredictions(digits.test);
      checkpointer.dataSource = parsed.source;
      for (const n of networks.values()) {
        if (!fed.has(n.session)) continue;
        n.session.set_train_data(digits.train.images, digits.train.labels);
        n.session.set_test_data(digits.test.images, digits.test.labels);
        trainer.evaluate(n);
      }
      const data = { source: digits.source, train: digits.train.count, test: digits.test.count };
      // Whether the saved checkpoint can be resumed may have changed with the digits. A store that
      // cannot be read offers none, as at boot.
      const record = await store.read('training').catch(() => null);
      return { type: MSG.DATA_LOADED, data, checkpoint: offerOf(record), ...network('training').state() };
    },
  };
  let heldOut = new HeldOutPredictions(digits.test);
  // Teaching a person's handwriting (teach.js): the network stops training while it is tuned.
  const teach = createTeach({
    digits,
    prepare: (net) => {
      const n = network(net);
      n.stop(new Error('paused to learn your handwriting'));
      n.evaluating = false;
      feed(n.session);
      return n;
    },
  });
  handlers[MSG.TEACH] = async (message) => {
    const report = await teach(message);
    trainer.evaluate(network(message.net));
    post({ type: MSG.STATE, ...network(message.net).state() });
    return { type: MSG.TAUGHT, ...report };
  };

  const answer = (id, reply) => {
    if (!reply) return;
    post({ ...reply, id }, reply.bytes instanceof Uint8Array ? [reply.bytes.buffer] : []);
  };
  const fail = (id, op, error) => post({ type: MSG.ERROR, id, op, message: messageOf(error) });
  const settle = () => {
    afterTask();
    trainer.schedule();
  };

  function handleMessage(message) {
    const { type, id } = message ?? {};
    try {
      const handler = handlers[type];
      if (!handler) throw new Error(`unknown message type ${JSON.stringify(type)}`);
      const reply = handler(message);
      if (reply instanceof Promise) {
        reply.then((r) => answer(id, r), (error) => fail(id, type, error)).finally(settle);
      } else {
        answer(id, reply);
      }
    } catch (error) {
      fail(id, type, error);
    }
    settle();
  }

  const ready = {
    type: MSG.READY,
    data: { source: digits.source, train: digits.train.count, test: digits.test.count },
    nets: Object.fromEntries([...networks].map(([name, n]) => [name, n.state()])),
    checkpoint: offerOf(saved),
    workers: pool.describe(),
    wasm: wasmBuild,
  };
  trainer.evaluate(network('training'));
  return { handleMessage, ready, settle, busy: () => trainer.busy };
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

async function boot() {
  const base = SITE_URL;
  post({ type: MSG.STATUS, text: 'Loading WebAssembly and MNIST…' });
  const store = new CheckpointStore();
  let storageError = null;
  const [, digits, pretrained, saved] = await Promise.all([
    init({ module_or_path: wasmUrl }),
    loadDigits(base),
    fetchWeights(`${base}lenet5-mnist.safetensors`),
    store.read('training').catch((error) => {
      storageError = error;
      return null;
    }),
  ]);
  const worker = createWorker({ digits, pretrained, store, saved, storageError });
  post(worker.ready);
  handle = worker.handleMessage;
  busy = worker.busy;
  drain();
  worker.settle();
}

boot().catch((error) => post({ type: MSG.FATAL, message: messageOf(error) }));
