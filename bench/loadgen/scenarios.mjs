// The broker benchmark scenarios. Each takes (broker, options) where broker = { port, pid } and
// returns a result row; the CPU and RSS figures are read from /proc for the broker's pid.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { cpuSeconds, rssKiB } from './brokers.mjs';
import { RawClient, readNow } from './client.mjs';
import { connect, Framer, MAGIC, PUBACK, PUBCOMP, PUBREC, PUBREL, publishTemplate } from './mqtt-bytes.mjs';

const PAYLOAD = 64;

function histogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Resolves after ms (a benchmark's measurement window, not synchronisation). */
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms until true or timeoutMs; resolves with whether it became true. */
async function until(cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await delay(10);
  }
  return true;
}

/**
 * Runs the warm-up, then the measurement window: `setMeasuring(true/false)` around it, broker
 * and generator CPU sampled at both ends.
 */
async function window(broker, opts, setMeasuring) {
  await delay(opts.warmupMs);
  const cpu0 = cpuSeconds(broker.pid);
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  setMeasuring(true);
  await delay(opts.durationMs);
  setMeasuring(false);
  const wallSec = (performance.now() - t0) / 1000;
  const brokerCpu = cpuSeconds(broker.pid) - cpu0;
  const g = process.cpuUsage(gen0);
  return { wallSec, brokerCpu, genCpu: (g.user + g.system) / 1e6 };
}

/** Per-stream sequence bookkeeping: duplicates, reordering, gaps. */
class SeqTracker {
  constructor() {
    this.seen = new Uint8Array(1 << 16);
    this.unique = 0;
    this.dups = 0;
    this.reordered = 0;
    this.next = 0;
  }
  add(seq) {
    if (seq >= this.seen.length) {
      let n = this.seen.length;
      while (n <= seq) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[seq] === 1) {
      this.dups++;
      return false;
    }
    this.seen[seq] = 1;
    this.unique++;
    if (seq !== this.next) this.reordered++;
    this.next = seq + 1;
    return true;
  }
}

function rowFrom(name, broker, win, delivered, hist, extra = {}) {
  return {
    scenario: name,
    broker: broker.name,
    msgsPerSec: delivered / win.wallSec,
    msgsPerCpuSec: win.brokerCpu > 0 ? delivered / win.brokerCpu : null,
    brokerCpuPct: (100 * win.brokerCpu) / win.wallSec,
    genCpuPct: (100 * win.genCpu) / win.wallSec,
    p50Ms: hist && hist.totalCount > 0 ? hist.getValueAtPercentile(50) / 1000 : null,
    p99Ms: hist && hist.totalCount > 0 ? hist.getValueAtPercentile(99) / 1000 : null,
    p90Ms: hist && hist.totalCount > 0 ? hist.getValueAtPercentile(90) / 1000 : null,
    p999Ms: hist && hist.totalCount > 0 ? hist.getValueAtPercentile(99.9) / 1000 : null,
    maxMs: hist && hist.totalCount > 0 ? hist.maxValue / 1000 : null,
    rssKiB: rssKiB(broker.pid),
    ...extra,
  };
}

/** Reads the payload header of a PUBLISH body: [stream, seq, sentAt] or null if foreign. */
function payloadOf(b0, data, s) {
  let p = s + 2 + ((data[s] << 8) | data[s + 1]);
  if (b0 & 0x06) p += 2;
  if (data.readUInt16LE(p) !== MAGIC) return null;
  return [data.readUInt16LE(p + 2), data.readUInt32LE(p + 4), data.readDoubleLE(p + 8)];
}

async function closeAll(clients) {
  await Promise.all(clients.map((c) => c.end()));
}

/**
 * QoS 0 flow with a window: each publisher keeps at most `win` messages not yet seen by every
 * subscriber, writing `batch` pre-encoded PUBLISHes per write. Measures sustained throughput
 * without unbounded queueing in the broker.
 */
