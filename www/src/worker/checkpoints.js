// Checkpoints of the networks in IndexedDB, so that a reload or a crashed worker does not lose a
// run. One record per network, under its name: a newer checkpoint replaces the older.
//
// Record: { checkpoint: Uint8Array (Session.checkpoint(): weights, optimizer state, settings,
//           step, epoch, position in the data), step, seen, epoch, settings, savedAt (ms since
//           the epoch), dataSource }. Everything but `checkpoint` is only for the offer to resume:
//           `dataSource` names the digits it was trained on in the offer's note; whether they are
//           the ones loaded now is the core's to say (describeCheckpoint).
const DB_NAME = 'lenet';
const DB_VERSION = 1;
const STORE = 'checkpoints';

/** The object store, opened on first use; a failed open is tried again next time. */
export class CheckpointStore {
  #opening = null;

  #open() {
    this.#opening ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => {
        const db = request.result;
        // Another tab with a newer version of the page wants to upgrade: let it, and reopen later.
        db.onclose = () => {
          this.#opening = null;
        };
        db.onversionchange = () => {
          db.close();
          this.#opening = null;
        };
        resolve(db);
      };
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error('the checkpoint database is held open by another tab'));
    });
    this.#opening.catch(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  /** Closes the connection under the store, as Safari does to a tab in the background (for the tests). */
  async closeConnection() {
    (await this.#open()).close();
  }

  // A connection the browser closed (Safari closes those of backgrounded tabs; storage pressure or
  // a cleared site can too) fails with InvalidStateError, or aborts its transaction: it is opened
  // again and the operation retried once before the failure counts.
  async #transact(mode, operate) {
    try {
      return await this.#transactOnce(mode, operate);
    } catch (error) {
      this.#opening = null;
      return this.#transactOnce(mode, operate);
    }
  }

  async #transactOnce(mode, operate) {
    const db = await this.#open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = operate(tx.objectStore(STORE));
      // Resolved on commit, not on the request's success: only then is the record on disk.
      tx.oncomplete = () => resolve(request.result);
      tx.onabort = tx.onerror = () => reject(tx.error ?? new Error('the checkpoint transaction was aborted'));
    });
  }

  /** The checkpoint of network `net`, or undefined when there is none. */
  read(net) {
    return this.#transact('readonly', (store) => store.get(net));
  }

  write(net, record) {
    return this.#transact('readwrite', (store) => store.put(record, net));
  }

  delete(net) {
    return this.#transact('readwrite', (store) => store.delete(net));
  }
}

/** Whether `record` holds a checkpoint's bytes: a record written by an older version of the page
 * does not, and cannot be restored. */
export const holdsCheckpoint = (record) => record?.checkpoint instanceof Uint8Array;

/**
 * The offer to resume from `record`, as the page shows it (without the bytes); null for no record
 * or one of an older page. `fits`: whether `session`, which holds the training digits loaded now,
 * would restore it — the core's answer (Session.checkpoint_fits, by the digits' count and
 * fingerprint), the same check its restore makes. `unreadable`: why it cannot be restored on any
 * digits (bytes this version does not read as a checkpoint), else null.
 */
export function describeCheckpoint(record, session) {
  if (!holdsCheckpoint(record)) return null;
  const { step, seen, epoch, savedAt, dataSource, settings } = record;
  let fits = false;
  let unreadable = null;
  try {
    fits = session.checkpoint_fits(record.checkpoint);
  } catch (error) {
    unreadable = error instanceof Error ? error.message : String(error);
  }
  return { step, seen, epoch, savedAt, dataSource, settings, fits, unreadable };
}

// While a network trains, a checkpoint at most this often; when it stops, one at once.
const SAVE_EVERY_MS = 10_000;

/**
 * When to write a network's checkpoint: a network that has learnt something and changed since its
 * last checkpoint is saved every SAVE_EVERY_MS while it trains, and at once when it stops (paused,
 * diverged, failed) or when asked (the page is being hidden). One store operation at a time per
 * network, in the order asked, so that a deletion (`discard`) is never overtaken by a write it
 * was meant to undo.
 *
 * `store` is a CheckpointStore, `onSaved(net, record)` and `onUnavailable(error)` report back;
 * after one refusal by the browser's storage no more writes are tried.
 */
