// Data-parallel training over several workers: the training worker is the coordinator and keeps
// up to MAX_WORKERS − 1 gradient workers (gradient.js), each with a replica of the network in
// training. A step's shards are split into contiguous shares, one per worker, the coordinator
// taking the first, each as long as the worker's recent pace allows (balancedShares); when every
// share is in, the coordinator takes the step from all the shards in
// order (the core's `apply_shards`, which sums them in shard order, so the weights are the same
// bits for any number of workers), and every replica applies the same shards to stay in step.
//
// The shards travel through a SharedArrayBuffer when the page is cross-origin isolated (COOP
// same-origin and COEP require-corp), else as transferred buffers in messages. Over shared memory,
// and with no more workers than the machine has cores, the workers also wait for each other
// awake (see CONTROL): each step's request and each share's arrival are flagged in a second,
// small SharedArrayBuffer, which the waiting side polls for a few milliseconds before it goes
// back to its messages. A worker that returns to its event loop sleeps, and on a virtual machine
// a sleeping core is slow to wake: waiting awake made two workers 8–24 % faster (README,
// "Training on several workers"). A request is posted as a message too unless the gradient
// worker is sure to find it there (CONTROL), and every share is answered, so time-outs and
// failures are handled as without it.
//
// A gradient worker that fails (an uncaught error, a refused request, or no answer in time: see
// Replica#timeout) is terminated and replaced, and the step is computed again: nothing was
// applied before all its shards were in, so the weights cannot be corrupted by a lost share. A
// step whose gradient workers fail ATTEMPTS times in a row is taken in the training worker alone,
// which then trains alone until another worker count is chosen.

/** The most workers, the training worker included, one tab trains on. */
export const MAX_WORKERS = 4;
// A share of a step takes milliseconds; the first after a sync also loads wasm and the digits,
// so it gets the longest wait. Later ones get SLOW_FACTOR times the slowest share the worker has
// computed since, from MIN_TIMEOUT_MS to COMPUTE_TIMEOUT_MS: a hung worker holds the training, and
// the page's requests queued behind it, for seconds, not for the first share's allowance. Shares
// count by the time the worker itself reports for computing them, not by the time to their
// answer: that also holds the wait for a sleeping thread to wake, which on a virtual machine is
// now and then over 100 ms for a share computed in 10, and would stretch every later time-out to
// the longest.
const COMPUTE_TIMEOUT_MS = 10_000;
const MIN_TIMEOUT_MS = 2_000;
const SLOW_FACTOR = 100;
// A step is tried this many times over the workers before it is taken alone.
const ATTEMPTS = 3;
// How long the training worker polls for the gradient workers' shares before it awaits their
// answers as messages: a share takes a few milliseconds, and a slower one is waited for asleep.
const SPIN_MS = 20;

/**
 * The control words in shared memory, as Int32 indices: word SPINNING is 1 while the workers
 * may wait awake; gradient worker i has the block of BLOCK words from (i + 1) · BLOCK, holding
 * the request it is sent next, beside the message that carries it:
 *   DONE    the ticket of the last share it has written into the shard buffer
 *   SEQ     the request's `seq`, 0 while the fields below are being written
 *   OP      COMPUTE or APPLY
 *   TICKET, STEP, START, END   a compute request's fields
 *   OFFSET, LENGTH             where its shards are (compute: where its share goes)
 *   POLLING while it serves requests from these words, the `seq` it will look for next; else 0
 *   TAKEN   the `seq` of the last request it has taken (from the words or as a message)
 *   MICROS  how long its last share took to compute, in µs, written before its DONE
 * A gradient worker polls its SEQ for its next message's `seq` whenever it has finished one, and
 * so starts on the next share, or applies the step, before the message arrives; only a request
 * that is its very next message qualifies, so nothing (a sync, a new buffer) is ever overtaken.
 * A request the worker is sure to look for (POLLING is its `seq`) is not posted as a message at
 * all, which spares both sides two messages a step: the pool writes SEQ, then reads POLLING, and
 * the worker clears POLLING, then reads SEQ once more before it stops looking, so one of the two
 * sees the other. A request not posted so is posted after all, in order, before
 * the next one overwrites the words, if TAKEN shows that the worker has not taken it.
 * Tickets count every request of the pool and never repeat, so a DONE left by a replaced worker
 * matches nothing.
 */
