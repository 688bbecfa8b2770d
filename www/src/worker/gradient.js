// A gradient worker, started by the training worker's pool (pool.js): replica.js says what it
// does.
import init, { Session } from 'lenet-wasm';
import { wasmUrl } from '../wasm-module.js';
import { serveReplica } from './replica.js';

serveReplica(() => init({ module_or_path: wasmUrl }), Session);
