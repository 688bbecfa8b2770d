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
//   { op: 'crash', how: 'throw' | 'hang' | 'slow' } for the tests: the next compute throws or hangs,
//                                                  or every one from now takes three times as long
// Answers: { op: 'computed', seq, ms, bytes? } (ms: how long the shards took here, without the
// wait in the queue) and { op: 'failed', seq, message }.
//
// With shared memory, a worker that has served a message polls the control words for its next
// one (pool.js, CONTROL): a compute request or a step to apply found there is served (and a
// share answered) at once, before its message arrives, which is passed over when it comes (and
// while it polls so, the training worker does not post it at all). It
// waits so for a share's request for a few milliseconds, and for the step it has computed a
// share of for as long as the training worker may take over its own; a worker that sleeps until
// a message comes is slow to wake on a virtual machine.

import { CONTROL } from './pool.js';

// How long a worker polls for its next share before it sleeps until a message: the training
// worker asks for it within a millisecond while it trains, and does other work (an evaluation, a
// checkpoint) between steps now and then.
const SPIN_MS = 3;
// How long a worker that has computed a share polls for the step to apply: the training worker
// computes a share of its own meanwhile, as long as this one's, so a few milliseconds.
const APPLY_SPIN_MS = 20;
// The longest a worker serves requests from the control words before it reads its messages.
const AHEAD_MS = 250;

/** Serves the coordinator's messages in this worker, with the wasm package's `init` and
 * `Session` (the app's gradient.js and the benchmark's gradient worker pass their own). */
export function serveReplica(init, Session) {
  let session = null;
  let shared = null;
  let control = null;
  let block = 0; // this worker's control words
  let ahead = 1; // the `seq` of the first message not yet served from the control words
  let lastServed = null; // the `op` of the last request served
  let crashNext = null; // for the tests: 'throw' or 'hang' at the next compute
  let slowdown = 1; // for the tests: how many times as long each share takes

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
    apply({ offset, length, bytes }) {
      session.apply_shards(bytes ?? new Uint8Array(shared, offset, length));
    },
    crash({ how }) {
      if (how === 'slow') slowdown = 3;
      else crashNext = how;
    },
  };

  /** Computes shards start..end of `step`: sent back as `bytes`, or written into the shared
   * buffer at `offset` and flagged by `ticket`. */
  function computeShards(step, start, end, offset, ticket) {
    const have = session.progress().step;
    if (have !== step) throw new Error(`the replica is at step ${have}, the shards asked for are of step ${step}`);
    const began = performance.now();
    // Over shared memory the share goes from wasm memory straight into the step's buffer.
    const bytes =
      offset === undefined
        ? session.compute_shards(start, end)
        : session.compute_shards_into(start, end, new Uint8Array(shared, offset, (end - start) * session.shard_bytes()));
    if (slowdown > 1) {
      const until = began + slowdown * (performance.now() - began);
      while (performance.now() < until);
    }
    const ms = performance.now() - began;
    if (offset !== undefined && control && ticket !== undefined) {
      Atomics.store(control, block + CONTROL.MICROS, Math.round(ms * 1000));
      Atomics.store(control, block + CONTROL.DONE, ticket);
    }
    return { bytes, ms };
  }

  /** Serves requests from the control words, from `ahead` on, while each is found within its
   * polling time (and for at most AHEAD_MS in all): a compute request is computed and answered,
   * a step applied. Returns at the first request that is not there, or not for this worker's
   * state, which its message then brings.
   *
   * While it serves so, POLLING holds the `seq` it will look for next, and the training worker
   * posts no message for that request (pool.js, CONTROL): before it stops looking, it clears
   * POLLING and reads SEQ once more. */
  function serveAhead() {
    if (!control || crashNext || Atomics.load(control, CONTROL.SPINNING) !== 1) return;
    const word = (w) => Atomics.load(control, block + w);
    const stop = performance.now() + AHEAD_MS;
    let polling = true;
    Atomics.store(control, block + CONTROL.POLLING, ahead);
    try {
      for (;;) {
        const next = ahead;
        // After a share, the step it is part of comes next; after anything else, a share.
        const until = Math.min(stop, performance.now() + (lastServed === 'compute' ? APPLY_SPIN_MS : SPIN_MS));
        while (word(CONTROL.SEQ) !== next && performance.now() < until);
        if (polling && (word(CONTROL.SEQ) !== next || performance.now() >= stop)) {
          polling = false;
          Atomics.store(control, block + CONTROL.POLLING, 0);
        }
        if (word(CONTROL.SEQ) !== next) return;
        const [op, ticket, step, start, end, offset, length] = [CONTROL.OP, CONTROL.TICKET, CONTROL.STEP, CONTROL.START, CONTROL.END, CONTROL.OFFSET, CONTROL.LENGTH].map(word);
        // Written over since it was read: the training worker has moved on, and posted it.
        if (word(CONTROL.SEQ) !== next) return;
        Atomics.store(control, block + CONTROL.TAKEN, next);
        if (polling) Atomics.store(control, block + CONTROL.POLLING, next + 1);
        if (op === CONTROL.COMPUTE) {
          // A request for a step this worker is not at throws (computeShards), reported as its
          // message's would be: that message may never be posted.
          self.postMessage({ op: 'computed', seq: next, ms: computeShards(step, start, end, offset, ticket).ms });
        } else if (op === CONTROL.APPLY) {
          session.apply_shards(new Uint8Array(shared, offset, length));
        } else throw new Error(`unknown request ${op} in the control words`);
        lastServed = op === CONTROL.COMPUTE ? 'compute' : 'apply';
        ahead = next + 1; // TAKEN is already `next`
        // Past AHEAD_MS, the one request found after POLLING was cleared is the last.
        if (!polling) return;
      }
    } finally {
      if (polling) Atomics.store(control, block + CONTROL.POLLING, 0);
    }
  }

  // One message at a time, in order, once wasm is ready.
  let queue = init();
  // A failure while serving ahead is reported under the message being served, and fails the
  // worker too.
  self.onmessage = ({ data }) => {
    queue = queue.then(() => {
      try {
        if (data.seq >= ahead) {
          handlers[data.op](data);
          lastServed = data.op;
          ahead = data.seq + 1;
          if (control) Atomics.store(control, block + CONTROL.TAKEN, data.seq);
        } else if (data.seq < ahead - 1) {
          // Served from the control words already: polling now would cost SPIN_MS for each such
          // message, and a backlog of them can build up while the training worker trains. The
          // next request does not wait on this: this worker no longer advertises POLLING, so it
          // is posted.
          return;
        }
        serveAhead();
      } catch (error) {
        self.postMessage({ op: 'failed', seq: data.seq, message: error instanceof Error ? error.message : String(error) });
      }
    });
  };
}