async function qos0Flow(name, broker, opts, { publishers, subscribers, filter, topicOf, win, batch }) {
  const subs = [];
  for (let i = 0; i < subscribers; i++) {
    const c = new RawClient(broker.port, `bench-sub-${i}`);
    await c.connect();
    await c.subscribe(filter, 0);
    subs.push(c);
  }
  const pubs = [];
  for (let i = 0; i < publishers; i++) {
    const c = new RawClient(broker.port, `bench-pub-${i}`);
    await c.connect();
    pubs.push(c);
  }
  const templates = pubs.map((_, i) => publishTemplate(topicOf(i), 0, PAYLOAD, i));
  const sent = new Array(publishers).fill(0);
  // recv[sub][stream]; trackers per (sub, stream).
  const recv = subs.map(() => new Array(publishers).fill(0));
  const trackers = subs.map(() => pubs.map(() => new SeqTracker()));
  const hist = histogram();
  let measuring = false;
  let delivered = 0;
  let sending = true;
  let foreign = 0;

  const minRecv = (stream) => {
    let m = Number.POSITIVE_INFINITY;
    for (const r of recv) if (r[stream] < m) m = r[stream];
    return m;
  };
  const sendBatch = (i) => {
    const t = templates[i];
    const buf = Buffer.allocUnsafe(t.length * batch);
    const now = performance.now();
    for (let k = 0; k < batch; k++) {
      const off = k * t.length;
      t.bytes.copy(buf, off);
      buf.writeUInt32LE(sent[i]++, off + t.payloadOffset + 4);
      buf.writeDoubleLE(now, off + t.payloadOffset + 8);
    }
    pubs[i].write(buf);
  };
  const pump = () => {
    if (!sending) return;
    for (let i = 0; i < publishers; i++) {
      const p = pubs[i];
      if (p.closed) continue;
      const floor = minRecv(i);
      while (!p.blocked && sent[i] - floor <= win - batch) sendBatch(i);
    }
  };
  subs.forEach((c, si) => {
    c.onPublish = (b0, data, s) => {
      const h = payloadOf(b0, data, s);
      if (h === null) {
        foreign++;
        return;
      }
      const [stream, seq, at] = h;
      recv[si][stream]++;
      trackers[si][stream].add(seq);
      if (measuring) {
        delivered++;
        hist.recordValue(Math.max(1, Math.round((readNow - at) * 1000)));
      }
    };
    c.afterRead = pump;
  });
  for (const p of pubs) p.onDrain = pump;
  pump();
  const measured = await window(broker, opts, (m) => {
    measuring = m;
  });
  sending = false;
  const totalSent = sent.reduce((a, b) => a + b, 0);
  const expected = totalSent * subscribers;
  const received = () => recv.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0);
  await until(() => received() >= expected, 5000);
  let dups = 0;
  let reordered = 0;
  for (const row of trackers)
    for (const t of row) {
      dups += t.dups;
      reordered += t.reordered;
    }
  const got = received();
  const row = rowFrom(name, broker, measured, delivered, hist, {
    accounting: {
      sent: totalSent,
      expected,
      received: got,
      lost: expected - (got - dups),
      dups,
      reordered,
      foreign,
    },
  });
  await closeAll([...pubs, ...subs]);
  return row;
}

export function fanIn(broker, opts) {
  return qos0Flow('fan-in 8->1 QoS0', broker, opts, {
    publishers: 8,
    subscribers: 1,
    filter: 'bench/in/+',
    topicOf: (i) => `bench/in/${i}`,
    win: 2000,
    batch: 100,
  });
}

export function fanOut(broker, opts) {
  return qos0Flow('fan-out 1->16 QoS0', broker, opts, {
    publishers: 1,
    subscribers: 16,
    filter: 'bench/out',
    topicOf: () => 'bench/out',
    win: 1000,
    batch: 50,
  });
}

