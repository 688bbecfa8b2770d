// A gradient worker's side of data-parallel training: hosts a replica of the network in training
// (a Session with the same digits, settings, weights and position, restored from the training
// worker's checkpoint) and, each step, computes the gradients of the shards it is given; then
// applies all the step's shards, as the training worker does, so that it holds the same weights
// for the next step. The training worker (pool.js) is the only one that talks to it. Messages, in order (each carries the request's
// `seq`):
//   { op: 'sync', checkpoint: Uint8Array, images?, labels? }  take this state (and these digits)
//   { op: 'buffer', buffer: SharedArrayBuffer }                where shards are exchanged, when shared
//   { op: 'compute', step, start, end, offset? }   shards start..end; written at `offset` of the
//                                                  shared buffer, or sent back as bytes
//   { op: 'apply', offset?, length?, bytes? }      the step's shards, all of them, in order
//   { op: 'crash', how: 'throw' | 'hang' }         for the tests: the next compute throws or hangs
// Answers: { op: 'computed', seq, ms, bytes? } (ms: how long the shards took here, without the
// wait in the queue) and { op: 'failed', seq, message }.

/** Serves the coordinator's messages in this worker, with the wasm package's `init` and
 * `Session` (the app's gradient.js and the benchmark's gradient worker pass their own). */
export function serveReplica(init, Session) {
  let session = null;
  let shared = null;
  let crashNext = null; // for the tests: 'throw' or 'hang' at the next compute

  const handlers = {
    sync({ checkpoint, images, labels }) {
      if (images) {
        session?.free();
        session = null;
        const fresh = new Session();
        fresh.set_train_data(images, labels);
        session = fresh;
      }
      if (!session) throw new Error('a replica needs the training digits before a checkpoint');
      session.restore(checkpoint);
    },
    buffer({ buffer }) {
      shared = buffer;
    },
    compute({ seq, step, start, end, offset }) {
      if (crashNext === 'hang') {
        // Busy for ever, as a worker stuck in a loop is (a calling loop, which no minifier drops).
        const start = performance.now();
        while (performance.now() >= start);
      }
      if (crashNext) {
        crashNext = null;
        // Outside any handler, so that it reaches the training worker as this Worker's error event.
        setTimeout(() => {
          throw new Error('a gradient worker crashed on request (test)');
        });
        return;
      }
      const have = session.progress().step;
      if (have !== step) throw new Error(`the replica is at step ${have}, the shards asked for are of step ${step}`);
      const began = performance.now();
      const bytes = session.compute_shards(start, end);
      const ms = performance.now() - began;
      if (offset === undefined) {
        self.postMessage({ op: 'computed', seq, ms, bytes }, [bytes.buffer]);
      } else {
        new Uint8Array(shared, offset, bytes.length).set(bytes);
        self.postMessage({ op: 'computed', seq, ms });
      }
    },
    apply({ offset, length, bytes }) {
      session.apply_shards(bytes ?? new Uint8Array(shared, offset, length));
    },
    crash({ how }) {
      crashNext = how;
    },
  };

  // One message at a time, in order, once wasm is ready.
  let queue = init();
  self.onmessage = ({ data }) => {
    queue = queue.then(() => {
      try {
        handlers[data.op](data);
      } catch (error) {
        self.postMessage({ op: 'failed', seq: data.seq, message: error instanceof Error ? error.message : String(error) });
      }
    });
  };
}