export const CONTROL = {
  SPINNING: 0,
  BLOCK: 16,
  DONE: 0,
  SEQ: 1,
  OP: 2,
  TICKET: 3,
  STEP: 4,
  START: 5,
  END: 6,
  OFFSET: 7,
  LENGTH: 8,
  POLLING: 9,
  TAKEN: 10,
  MICROS: 11,
  COMPUTE: 1,
  APPLY: 2,
};

/** Writes gradient worker i's next request into its control words: the fields, then its `seq`. */
function announce(control, i, seq, fields) {
  const block = CONTROL.BLOCK * (i + 1);
  // SEQ first back to 0: a worker that reads the fields between its two reads of SEQ sees them whole.
  Atomics.store(control, block + CONTROL.SEQ, 0);
  for (const [word, value] of Object.entries(fields)) Atomics.store(control, block + CONTROL[word], value);
  Atomics.store(control, block + CONTROL.SEQ, seq);
}

/** 'shared' when shards can be exchanged through a SharedArrayBuffer, else 'message'. */
export function transport() {
  return globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' ? 'shared' : 'message';
}

/** The default worker count: the machine's logical cores, at most MAX_WORKERS. */
export function defaultWorkers() {
  return Math.max(1, Math.min(MAX_WORKERS, globalThis.navigator?.hardwareConcurrency ?? 1));
}

/** Contiguous shares of shards 0..count over `parts` workers, the first ones one longer. */
export function shares(count, parts) {
  const base = Math.floor(count / parts);
  const extra = count % parts;
  const out = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const end = start + base + (i < extra ? 1 : 0);
    out.push([start, end]);
    start = end;
  }
  return out;
}

/**
 * Contiguous shares of shards 0..count over workers whose recent times per shard are `pace` (ms,
 * the training worker's first), each worker one shard at least: every further shard goes to the
 * worker that would finish its share soonest with it, the earlier worker on a tie, so that equal
 * paces give `shares(count, pace.length)`. A worker that the machine slows down (a busy core, a
 * slower core) hands shards to the others until its pace recovers; which worker computes a shard
 * does not change its bits, so the weights stay the same.
 */
export function balancedShares(count, pace) {
  // With fewer shards than workers (not the pool's case) the last workers get none.
  const counts = pace.map((_, i) => (i < count ? 1 : 0));
  for (let shard = pace.length; shard < count; shard++) {
    let best = 0;
    for (let i = 1; i < pace.length; i++) if ((counts[i] + 1) * pace[i] < (counts[best] + 1) * pace[best]) best = i;
    counts[best]++;
  }
  let start = 0;
  return counts.map((n) => [start, (start += n)]);
}

// Each worker's pace follows its times per shard, halfway to every new one: a slow stretch (some
// tens of steps when another thread takes the core) moves the shares within a few steps.
const PACE_WEIGHT = 0.5;
const follow = (pace, ms) => (pace === null ? ms : pace + PACE_WEIGHT * (ms - pace));

class ReplicaFailed extends Error {}

/** One gradient worker and its requests in flight. */
class Replica {
  /** `seq`: the last message number of the pool's earlier workers: numbers go on from there, so
   * words that a terminated worker may still write match none of this one's requests. `counts`:
   * the pool's, where `unposted` counts the requests taken without a message. */
  constructor(worker, seq, counts) {
    this.worker = worker;
    this.pending = new Map(); // seq → { resolve, reject, timer }
    this.seq = seq + 1;
    this.unposted = null; // a request announced in the control words and not posted
    this.counts = counts;
    this.dead = false;
    this.generation = null; // the pool's generation whose state it holds
    this.data = null; // the training images it holds
    this.buffer = null; // the shared buffer it writes to
    this.pace = null; // ms per shard, recently (balancedShares)
    this.synced(); // its first share loads wasm too
    worker.onmessage = ({ data }) => {
      if (data.op === 'failed') return this.fail(new ReplicaFailed(`a gradient worker failed: ${data.message}`));
      const request = this.pending.get(data.seq);
      if (!request) return;
      this.pending.delete(data.seq);
      clearTimeout(request.timer);
      this.slowest = Math.max(this.slowest, data.ms ?? 0);
      this.warm = true;
      request.resolve(data);
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      this.fail(new ReplicaFailed(`a gradient worker stopped: ${event.message || 'it could not start'}`));
    };
    worker.onmessageerror = () => this.fail(new ReplicaFailed('a gradient worker could not read a message'));
  }

  post(message, transfer = []) {
    this.#flush();
    this.worker.postMessage({ ...message, seq: ++this.seq }, transfer);
  }