/** QoS 1 or 2, one publisher with `inflight` unacknowledged messages, one subscriber. */
async function qosFlow(qos, broker, opts, inflight = 64) {
  const name = `QoS${qos} 1->1 (${inflight} in flight)`;
  const sub = new RawClient(broker.port, `bench-q${qos}-sub`);
  await sub.connect();
  await sub.subscribe(`bench/q${qos}`, qos);
  const pub = new RawClient(broker.port, `bench-q${qos}-pub`);
  await pub.connect();
  const t = publishTemplate(`bench/q${qos}`, qos, PAYLOAD, 0);
  const free = [];
  for (let id = inflight; id >= 1; id--) free.push(id);
  const inFlight = new Map(); // packetId -> seq
  let seq = 0;
  let completed = 0; // PUBACK (QoS1) / PUBCOMP (QoS2) received
  let sending = true;
  let measuring = false;
  let delivered = 0;
  let unknownAcks = 0;
  let subProtocolErrors = 0;
  const tracker = new SeqTracker();
  const hist = histogram();

  const pump = () => {
    if (!sending || pub.blocked || pub.closed || free.length === 0) return;
    const n = free.length;
    const buf = Buffer.allocUnsafe(t.length * n);
    const now = performance.now();
    for (let k = 0; k < n; k++) {
      const id = free.pop();
      const off = k * t.length;
      t.bytes.copy(buf, off);
      buf.writeUInt16BE(id, off + t.pidOffset);
      buf.writeUInt32LE(seq, off + t.payloadOffset + 4);
      buf.writeDoubleLE(now, off + t.payloadOffset + 8);
      inFlight.set(id, seq++);
    }
    pub.write(buf);
  };
  pub.onAck = (type, id) => {
    if (qos === 2 && type === PUBREC) {
      if (!inFlight.has(id)) unknownAcks++;
      pub.ack(PUBREL, id);
      return;
    }
    if ((qos === 1 && type === PUBACK) || (qos === 2 && type === PUBCOMP)) {
      if (!inFlight.delete(id)) {
        unknownAcks++;
        return;
      }
      completed++;
      free.push(id);
    }
  };
  pub.afterRead = pump;
  pub.onDrain = pump;
  const pendingRel = new Set();
  sub.onPublish = (b0, data, s, e) => {
    const q = (b0 >> 1) & 3;
    const pidAt = s + 2 + ((data[s] << 8) | data[s + 1]);
    const id = (data[pidAt] << 8) | data[pidAt + 1];
    if (q !== qos) subProtocolErrors++;
    const h = payloadOf(b0, data, s, e);
    if (h !== null && tracker.add(h[1]) && measuring) {
      delivered++;
      hist.recordValue(Math.max(1, Math.round((readNow - h[2]) * 1000)));
    }
    if (q === 1) sub.ack(PUBACK, id);
    else if (q === 2) {
      pendingRel.add(id);
      sub.ack(PUBREC, id);
    }
  };
  sub.onAck = (type, id) => {
    if (type === (PUBREL & 0xf0)) {
      pendingRel.delete(id);
      sub.ack(PUBCOMP, id);
    }
  };
  pump();
  const win = await window(broker, opts, (m) => {
    measuring = m;
  });
  sending = false;
  await until(() => inFlight.size === 0 && tracker.unique >= seq && pendingRel.size === 0, 5000);
  const accounting = {
    published: seq,
    acknowledged: completed,
    received: tracker.unique + tracker.dups,
    unique: tracker.unique,
    dups: tracker.dups,
    reordered: tracker.reordered,
    missing: seq - tracker.unique,
    unknownAcks,
    wrongQos: subProtocolErrors,
  };
  accounting.exact =
    accounting.published === accounting.acknowledged &&
    accounting.missing === 0 &&
    accounting.dups === 0 &&
    accounting.reordered === 0 &&
    unknownAcks === 0;
  const row = rowFrom(name, broker, win, delivered, hist, { accounting });
  await closeAll([pub, sub]);
  return row;
}

