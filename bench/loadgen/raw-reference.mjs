// The yardstick of `npm run bench:bench`: the least a load generator can do for an e2e QoS 0 run.
// Publishers write one pre-encoded batch of PUBLISH packets over and over (nothing patched: no
// sequence, no time), the subscriber only counts packets, and a window (the same shape as mq
// bench's: at most `window` messages per publisher not yet received) keeps the broker's queues
// short. Plain TCP. CONNECT/SUBSCRIBE/PUBLISH bytes come from mq's encoder once, at set-up (dist/,
// `npm run build` first).
//
// Threads (`layout`), because where the subscriber reads decides how Mosquitto's bytes arrive:
//   'split'   (default) the subscriber alone in a worker thread, the publishers in this one: the
//             placement mq bench's engine gives `--pubs 8 --subs 1` on two cores (settings.ts
//             assignWorkers), so both see the same TCP behaviour and only their work differs.
//             Publishers learn the subscriber's counts from shared memory, looking every 5 ms
//             (the engine's WINDOW_POLL_MS) and on 'drain'.
//   'single'  everything in this thread; the subscriber is read between the publishers' writes.
import net from 'node:net';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { encode } from '../../dist/protocol/index.js';

const READ_BUFFER = Buffer.allocUnsafe(1 << 20);
/** As mq bench's engine (share.ts WINDOW_POLL_MS, publisher.ts BATCHES_PER_PUMP). */
const POLL_MS = 5;
const BATCHES_PER_PUMP = 16;

/** Opens a socket, sends CONNECT, resolves on the CONNACK bytes (anything back, for this purpose). */
function connect(port, clientId, version, onData) {
  return new Promise((resolve, reject) => {
    let connected = false;
    const socket = net.connect({
      port,
      host: '127.0.0.1',
      noDelay: true,
      // The engine's socket buffer (256 KiB, src/client/transport.ts), so both pipeline alike.
      highWaterMark: 256 * 1024,
      onread: {
        buffer: READ_BUFFER,
        callback: (n, buf) => {
          if (!connected) {
            connected = true;
            resolve(socket);
            return true;
          }
          onData?.(n, buf);
          return true;
        },
      },
    });
    socket.on('connect', () =>
      socket.write(
        encode({ type: 'CONNECT', protocolVersion: version, clean: true, keepalive: 60, clientId }, version),
      ),
    );
    socket.on('error', reject);
  });
}

/**
 * Counts packets (`packets`) and PUBLISH packets per publisher (`byPub`, an Int32Array that may
 * live in shared memory) in a byte stream split anywhere: the minimal framing loop. Publisher i
 * publishes to `bench/i` (one digit), so the publisher is the body's byte 8 (after the 2-byte
 * topic length and `bench/`).
 */
const PUB_AT = 8;

function counter(byPub) {
  let need = 0; // body bytes still to skip
  let body = 0; // body length of the current packet
  let inLength = false; // reading the remaining-length varint
  let type = 0;
  let rl = 0;
  let mult = 1;
  const c = { packets: 0, byPub, push };
  function push(len, buf) {
    let i = 0;
    while (i < len) {
      if (need > 0) {
        const skip = Math.min(need, len - i);
        const at = body - need; // body offset of buf[i]
        if (type === 3 && at <= PUB_AT && PUB_AT < at + skip) c.byPub[buf[i + PUB_AT - at] - 48]++;
        need -= skip;
        i += skip;
        continue;
      }
      const b = buf[i++];
      if (!inLength) {
        type = b >> 4;
        inLength = true;
        rl = 0;
        mult = 1;
        continue;
      }
      rl += (b & 0x7f) * mult;
      mult *= 128;
      if (b & 0x80) continue;
      inLength = false;
      c.packets++;
      need = rl;
      body = rl;
    }
  }
  return c;
}

/** Connects subscriber `name`, subscribes to bench/+ and resolves once the SUBACK is read. */
async function subscriber({ port, version, name, byPub, onData }) {
  const c = counter(byPub);
  const s = await connect(port, name, version, (n, buf) => {
    c.push(n, buf);
    onData?.();
  });
  s.write(
    encode({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'bench/+', qos: 0 }] }, version),
  );
  // The SUBACK is the first packet after the CONNACK (set-up, so polling is fine here).
  const deadline = Date.now() + 5000;
  while (c.packets === 0) {
    if (Date.now() > deadline) throw new Error('raw reference: no SUBACK within 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
  return s;
}

/** 'split' layout: a worker thread holding one subscriber that counts into shared memory. */
function startSubscriberThread(o, counts) {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { port: o.port, version: o.version, name: 'raw-ref-s0', counts },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', () => resolve(worker));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`raw reference subscriber thread exited (${code})`)));
  });
}

