/**
 * A user's regular expression run with a time limit (mq sub --until /regex/): a pattern such as
 * /(a+)+$/ backtracks for hours on 40 characters, and JavaScript cannot interrupt a RegExp running
 * on its own thread. So the regex runs in a worker thread; the caller waits for the answer
 * synchronously (Atomics.wait, ~50 µs a test here), at most `timeoutMs`. When time runs out the
 * worker is terminated (V8 interrupts the regex) and a fresh one takes the next test.
 *
 * The worker is started at once (its start-up overlaps connecting) and unref'd: it never keeps the
 * process alive.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';

/**
 * The worker: waits for a job flag (state[0]), takes the text from its port, writes the answer to
 * state[1] (1 match, 2 no match) and wakes the caller. state[2] is 1 once the regex is compiled.
 */
const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { source, flags, port, state } = workerData;
const re = new RegExp(source, flags);
const s = new Int32Array(state);
Atomics.store(s, 2, 1);
Atomics.notify(s, 2);
for (;;) {
  Atomics.wait(s, 0, 0);
  const job = receiveMessageOnPort(port);
  re.lastIndex = 0;
  const hit = job !== undefined && re.test(job.message);
  Atomics.store(s, 0, 0);
  Atomics.store(s, 1, hit ? 1 : 2);
  Atomics.notify(s, 1);
}`;

/** How long the first test may wait for the worker to start (a busy machine takes a while). */
const START_MS = 10_000;

interface Runner {
  worker: Worker;
  port: MessagePort;
  state: Int32Array;
}

export class BoundedRegex {
  private runner: Runner;

  /** `source` and `flags` must compile (check with new RegExp first: errors belong to the caller). */
  constructor(
    private readonly source: string,
    private readonly flags: string,
  ) {
    this.runner = this.start();
  }

  private start(): Runner {
    const { port1, port2 } = new MessageChannel();
    const shared = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { source: this.source, flags: this.flags, port: port2, state: shared },
      transferList: [port2],
    });
    worker.on('error', () => {}); // a dead worker shows as a test that runs out of time
    worker.unref();
    port1.unref();
    return { worker, port: port1, state: new Int32Array(shared) };
  }

  /** Whether the regex matches `text`; undefined when it did not answer within `timeoutMs`. */
  test(text: string, timeoutMs: number): boolean | undefined {
    const r = this.runner;
    if (Atomics.load(r.state, 2) === 0) Atomics.wait(r.state, 2, 0, START_MS);
    r.port.postMessage(text);
    Atomics.store(r.state, 1, 0);
    Atomics.store(r.state, 0, 1);
    Atomics.notify(r.state, 0);
    Atomics.wait(r.state, 1, 0, timeoutMs);
    const answer = Atomics.load(r.state, 1);
    if (answer !== 0) return answer === 1;
    void r.worker.terminate();
    r.port.close();
    this.runner = this.start();
    return undefined;
  }

  /** Stops the worker (the process may also just exit). */
  close(): void {
    void this.runner.worker.terminate();
    this.runner.port.close();
  }
}