export const qos1 = (broker, opts) => qosFlow(1, broker, opts);
export const qos2 = (broker, opts) => qosFlow(2, broker, opts);

/**
 * Open loop, QoS 0 at a fixed rate, each message stamped when written. One session per broker;
 * `send(ms, record)` sends for ms, so several brokers' sessions can take turns. Latency, CPU and
 * wall time accumulate over the recorded turns only.
 */
async function latencySession(broker, rate) {
  // Client ids and topic per session: several sessions may share one broker (bench:proxy).
  const tag = String(broker.name ?? '').replace(/[^A-Za-z0-9]+/g, '-');
  const topic = `bench/lat/${tag}`;
  const sub = new RawClient(broker.port, `bench-lat-sub-${tag}`);
  await sub.connect();
  await sub.subscribe(topic, 0);
  const pub = new RawClient(broker.port, `bench-lat-pub-${tag}`);
  await pub.connect();
  const t = publishTemplate(topic, 0, PAYLOAD, 0);
  const hist = histogram();
  const tracker = new SeqTracker();
  let recording = false;
  let delivered = 0;
  let seq = 0;
  const total = { wallSec: 0, brokerCpu: 0, genCpu: 0 };
  sub.onPublish = (b0, data, s) => {
    const h = payloadOf(b0, data, s);
    if (h === null) return;
    tracker.add(h[1]);
    if (recording) {
      delivered++;
      hist.recordValue(Math.max(1, Math.round((performance.now() - h[2]) * 1000)));
    }
  };
  return {
    async send(ms, record) {
      const first = seq;
      const cpu0 = cpuSeconds(broker.pid);
      const gen0 = process.cpuUsage();
      const start = performance.now();
      recording = record;
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          const elapsed = performance.now() - start;
          if (elapsed >= ms) {
            clearInterval(timer);
            resolve();
            return;
          }
          const due = first + Math.floor((elapsed * rate) / 1000) - seq;
          for (let k = 0; k < due; k++) {
            const buf = Buffer.from(t.bytes);
            buf.writeUInt32LE(seq++, t.payloadOffset + 4);
            buf.writeDoubleLE(performance.now(), t.payloadOffset + 8);
            pub.write(buf);
          }
        }, 1);
      });
      await until(() => tracker.unique >= seq, 3000);
      recording = false;
      if (record) {
        total.wallSec += (performance.now() - start) / 1000;
        total.brokerCpu += cpuSeconds(broker.pid) - cpu0;
        const g = process.cpuUsage(gen0);
        total.genCpu += (g.user + g.system) / 1e6;
      }
    },
    async finish() {
      const row = rowFrom(`latency @${rate / 1000}k msg/s QoS0`, broker, total, delivered, hist, {
        accounting: {
          sent: seq,
          received: tracker.unique,
          lost: seq - tracker.unique,
          reordered: tracker.reordered,
        },
      });
      await closeAll([pub, sub]);
      return row;
    },
  };
}

/**
 * Warm-up for the latency scenario, counted in messages rather than seconds: a JIT-compiled broker
 * (mq, Aedes) reaches its steady state after some thousands of messages, which the throughput
 * scenarios send within their 0.5 s warm-up but 5k msg/s needs 3 s for. Measured on mq: CPU per
 * message falls by ~20% between 0.5 s and 3 s, and p99 with it. `--warmup` can lengthen it.
 */
const LATENCY_WARMUP_MESSAGES = 15_000;

function latencyWarmupMs(opts, rate) {
  return Math.max(opts.warmupMs, (1000 * LATENCY_WARMUP_MESSAGES) / rate);
}

/** The latency scenario measures longer than the others (bench/broker.mjs sets latencyMs). */
function latencyWindowMs(opts) {
  return opts.latencyMs ?? opts.durationMs;
}