if (!isMainThread && workerData?.name === 'raw-ref-s0') {
  const { port, version, name, counts } = workerData;
  const s = await subscriber({ port, version, name, byPub: new Int32Array(counts) });
  parentPort.on('message', () => {
    s.destroy();
    parentPort.close();
  });
  parentPort.postMessage('subscribed');
}

/**
 * Runs `pubs` publishers and one subscriber against 127.0.0.1:port for warmupMs then durationMs;
 * resolves with { receivedPerSec, sentPerSec, cpuSec, received } of the measured window (CPU:
 * this process, every thread).
 */
export async function runRawReference({
  port,
  pubs = 8,
  size = 64,
  version = 5,
  window = 2000,
  batch = 100,
  warmupMs = 1000,
  durationMs = 5000,
  layout = 'split',
}) {
  if (pubs > 10) throw new Error('raw reference: at most 10 publishers (one-digit topics)');
  if (layout !== 'split' && layout !== 'single') throw new Error(`raw reference: unknown layout ${layout}`);
  const counts = new SharedArrayBuffer(4 * pubs);
  const byPub = new Int32Array(counts);
  const publishers = [];
  let sending = true;
  let scheduled = false;
  let sentTotal = 0;
  let subSocket;
  let subThread;
  if (layout === 'split') subThread = await startSubscriberThread({ port, version }, counts);
  else subSocket = await subscriber({ port, version, name: 'raw-ref-s0', byPub, onData: schedulePump });
  for (let i = 0; i < pubs; i++) {
    const s = await connect(port, `raw-ref-p${i}`, version);
    const one = encode(
      {
        type: 'PUBLISH',
        dup: false,
        qos: 0,
        retain: false,
        topic: `bench/${i}`,
        payload: Buffer.alloc(size, 0x2e),
      },
      version,
    );
    const bytes = Buffer.concat(new Array(batch).fill(one));
    const p = { socket: s, bytes, blocked: false, sent: 0 };
    s.on('drain', () => {
      p.blocked = false;
      schedulePump();
    });
    publishers.push(p);
  }
  function received() {
    let n = 0;
    for (let i = 0; i < pubs; i++) n += Atomics.load(byPub, i);
    return n;
  }
  function schedulePump() {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  }
  function pump() {
    scheduled = false;
    if (!sending) return;
    let again = false;
    for (let i = 0; i < publishers.length; i++) {
      const p = publishers[i];
      // The window per publisher, as mq bench's: messages not yet seen by the subscriber.
      const floor = Atomics.load(byPub, i);
      let b = 0;
      while (!p.blocked && p.sent - floor <= window - batch) {
        if (b++ === BATCHES_PER_PUMP) {
          // Yield to the event loop, as the engine does, and carry on in the next turn.
          again = true;
          break;
        }
        p.sent += batch;
        sentTotal += batch;
        if (!p.socket.write(p.bytes)) p.blocked = true;
      }
    }
    if (again) schedulePump();
  }
  const poll = layout === 'split' ? setInterval(pump, POLL_MS) : undefined;
  pump();
  await new Promise((r) => setTimeout(r, warmupMs));
  const r0 = received();
  const s0 = sentTotal;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  const cpu = process.cpuUsage(cpu0);
  const sec = (performance.now() - t0) / 1000;
  const got = received() - r0;
  const sent = sentTotal - s0;
  sending = false;
  clearInterval(poll);
  for (const p of publishers) p.socket.destroy();
  subSocket?.destroy();
  if (subThread !== undefined) {
    const gone = new Promise((r) => subThread.once('exit', r));
    subThread.postMessage('stop');
    await gone;
  }
  return {
    receivedPerSec: got / sec,
    sentPerSec: sent / sec,
    received: got,
    cpuSec: (cpu.user + cpu.system) / 1e6,
    userSec: cpu.user / 1e6,
    systemSec: cpu.system / 1e6,
  };
}
