// The yardstick of `npm run bench:bench`: the least a load generator can do for an e2e QoS 0 run.
// Publishers write one pre-encoded batch of PUBLISH packets over and over (nothing patched: no
// sequence, no time), the subscriber only counts packets, and a window (the same shape as mq
// bench's: at most `window` messages per publisher not yet received) keeps the broker's queues
// short. One thread, plain TCP. CONNECT/SUBSCRIBE/PUBLISH bytes come from mq's encoder once, at
// set-up (dist/, `npm run build` first).
import net from 'node:net';
import { encode } from '../../dist/protocol/index.js';

const READ_BUFFER = Buffer.allocUnsafe(1 << 20);

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
 * Counts packets (`packets`), PUBLISH packets (`n`) and PUBLISH packets per publisher (`byPub`) in
 * a byte stream split anywhere: the minimal framing loop. Publisher i publishes to `bench/i` (one
 * digit), so the publisher is the body's byte 8 (after the 2-byte topic length and `bench/`).
 */
const PUB_AT = 8;

function counter(pubs) {
  let need = 0; // body bytes still to skip
  let body = 0; // body length of the current packet
  let inLength = false; // reading the remaining-length varint
  let type = 0;
  let rl = 0;
  let mult = 1;
  const c = { n: 0, packets: 0, byPub: new Array(pubs).fill(0), push };
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
      if (type === 3) c.n++;
      need = rl;
      body = rl;
    }
  }
  return c;
}

/**
 * Runs `pubs` publishers and `subs` subscribers against 127.0.0.1:port for warmupMs then
 * durationMs; resolves with { receivedPerSec, sentPerSec, cpuSec, received } of the measured window.
 */
export async function runRawReference({
  port,
  pubs = 8,
  subs = 1,
  size = 64,
  version = 5,
  window = 2000,
  batch = 100,
  warmupMs = 1000,
  durationMs = 5000,
}) {
  const counters = [];
  const subSockets = [];
  const publishers = [];
  let sending = true;
  let scheduled = false;
  let sentTotal = 0;
  for (let j = 0; j < subs; j++) {
    const c = counter(pubs);
    const s = await connect(port, `raw-ref-s${j}`, version, (n, buf) => {
      c.push(n, buf);
      schedulePump();
    });
    counters.push(c);
    subSockets.push(s);
    s.write(
      encode(
        { type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'bench/+', qos: 0 }] },
        version,
      ),
    );
    // The SUBACK is the first packet after the CONNACK (set-up, so polling is fine here).
    const deadline = Date.now() + 5000;
    while (c.packets === 0) {
      if (Date.now() > deadline) throw new Error('raw reference: no SUBACK within 5 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  if (pubs > 10) throw new Error('raw reference: at most 10 publishers (one-digit topics)');
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
    return counters.reduce((n, c) => n + c.n, 0) / subs;
  }
  function schedulePump() {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  }
  function pump() {
    scheduled = false;
    if (!sending) return;
    for (let i = 0; i < publishers.length; i++) {
      const p = publishers[i];
      // The window per publisher, as mq bench's: messages not yet seen by the slowest subscriber.
      let floor = Number.POSITIVE_INFINITY;
      for (const c of counters) floor = Math.min(floor, c.byPub[i]);
      while (!p.blocked && p.sent - floor <= window - batch) {
        p.sent += batch;
        sentTotal += batch;
        if (!p.socket.write(p.bytes)) p.blocked = true;
      }
    }
  }
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
  for (const s of [...publishers.map((p) => p.socket), ...subSockets]) s.destroy();
  return {
    receivedPerSec: (got * subs) / sec,
    sentPerSec: sent / sec,
    received: got * subs,
    cpuSec: (cpu.user + cpu.system) / 1e6,
    userSec: cpu.user / 1e6,
    systemSec: cpu.system / 1e6,
  };
}
