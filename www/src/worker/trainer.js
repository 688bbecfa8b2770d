// Time slicing: the networks' Sessions train in slices of about 40 ms and evaluate in chunks of
// 250 digits, each its own task, so that the worker reads its inbox (pause, settings, pings)
// between two. All the learning — data order, batches, steps, evaluation, divergence — is the
// core's Session; this file only decides when to call it and posts what it returns. With a
// GradientPool of more than one worker, a step's shards are computed over the workers
// (pool.js): the slice then awaits them, and the trainer is `busy` until it ends.
import { MSG } from '../protocol.js';

// One slice of training before the worker looks at its inbox again.
const SLICE_MS = 40;
// Held-out accuracy is measured this often, in training time.
const EVAL_EVERY_MS = 1500;
const EVAL_CHUNK = 250;

/** A network the worker hosts: its Session and what the worker does with it. */
export class Network {
  constructor(name, session) {
    this.name = name;
    this.session = session;
    this.running = false;
    this.evaluating = false;
    // Bumped whenever the weights or the settings change, so that savers, publishers and the
    // gradient workers' pool can tell what is new.
    this.version = 0;
    this.speed = 0; // examples per second, a moving average over training time only
    this.trainMs = 0;
    this.lastEvalAt = -Infinity;
    this.until = null; // { step, done(error?) }: TRAIN_STEPS in progress
  }

  /** Puts `session` in place of the current one (freed), as a network that has not trained here. */
  replace(session) {
    this.stop(new Error('the network was replaced'));
    this.session.free();
    this.session = session;
    this.changed();
    this.speed = 0;
    this.trainMs = 0;
    this.evaluating = false;
  }

  changed() {
    this.version++;
  }

  /** Stops training; a TRAIN_STEPS in progress fails with `error`. */
  stop(error) {
    this.running = false;
    const until = this.until;
    this.until = null;
    until?.done(error);
  }

  state() {
    const p = this.session.progress();
    return {
      net: this.name,
      running: this.running,
      step: p.step,
      seen: p.seen,
      epoch: p.epoch,
      epochProgress: p.epoch_progress,
      examplesPerSec: this.speed,
      settings: this.session.settings(),
    };
  }
}

/**
 * Runs the networks' work as a sequence of tasks. `networks()` lists the networks, `post` sends to
 * the page, and `afterTask()` runs after each task (checkpoints, weights for the page). `pool`
 * (optional) spreads the steps over workers, given the training digits `trainData()`.
 */
export class Trainer {
  constructor({ networks, post, afterTask, pool = null, trainData = null }) {
    this.networks = networks;
    this.post = post;
    this.afterTask = afterTask;
    this.pool = pool;
    this.trainData = trainData;
    this.scheduled = false;
    // While a slice awaits the gradient workers, the worker holds back the page's messages.
    this.busy = false;
    // A MessageChannel, unlike setTimeout, is not clamped to 4 ms.
    this.tick = new MessageChannel();
    this.tick.port1.onmessage = () => this.#run();
  }

  start(network) {
    network.running = true;
  }

  /** Trains exactly `count` more steps, then pauses; `done(error?)` when it stops. */
  trainSteps(network, count, done) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`the number of steps must be a whole number ≥ 1, got ${count}`);
    network.stop(new Error('superseded by another request to train'));
    network.until = { step: network.session.progress().step + count, done };
    network.running = true;
  }

  /** A fresh pass over the held-out digits (any pass in progress is cancelled). */
  evaluate(network) {
    network.session.start_evaluation();
    network.evaluating = true;
    network.lastEvalAt = network.trainMs;
  }

  schedule() {
    if (this.scheduled || this.busy) return;
    if (!this.networks().some((n) => n.running || n.evaluating)) return;
    this.scheduled = true;
    this.tick.port2.postMessage(null);
  }

  async #run() {
    this.scheduled = false;
    // Evaluations first, so that an accuracy is plotted for the step it was started at.
    const networks = this.networks();
    const network = networks.find((n) => n.evaluating) ?? networks.find((n) => n.running);
    if (network) {
      this.busy = true;
      try {
        if (network.evaluating) this.#evaluateChunk(network);
        else await this.#trainSlice(network);
      } catch (error) {
        network.evaluating = false;
        network.stop(error);
        this.post({ type: MSG.ERROR, op: 'train', message: `Training stopped: ${error.message ?? error}` });
        this.post({ type: MSG.STATE, ...network.state() });
      } finally {
        this.busy = false;
      }
    }
    this.afterTask();
    this.onIdle?.();
    this.schedule();
  }

  #evaluateChunk(network) {
    const report = network.session.evaluate(EVAL_CHUNK);
    if (!report) return;
    network.evaluating = false;
    const { step, accuracy, loss, count, per_class, confusion } = report;
    this.post({ type: MSG.EVAL, net: network.name, step, accuracy, loss, count, per_class, confusion });
  }

  async #trainSlice(network) {
    const parallel = this.pool?.parallel(network) ?? false;
    const start = performance.now();
    const steps = [];
    let diverged = null;
    let reached = false;
    let seen = network.session.progress().seen;
    // A step that fails over the workers ends the slice; the steps before it still count.
    let failure = null;
    while (network.running && performance.now() - start < SLICE_MS) {
      const t0 = performance.now();
      let result;
      try {
        result = parallel ? await this.pool.step(network, this.trainData()) : network.session.step();
      } catch (error) {
        if (!steps.length) throw error;
        failure = error;
        break;
      }
      const dt = performance.now() - t0;
      if (result.diverged !== null) {
        // Plotted too: the page marks the step where training diverged.
        steps.push({ step: result.step, loss: result.loss, diverged: true });
        diverged = result;
        break;
      }
      steps.push({ step: result.step, loss: result.loss });
      network.trainMs += dt;
      if (dt > 0) {
        const rate = ((result.seen - seen) * 1000) / dt;
        network.speed = network.speed ? 0.9 * network.speed + 0.1 * rate : rate;
      }
      seen = result.seen;
      if (network.until && result.step >= network.until.step) {
        reached = true;
        break;
      }
    }
    if (steps.length) network.changed();
    if (parallel) this.pool.settled(network, this.trainData().images);
    if (diverged) network.stop(new Error(`training diverged at step ${diverged.step}: ${diverged.diverged}`));
    const until = reached ? network.until : null;
    if (until) {
      network.until = null;
      network.running = false;
    }
    if (steps.length) this.post({ type: MSG.STEPS, steps, ...network.state() });
    until?.done();
    if (diverged) {
      this.post({ type: MSG.DIVERGED, net: network.name, step: diverged.step, message: diverged.diverged });
      this.post({ type: MSG.STATE, ...network.state() });
    }
    if (failure) throw failure;
    if (network.trainMs - network.lastEvalAt >= EVAL_EVERY_MS) this.evaluate(network);
  }
}
