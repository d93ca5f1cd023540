/**
 * The entry of a bench worker thread: one Share, driven by the engine's messages. Started by
 * src/bench/engine.ts with `new Worker(url, { workerData: ShareInit })`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type FromShare, Share, type ShareInit, type ToShare } from './share.js';

const port = parentPort;
if (port === null) throw new Error('src/bench/worker.ts runs as a worker thread only');
const post = (m: FromShare) => {
  port.postMessage(m);
  // After its figures the share has closed every connection: closing the port empties the
  // thread's event loop and it ends on its own. (worker.terminate() of a thread still busy
  // aborted Node 20 itself now and then: "Assertion failed: (data.first) != nullptr".)
  if (m.t === 'final') port.close();
};
const share = new Share(workerData as ShareInit, post);
port.on('message', (m: ToShare) => share.handle(m));
process.on('uncaughtException', (err) => {
  post({ t: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
});
