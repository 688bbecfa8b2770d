// The page's side of the training worker: requests and their answers, the heartbeat, and
// restarting a worker that crashed or hangs.
import { MSG } from './protocol.js';

// A worker that leaves a ping unanswered for this many beats is stuck. The longest thing it does
// without looking at its messages is one training step (a second for a large batch on a slow
// machine), so a few beats leave room for a loaded machine.
const HEARTBEAT_MS = 2000;
const HEARTBEAT_BEATS = 4;
// A worker that keeps dying is not restarted for ever: past this many restarts a minute, the
// page gives up and says so.
const MAX_RESTARTS_PER_MINUTE = 3;

/**
 * Starts a worker from `createWorker()` and keeps one running.
 *
 * - `handlers[type](message)` receives every message that is not the answer to a request;
 * - `onStart(post)` runs whenever a worker (the first, or a replacement) has been started, with a
 *   function that posts to it: messages posted then wait in its inbox until it is ready;
 * - `onRestart(reason)` when a worker failed after it was ready and another was started;
 * - `onFailed(reason)` when no worker can run: it could not load, or keeps failing.
 */
export class WorkerClient {
  constructor({ createWorker, handlers, onStart, onRestart, onFailed }) {
    this.createWorker = createWorker;
    this.handlers = handlers;
    this.onStart = onStart;
    this.onRestart = onRestart;
    this.onFailed = onFailed;
    this.nextId = 1;
    this.pending = new Map(); // id → { message, resolve, reject }
    this.restarts = []; // when workers were restarted (performance.now())
    this.failed = false;
    this.#start();
    this.timer = setInterval(() => this.#beat(), HEARTBEAT_MS);
  }

  /** Posts a message that expects no answer. */
  post(message) {
    this.worker.postMessage(message);
  }

  /** Posts a request; resolves with its answer, rejects with the worker's error. A request the
   * worker never answered is sent again to its replacement. */
  request(message) {
    const id = this.nextId++;
    const full = { ...message, id };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { message: full, resolve, reject });
      this.worker.postMessage(full);
    });
  }

  #start() {
    this.worker = this.createWorker();
    this.worker.onmessage = ({ data }) => this.#receive(data);
    this.worker.onerror = (event) => this.#error(event);
    this.ready = false;
    // The heartbeat starts with the worker's first message (a worker that cannot load fires an
    // error event instead); at most one ping is outstanding.
    this.heartbeat = { alive: false, waiting: 0, beats: 0, seq: 0 };
    this.onStart((message) => this.post(message));
  }

  #receive(msg) {
    this.heartbeat.alive = true;
    if (msg.type === MSG.READY) this.ready = true;
    const waiting = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (waiting) {
      this.pending.delete(msg.id);
      if (msg.type === MSG.ERROR) waiting.reject(new Error(msg.message));
      else waiting.resolve(msg);
      return;
    }
    if (msg.type === MSG.PONG) {
      if (msg.seq === this.heartbeat.waiting) this.heartbeat.waiting = 0;
      return;
    }
    const handler = this.handlers[msg.type];
    if (handler) handler(msg);
    else console.warn('unexpected message from the worker', msg);
  }

  #error(event) {
    // A worker that never got ready cannot be loaded at all: starting another would fail the same way.
    if (this.ready) {
      event.preventDefault();
      this.#restart(`failed: ${event.message || 'no message'}`);
      return;
    }
    this.#fail(`The training worker failed: ${event.message || 'it could not be loaded'}`);
  }

  #beat() {
    const beat = this.heartbeat;
    if (!beat.alive || this.failed) return;
    if (beat.waiting) {
      if (++beat.beats >= HEARTBEAT_BEATS) this.#restart(`did not answer for ${(HEARTBEAT_BEATS * HEARTBEAT_MS) / 1000} s`);
      return;
    }
    beat.waiting = ++beat.seq;
    beat.beats = 0;
    this.worker.postMessage({ type: MSG.PING, seq: beat.seq });
  }

  #fail(reason) {
    this.failed = true;
    this.onFailed(reason);
  }

  #restart(reason) {
    const now = performance.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    this.worker.terminate();
    if (this.restarts.length >= MAX_RESTARTS_PER_MINUTE) {
      this.#fail(`The training worker ${reason}, and keeps failing: reload the page to try again`);
      return;
    }
    this.restarts.push(now);
    console.warn(`the training worker ${reason}; starting another`);
    this.#start();
    // Requests the dead worker never answered go to the new one, which queues them until it is ready.
    for (const { message } of this.pending.values()) this.worker.postMessage(message);
    this.onRestart(reason);
  }
}
