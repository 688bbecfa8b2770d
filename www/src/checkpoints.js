// The checkpoint of the network in training, kept in IndexedDB so that a reload or a crashed
// worker does not lose the run. One record under one key: a newer checkpoint replaces the older.
//
// Record: { weights: Uint8Array (safetensors), step, seen, epoch, cursor, trainCount, seed,
//           settings: { learningRate, batchSize, momentum, weightDecay }, savedAt (ms since the
//           epoch), dataSource }
const DB_NAME = 'lenet';
const DB_VERSION = 1;
const STORE = 'checkpoints';
const KEY = 'training';

let opening = null;

function open() {
  opening ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => {
      const db = request.result;
      // Another tab with a newer version of the page wants to upgrade: let it, and reopen later.
      db.onversionchange = () => {
        db.close();
        opening = null;
      };
      resolve(db);
    };
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error('the checkpoint database is held open by another tab'));
  });
  // A failure (storage blocked, say) is not cached: the next call tries again.
  opening.catch(() => {
    opening = null;
  });
  return opening;
}

async function transact(mode, operate) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = operate(tx.objectStore(STORE));
    // Resolved on commit, not on the request's success: only then is the record on disk.
    tx.oncomplete = () => resolve(request.result);
    tx.onabort = tx.onerror = () => reject(tx.error ?? new Error('the checkpoint transaction was aborted'));
  });
}

/** The checkpoint, or undefined when there is none. */
export const readCheckpoint = () => transact('readonly', (store) => store.get(KEY));
export const writeCheckpoint = (record) => transact('readwrite', (store) => store.put(record, KEY));
export const deleteCheckpoint = () => transact('readwrite', (store) => store.delete(KEY));

/** What the page shows of a checkpoint, without its weights. */
export function describeCheckpoint(record) {
  if (!record) return null;
  const { step, seen, epoch, savedAt, dataSource, settings } = record;
  return { step, seen, epoch, savedAt, dataSource, settings };
}