/** One broker alone: warm-up, then one measurement window. */
export async function latency(broker, opts, rate = 5000) {
  const session = await latencySession(broker, rate);
  await session.send(latencyWarmupMs(opts, rate), false);
  await session.send(latencyWindowMs(opts), true);
  return session.finish();
}

/**
 * Several brokers (each started and warmed up beforehand), taking turns of `turnMs` so that noise
 * from other work on the machine falls on all of them alike: p99 is the figure most sensitive to
 * it, and on a shared VM that noise (CPU steal) comes in bursts of a second or more, so the turns
 * are shorter than that. Only one broker has traffic at any moment.
 */
export async function latencyInterleaved(brokers, opts, rate = 5000, turnMs = 250) {
  const windowMs = latencyWindowMs(opts);
  const rounds = Math.max(1, Math.round(windowMs / turnMs));
  const sessions = [];
  for (const b of brokers) sessions.push(await latencySession(b, rate));
  for (const s of sessions) await s.send(latencyWarmupMs(opts, rate), false);
  for (let r = 0; r < rounds; r++) for (const s of sessions) await s.send(windowMs / rounds, true);
  const rows = [];
  for (const s of sessions) rows.push(await s.finish());
  return rows;
}

/**
 * Connection storm: `count` clients connect (at most `concurrency` handshakes pending), all stay
 * connected and idle; reports the connect rate and the broker's RSS growth per idle connection.
 */
export async function storm(broker, opts, count = 2000, concurrency = 200) {
  const rss0 = rssKiB(broker.pid);
  const cpu0 = cpuSeconds(broker.pid);
  const gen0 = process.cpuUsage();
  const sockets = [];
  let started = 0;
  let connected = 0;
  let failed = 0;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const settle = () => {
      if (connected + failed === count) resolve();
      else launch();
    };
    const launch = () => {
      while (started < count && started - connected - failed < concurrency) {
        const id = `bench-storm-${started++}`;
        let done = false;
        const finish = (ok) => {
          if (done) return;
          done = true;
          if (ok) connected++;
          else failed++;
          settle();
        };
        const framer = new Framer((b0, data, s) => finish(b0 >> 4 === 2 && data[s + 1] === 0));
        const sock = net.connect({ port: broker.port, host: '127.0.0.1' });
        sock.setNoDelay(true);
        sock.on('connect', () => sock.write(connect(id, { keepalive: 300 })));
        sock.on('data', (d) => framer.push(d, 0, d.length));
        sock.on('error', () => finish(false));
        sock.on('close', () => finish(false));
        sockets.push(sock);
      }
    };
    launch();
  });
  const connectSec = (performance.now() - t0) / 1000;
  // Right after the burst, a garbage-collected broker still holds the young-generation headroom
  // the burst itself made it grow; V8 gives it back after some seconds of idleness. Both figures
  // are reported; the idle one is the memory the idle connections cost.
  await delay(300);
  const rssBurst = rssKiB(broker.pid);
  const brokerCpu = cpuSeconds(broker.pid) - cpu0;
  const g = process.cpuUsage(gen0);
  const wall = (performance.now() - t0) / 1000;
  await delay(opts.idleMs);
  const rss1 = rssKiB(broker.pid);
  for (const s of sockets) s.destroy();
  return {
    scenario: `storm ${count} connections`,
    broker: broker.name,
    connectsPerSec: connected / connectSec,
    connected,
    failed,
    kibPerConnection: (rss1 - rss0) / count,
    kibPerConnectionBurst: (rssBurst - rss0) / count,
    idleSec: opts.idleMs / 1000,
    rssKiB: rss1,
    brokerCpuPct: (100 * brokerCpu) / wall,
    genCpuPct: (100 * (g.user + g.system)) / 1e6 / wall,
  };
}

export const SCENARIOS = {
  'fan-in': fanIn,
  'fan-out': fanOut,
  qos1,
  qos2,
  latency,
  storm,
};
