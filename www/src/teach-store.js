// IndexedDB for "teach it your handwriting": the person's digits and the tuned weights, in a
// database of their own (not the training checkpoints'). Every call rejects when storage is
// refused (private windows, quota, a blocked upgrade); callers keep what they hold in memory.
const DB_NAME = 'lenet-teach';
const DB_VERSION = 1;
const DIGITS = 'digits'; // { id, label, pixels: Uint8Array(784), strokes: { xy, ends, width, height }, addedAt }
const WEIGHTS = 'weights'; // key: network name → { net, bytes: Uint8Array, savedAt, report }

const done = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });

export class TeachStore {
  constructor(indexedDB = globalThis.indexedDB) {
    this.indexedDB = indexedDB;
    this.db = null;
  }

  async #open() {
    if (this.db) return this.db;
    if (!this.indexedDB) throw new Error('this browser offers no IndexedDB');
    const request = this.indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(DIGITS)) db.createObjectStore(DIGITS, { keyPath: 'id' });
      if (!db.objectStoreNames.contains(WEIGHTS)) db.createObjectStore(WEIGHTS, { keyPath: 'net' });
    };
    request.onblocked = () => {};
    this.db = await done(request);
    return this.db;
  }

  async #run(store, mode, action) {
    const db = await this.#open();
    const tx = db.transaction(store, mode);
    const result = await done(action(tx.objectStore(store)));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the storage transaction was aborted'));
    });
    return result;
  }

  /** Every stored digit, oldest first. */
  async digits() {
    const all = await this.#run(DIGITS, 'readonly', (s) => s.getAll());
    return all.sort((a, b) => a.addedAt - b.addedAt);
  }

  putDigit(digit) {
    return this.#run(DIGITS, 'readwrite', (s) => s.put(digit));
  }

  deleteDigit(id) {
    return this.#run(DIGITS, 'readwrite', (s) => s.delete(id));
  }

  weights(net) {
    return this.#run(WEIGHTS, 'readonly', (s) => s.get(net));
  }

  putWeights(record) {
    return this.#run(WEIGHTS, 'readwrite', (s) => s.put(record));
  }

  deleteWeights(net) {
    return this.#run(WEIGHTS, 'readwrite', (s) => s.delete(net));
  }
}