  /** Sends `message`; with `words` (gradient worker i's block of `control`), announces it there
   * too, and posts it only if the worker is not polling for it (CONTROL). */
  send(message, transfer = [], words = null) {
    if (!words) return this.post(message, transfer);
    const { control, i, fields } = words;
    this.#flush();
    const seq = this.seq + 1;
    announce(control, i, seq, fields);
    if (Atomics.load(control, CONTROL.BLOCK * (i + 1) + CONTROL.POLLING) !== seq) return this.post(message, transfer);
    this.seq = seq;
    this.counts.unposted++;
    this.unposted = { message: { ...message, seq }, transfer, control, taken: CONTROL.BLOCK * (i + 1) + CONTROL.TAKEN };
  }

  /** Posts the request announced without a message if the worker has not taken it from its
   * words, which the next request is about to overwrite. */
  #flush() {
    const unposted = this.unposted;
    if (!unposted) return;
    this.unposted = null;
    if (Atomics.load(unposted.control, unposted.taken) < unposted.message.seq) {
      this.counts.unposted--;
      this.worker.postMessage(unposted.message, unposted.transfer);
    }
  }

  /** Its next answer is a first share after new state or digits: it gets the longest wait. */
  synced() {
    this.warm = false; // whether it has answered since
    this.slowest = 0; // ms, the slowest share computed since
  }

  /** How long its next answer may take, in ms. */
  timeout() {
    return this.warm ? Math.min(COMPUTE_TIMEOUT_MS, Math.max(MIN_TIMEOUT_MS, SLOW_FACTOR * this.slowest)) : COMPUTE_TIMEOUT_MS;
  }

  /** Notes that the share of request `seq` is in shared memory, though its answer has not been
   * read: the time-out no longer applies (the training worker may not read its messages before
   * the time-out's task is due). */
  seen(seq) {
    const request = this.pending.get(seq);
    if (request) clearTimeout(request.timer);
  }

  request(message, transfer = [], words = null) {
    const seq = this.seq + 1;
    const ms = this.timeout();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new ReplicaFailed(`a gradient worker did not answer within ${(ms / 1000).toFixed(1)} s`)),
        ms,
      );
      this.pending.set(seq, { resolve, reject, timer });
      if (this.dead) this.fail(new ReplicaFailed('the gradient worker has stopped'));
      else this.send(message, transfer, words);
    });
  }

  /** Terminates the worker; its requests in flight fail with `error`. */
  fail(error) {
    if (!this.dead) {
      this.dead = true;
      this.error = error;
      this.worker.terminate();
    }
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.pending.clear();
  }
}

/**
 * The gradient workers of the training worker. `createWorker()` starts one; `onChange(describe())`
 * is called when the worker count, or the count of workers replaced after a failure, changes.
 */
export class GradientPool {
  constructor({ createWorker, onChange = () => {} }) {
    this.createWorker = createWorker;
    this.onChange = onChange;
    this.size = defaultWorkers();
    this.transport = transport();
    this.replicas = [];
    this.replaced = 0;
    this.replacedWhy = null; // why the last replaced worker failed
    this.steps = 0; // steps taken over several workers, for the tests
    this.polled = 0; // of those, the steps whose shares were all found by polling, for the tests
    this.uneven = 0; // of those, the steps whose shares were not the even split, for the tests
    this.counts = { unposted: 0 }; // requests the gradient workers took without a message, for the tests
    this.failure = null; // why training fell back to one worker, if it did
    this.crashes = 0; // for the tests: replacements that are to crash too
    this.buffer = null;
    this.control = transport() === 'shared' ? new Int32Array(new SharedArrayBuffer(4 * CONTROL.BLOCK * MAX_WORKERS)) : null;
    this.tickets = 0;
    this.lastSeq = 0; // the last message number of the gradient workers no longer in use
    // A fresh object whenever the network's state changed other than by the pool's own steps:
    // a replica that holds another generation is sent the coordinator's checkpoint first.
    this.generation = {};
    this.stateKey = null;
    this.pace = null; // the training worker's ms per shard, recently (balancedShares)
  }

  describe() {
    const { size, transport, replaced, replacedWhy, steps, polled, uneven, failure } = this;
    return { size, max: MAX_WORKERS, transport, replaced, replacedWhy, steps, polled, uneven, unposted: this.counts.unposted, failure };
  }

