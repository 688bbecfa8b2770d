// The app's gradient worker (www/src/worker/replica.js) on this page's copy of the wasm package.
import init, { Session } from '../../../pkg/lenet.js';
import { serveReplica } from '../../../www/src/worker/replica.js';

serveReplica(init, Session);