export class Checkpointer {
  constructor({ store, dataSource, onSaved, onUnavailable }) {
    this.store = store;
    this.dataSource = dataSource;
    this.onSaved = onSaved;
    this.onUnavailable = onUnavailable;
    this.off = false;
    this.books = new Map(); // network name → { savedVersion, lastSaveAt, busy, again, run, holds }
  }

  #books(network) {
    let books = this.books.get(network.name);
    if (!books) {
      // holds: the stored record is (or is being written as) this run's. Until then it is a run
      // of an earlier page or worker, on offer, that nothing done here may throw away unasked.
      books = { savedVersion: 0, lastSaveAt: performance.now(), busy: null, again: false, run: 0, holds: false };
      this.books.set(network.name, books);
    }
    return books;
  }

  /** `network`'s current state is the saved one (it was just restored from it). */
  markSaved(network) {
    const books = this.#books(network);
    books.savedVersion = network.version;
    books.lastSaveAt = performance.now();
    books.holds = true;
  }

  /** Whether the stored checkpoint is of `network`'s run (saved or resumed here), not one on offer. */
  holdsRun(network) {
    return this.#books(network).holds;
  }

  /** Training (re)starts: the periodic save counts from now. */
  started(network) {
    this.#books(network).lastSaveAt = performance.now();
  }

  unavailable(error) {
    this.off = true;
    this.onUnavailable(error);
  }

  maybeSave(network, now = false) {
    const books = this.#books(network);
    if (this.off || network.version === books.savedVersion) return;
    const progress = network.session.progress();
    if (progress.step === 0) return;
    if (network.running && !now && performance.now() - books.lastSaveAt < SAVE_EVERY_MS) return;
    if (books.busy) {
      books.again = true;
      return;
    }
    const version = network.version;
    const run = books.run;
    const record = {
      // Copying out the state takes about a millisecond; the write itself runs off this thread,
      // so training goes on while it completes.
      checkpoint: network.session.checkpoint(),
      step: progress.step,
      seen: progress.seen,
      epoch: progress.epoch,
      settings: network.session.settings(),
      savedAt: Date.now(),
      dataSource: this.dataSource,
    };
    books.lastSaveAt = performance.now();
    const held = books.holds;
    books.holds = true;
    this.#enqueue(network, books, () => this.store.write(network.name, record)).then(
      () => {
        // The run was discarded while this write was under way: the deletion queued after it
        // removes the record, and the page is not told of a checkpoint that is gone.
        if (books.run !== run) return;
        books.savedVersion = version;
        this.onSaved(network.name, record);
      },
      (error) => {
        // A failed write leaves the stored record as it was: one on offer is still not this run's.
        if (books.run === run) books.holds = held;
        this.unavailable(error);
      },
    );
  }

  /** Saves `network` now if it has unsaved progress; resolves once none of it is left to write
   * (or storage refused, which `unavailable` reports); throws only if the save cannot start. */
  async saveNow(network) {
    const books = this.#books(network);
    this.maybeSave(network, true);
    // A write in flight defers this one (`again`), which its end starts as the next `busy`.
    while (books.busy) await books.busy;
  }

  /**
   * Deletes `network`'s checkpoint: its run was thrown away (reset to a new network, or the offer
   * discarded; Reset asks `holdsRun` first). Waits for a write in flight, which would otherwise land after the deletion and
   * bring the old run back; that write is not reported as saved. Resolves once the record is gone.
   */
  discard(network) {
    const books = this.#books(network);
    books.run++;
    books.holds = false;
    return this.#enqueue(network, books, () => this.store.delete(network.name));
  }

  // Runs `operate` (a store operation) after the network's operation in progress, if any; a save
  // asked for meanwhile is made once the last one has ended.
  #enqueue(network, books, operate) {
    const done = (books.busy ?? Promise.resolve()).then(operate);
    const ended = done
      .then(
        () => {},
        () => {},
      )
      .then(() => {
        if (books.busy !== ended) return;
        books.busy = null;
        if (books.again) {
          books.again = false;
          this.maybeSave(network);
        }
      });
    books.busy = ended;
    return done;
  }
}