  /** Uses `count` workers in all (the training worker included) from the next step. */
  setSize(count) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
      throw new Error(`the number of workers must be a whole number from 1 to ${MAX_WORKERS}, got ${count}`);
    }
    if (count > 1) this.failure = null;
    this.size = count;
    for (const replica of this.replicas.splice(count - 1)) {
      this.lastSeq = Math.max(this.lastSeq, replica.seq);
      replica.fail(new ReplicaFailed('no longer used'));
    }
    this.onChange(this.describe());
  }

  /** Whether the next step of `network` is split over workers. */
  parallel(network) {
    return this.size > 1 && network.session.shard_count() > 1;
  }

  /** For the tests: the first gradient worker throws (or hangs) during its next share of a step,
   * and the next `times − 1` workers that replace it throw; or (`how` 'slow') it computes every
   * share from then on at a third of its speed. */
  crash(how = 'throw', times = 1) {
    if (this.size < 2) throw new Error('there is no gradient worker: choose 2 workers or more first');
    if (!['throw', 'hang', 'slow'].includes(how)) throw new Error(`a gradient worker crashes by 'throw', 'hang' or 'slow', not ${how}`);
    this.#replicas(this.size - 1)[0].post({ op: 'crash', how });
    this.crashes = times - 1;
  }

  /** Records the network's state as the one the replicas hold (after the trainer's slice). */
  settled(network, trainImages) {
    this.stateKey = this.#key(network, trainImages);
  }

  // Cheap enough for every step: the network's version moves with its weights and its settings
  // (trainer.js), where serialising the settings cost 20–40 µs a step.
  #key(network, trainImages) {
    const { session, version } = network;
    return { session, version, trainImages };
  }

  #sameKey(a, b) {
    return (
      !!a &&
      !!b &&
      a.session === b.session &&
      a.version === b.version &&
      a.trainImages === b.trainImages
    );
  }

  /**
   * One step of `network` over the workers: its outcome, as `session.step()` returns it. A failed
   * gradient worker is replaced and the step tried again; after ATTEMPTS the step is taken here.
   */
  async step(network, train) {
    const key = this.#key(network, train.images);
    if (!this.#sameKey(key, this.stateKey)) {
      this.generation = {};
      this.stateKey = key;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#tryStep(network.session, train);
      } catch (error) {
        if (!(error instanceof ReplicaFailed)) throw error;
        if (attempt >= ATTEMPTS) {
          // Gradient workers that keep failing (they cannot load, say): go on in this worker alone.
          this.failure = error.message;
          this.setSize(1);
          return network.session.step();
        }
      }
    }
  }

  async #tryStep(session, train) {
    const count = session.shard_count();
    const parts = Math.min(this.size, count);
    const shardBytes = session.shard_bytes();
    const stepBytes = count * shardBytes;
    const step = session.progress().step;
    const shared = this.transport === 'shared';
    if (shared && this.buffer?.byteLength !== 2 * stepBytes) this.buffer = new SharedArrayBuffer(2 * stepBytes);
    // Two halves, by the step's parity: a replica may still be applying step s from one while
    // another writes its share of step s + 1 into the other.
    const slot = shared ? (step % 2) * stepBytes : 0;
    // A step of fewer shards than workers leaves some idle: they skip its update, so they are
    // brought up to date (from a checkpoint) when next used.
    const replicas = this.#replicas(parts - 1);
    for (const idle of this.replicas.slice(parts - 1)) idle.generation = null;
    // A worker not yet timed (new, or replaced after a failure) has no pace: the split is even.
    const paces = [this.pace, ...replicas.map((replica) => replica.pace)];
    const even = shares(count, parts);
    const ranges = paces.every((pace) => pace > 0) ? balancedShares(count, paces) : even;
    // Waiting awake only while every worker has a core of its own: otherwise the poller would
    // take the core the share it waits for is computed on.
    const spinning = shared && this.size <= (globalThis.navigator?.hardwareConcurrency ?? 1);
    if (shared) Atomics.store(this.control, CONTROL.SPINNING, spinning ? 1 : 0);
    let checkpoint = null;
    for (const replica of replicas) {
      if (shared && replica.buffer !== this.buffer) {
        replica.post({ op: 'buffer', buffer: this.buffer, control: this.control, index: replicas.indexOf(replica) });
        replica.buffer = this.buffer;
      }
      if (replica.generation !== this.generation || replica.data !== train.images) {
        checkpoint ??= session.checkpoint();
        const data = replica.data !== train.images && { images: train.images, labels: train.labels };
        replica.post({ op: 'sync', checkpoint, ...data });
        replica.synced();
        replica.generation = this.generation;
        replica.data = train.images;
      }
    }
    const tickets = [];
    const seqs = replicas.map((replica) => replica.seq + 1);
    const answers = ranges.slice(1).map(([start, end], i) => {
      if (!shared) return replicas[i].request({ op: 'compute', step, start, end });
      const offset = slot + start * shardBytes;
      const ticket = ++this.tickets;
      tickets.push(ticket);
      const fields = { OP: CONTROL.COMPUTE, TICKET: ticket, STEP: step, START: start, END: end, OFFSET: offset };
      return replicas[i].request({ op: 'compute', step, start, end, offset, ticket }, [], spinning ? { control: this.control, i, fields } : null);
    });
    // Settled here too, so that a failure while the coordinator computes is not left unhandled.
    const all = Promise.all(answers);
    all.catch(() => {});
    // Over shared memory the coordinator's share goes straight into the step's buffer.
    const [ownStart, ownEnd] = ranges[0];
    const began = performance.now();
    const own = shared
      ? session.compute_shards_into(ownStart, ownEnd, new Uint8Array(this.buffer, slot + ownStart * shardBytes, (ownEnd - ownStart) * shardBytes))
      : session.compute_shards(ownStart, ownEnd);
    const ownMs = performance.now() - began;
    // Every share written (its ticket flagged), or else the answers; with shared memory the
    // answers carry nothing the step needs, and arrive later.
    const written = () => tickets.every((ticket, i) => Atomics.load(this.control, CONTROL.BLOCK * (i + 1) + CONTROL.DONE) === ticket);
    if (spinning) {
      const until = performance.now() + SPIN_MS;
      while (!written() && performance.now() < until);
    }
    const polled = spinning && written();
    // Answers not awaited here are read later: their time-outs must not fire meanwhile.
    if (polled) replicas.forEach((replica, i) => replica.seen(seqs[i]));
    const replies = polled ? null : await all;
    let shards;
    if (shared) shards = new Uint8Array(this.buffer, slot, stepBytes);
    else {
      shards = new Uint8Array(stepBytes);
      shards.set(own, 0);
      replies.forEach(({ bytes }, i) => shards.set(bytes, ranges[i + 1][0] * shardBytes));
    }
    // The replicas apply the step while the coordinator does.
    for (const [i, replica] of replicas.entries()) {
      const fields = { OP: CONTROL.APPLY, OFFSET: slot, LENGTH: stepBytes };
      if (shared) replica.send({ op: 'apply', offset: slot, length: stepBytes }, [], spinning ? { control: this.control, i, fields } : null);
      else {
        const copy = shards.slice();
        replica.post({ op: 'apply', bytes: copy }, [copy.buffer]);
      }
    }
    this.pace = follow(this.pace, ownMs / (ownEnd - ownStart));
    replicas.forEach((replica, i) => {
      const ms = shared ? Atomics.load(this.control, CONTROL.BLOCK * (i + 1) + CONTROL.MICROS) / 1000 : replies[i].ms;
      const [start, end] = ranges[i + 1];
      replica.pace = follow(replica.pace, ms / (end - start));
    });
    let outcome;
    try {
      outcome = session.apply_shards(shards);
    } catch (error) {
      // The replicas may have taken a step the coordinator has not: bring them back to its state.
      this.generation = {};
      throw error;
    }
    this.steps++;
    if (polled) this.polled++;
    if (ranges.some(([, end], i) => end !== even[i][1])) this.uneven++;
    return outcome;
  }

  /** The first `count` gradient workers, alive: a failed one is replaced by a new one. */
  #replicas(count) {
    for (let i = 0; i < count; i++) {
      if (this.replicas[i] && !this.replicas[i].dead) continue;
      if (this.replicas[i]) {
        this.replaced++;
        this.replacedWhy = this.replicas[i].error?.message ?? null;
        this.onChange(this.describe());
      }
      this.lastSeq = Math.max(this.lastSeq, ...this.replicas.map((replica) => replica?.seq ?? 0));
      this.replicas[i] = new Replica(this.createWorker(), this.lastSeq, this.counts);
      if (this.control) this.control.fill(0, CONTROL.BLOCK * (i + 1), CONTROL.BLOCK * (i + 2));
      if (this.crashes > 0) {
        this.crashes--;
        this.replicas[i].post({ op: 'crash', how: 'throw' });
      }
    }
    return this.replicas.slice(0, count);
  }
}
