// The "Workers" choice of the training panel: how many workers a step's shards are computed on
// (the training worker and its gradient workers, worker/pool.js), and how the shards travel
// between them: through a SharedArrayBuffer when the page is cross-origin isolated, else in
// messages. The weights do not depend on the choice.
import { MSG } from './protocol.js';

const STORAGE_KEY = 'lenet-workers';

/** The count chosen on an earlier visit, or null. */
function remembered() {
  try {
    const count = Number(localStorage.getItem(STORAGE_KEY));
    return Number.isInteger(count) && count >= 1 ? count : null;
  } catch {
    return null;
  }
}

const TRANSPORT = { shared: 'shards shared in memory (SharedArrayBuffer)', message: 'shards sent in messages' };

/**
 * Binds `select` and `status`; returns `show(workers)` and `ready(workers)` for the worker's
 * WORKERS and READY reports (`{ size, max, transport, replaced, steps, failure }`), and `choose(count)` and
 * `report()` for the tests' hooks.
 */
export function bindWorkersChoice({ client, select, status }) {
  // The person's choice, kept across visits (a person who chose one worker to keep the machine
  // cool expects it after a reload) and sent again to a restarted training worker.
  let chosen = remembered();
  let shown = null;

  function show(workers) {
    if (!workers) return;
    shown = workers;
    if (select.options.length !== workers.max) {
      select.replaceChildren(...Array.from({ length: workers.max }, (_, i) => new Option(String(i + 1))));
    }
    select.value = String(workers.size);
    const replaced = workers.replaced ? `; ${workers.replaced} replaced after a failure` : '';
    status.textContent =
      workers.size === 1
        ? `training in one worker${workers.failure ? ` (the other workers kept failing: ${workers.failure})` : ''}`
        : `${workers.size} workers, ${TRANSPORT[workers.transport]}${replaced}`;
    status.dataset.workers = String(workers.size);
    status.dataset.transport = workers.transport;
    status.dataset.replaced = String(workers.replaced);
  }

  async function apply(count) {
    const reply = await client.request({ type: MSG.SET_WORKERS, count });
    show(reply);
    return shown;
  }

  function choose(count) {
    chosen = count;
    try {
      localStorage.setItem(STORAGE_KEY, String(count));
    } catch {
      // Storage refused (private browsing, blocked): the choice lasts this visit.
    }
    return apply(count);
  }

  select.addEventListener('change', () => {
    choose(Number(select.value)).catch((error) => {
      status.textContent = `The workers could not be changed: ${error.message}`;
      if (shown) select.value = String(shown.size);
    });
  });
  /** READY's report: a training worker starts from the default count, so the person's choice
   * (of this visit or, after a reload, of an earlier one) is applied, within this machine's max. */
  function ready(workers) {
    const wanted = chosen !== null && workers ? Math.min(chosen, workers.max) : null;
    if (wanted !== null && workers.size !== wanted) apply(wanted).catch(() => show(workers));
    else show(workers);
  }

  /** The worker's report now (the tests' hook). */
  async function report() {
    const reply = await client.request({ type: MSG.SET_WORKERS });
    show(reply);
    return reply;
  }

  return { show, ready, choose, report };
}
