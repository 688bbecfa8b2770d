// A gradient worker's side of data-parallel training: hosts a replica of the network in training
// (a Session with the same digits, settings, weights and position, restored from the training
// worker's checkpoint) and, each step, computes the gradients of the shards it is given; then
// applies all the step's shards, as the training worker does, so that it holds the same weights
// for the next step. The training worker (pool.js) is the only one that talks to it. Messages, in order (each carries the request's
// `seq`):
//   { op: 'sync', checkpoint: Uint8Array, images?, labels? }  take this state (and these digits)
//   { op: 'buffer', buffer, control, index }      where shards are exchanged, when shared; the
//                                                  control words (pool.js, CONTROL) and this
//                                                  worker's block among them
//   { op: 'compute', step, start, end, offset?, ticket? }   shards start..end; written at `offset`
//                                                  of the shared buffer (then `ticket` is flagged
//                                                  in the control words), or sent back as bytes
//   { op: 'apply', offset?, length?, bytes? }      the step's shards, all of them, in order
//   { op: 'crash', how: 'throw' | 'hang' }         for the tests: the next compute throws or hangs
// Answers: { op: 'computed', seq, ms, bytes? } (ms: how long the shards took here, without the
// wait in the queue) and { op: 'failed', seq, message }.
//
// With shared memory, after applying a step this worker polls the control words for a few
// milliseconds: a compute request that is its very next message is started from there, before
// the message arrives (which is then only answered).

import { CONTROL } from './pool.js';

// How long a worker that has applied a step polls for its next share before it sleeps until a
// message: the training worker asks for it within a millisecond while it trains.
const SPIN_MS = 3;

/** Serves the coordinator's messages in this worker, with the wasm package's `init` and
 * `Session` (the app's gradient.js and the benchmark's gradient worker pass their own). */
export function serveReplica(init, Session) {
  let session = null;
  let shared = null;
  let control = null;
  let block = 0; // this worker's control words
  let early = null; // { seq, ticket, ms }: the compute request already done from the control words
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
    buffer({ buffer, control: words, index }) {
      shared = buffer;
      control = words;
      block = CONTROL.BLOCK * (index + 1);
    },
    compute({ seq, step, start, end, offset, ticket }) {
      const done = early;
      early = null;
      if (done?.seq === seq && done.ticket === ticket) {
        self.postMessage({ op: 'computed', seq, ms: done.ms });
        return;
      }
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
      const { bytes, ms } = computeShards(step, start, end, offset, ticket);
      if (offset === undefined) self.postMessage({ op: 'computed', seq, ms, bytes }, [bytes.buffer]);
      else self.postMessage({ op: 'computed', seq, ms });
    },
    apply({ seq, offset, length, bytes }) {
      session.apply_shards(bytes ?? new Uint8Array(shared, offset, length));
      if (control) awaitNextShare(seq + 1);
    },
    crash({ how }) {
      crashNext = how;
    },
  };

  /** Computes shards start..end of `step`: sent back as `bytes`, or written into the shared
   * buffer at `offset` and flagged by `ticket`. */
  function computeShards(step, start, end, offset, ticket) {
    const have = session.progress().step;
    if (have !== step) throw new Error(`the replica is at step ${have}, the shards asked for are of step ${step}`);
    const began = performance.now();
    const bytes = session.compute_shards(start, end);
    const ms = performance.now() - began;
    if (offset !== undefined) {
      new Uint8Array(shared, offset, bytes.length).set(bytes);
      if (control && ticket !== undefined) Atomics.store(control, block + CONTROL.DONE, ticket);
    }
    return { bytes, ms };
  }

  /** Polls the control words, for up to SPIN_MS, for a compute request whose `seq` is `next`,
   * this worker's next message, and computes it; the message is then only answered. */
  function awaitNextShare(next) {
    if (Atomics.load(control, CONTROL.SPINNING) !== 1) return;
    const until = performance.now() + SPIN_MS;
    const posted = () => Atomics.load(control, block + CONTROL.SEQ) === next;
    while (!posted() && performance.now() < until);
    if (!posted()) return;
    const word = (w) => Atomics.load(control, block + w);
    const [ticket, step, start, end, offset] = [CONTROL.TICKET, CONTROL.STEP, CONTROL.START, CONTROL.END, CONTROL.OFFSET].map(word);
    // A request for a step this worker is not at is left to its message, which reports it. A
    // failure while computing is reported under the `apply` message, and fails the worker too.
    if (crashNext || session.progress().step !== step) return;
    early = { seq: next, ticket, ms: computeShards(step, start, end, offset, ticket).ms };
  }

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
