// The app's gradient worker (www/src/worker/replica.js) on this page's copy of the wasm package.
import { Session } from '../../../pkg/lenet.js';
import { initLenet } from './lenet-init.mjs';
import { serveReplica } from '../../../www/src/worker/replica.js';

serveReplica(initLenet, Session);
