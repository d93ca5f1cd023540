// The broker benchmark scenarios, driven by mq bench's load engine (src/bench, built into dist/:
// run `npm run build` first). Each takes (broker, options) where broker = { name, port, pid } and
// returns a result row; the broker's CPU and RSS are read from /proc for its pid.
//
// The engine runs in one worker thread here (workers: 1), speaks MQTT 3.1.1 (every peer does) and
// uses the same shapes the hand-written generator it replaced used: QoS 0 flows with a per-publisher
// window of messages not yet seen by every subscriber, QoS 1/2 with 64 in flight, an open-loop
// 5k msg/s latency flow, and a connection storm.
import { BenchSession, cpuSeconds, rssKiB } from '../../dist/bench/index.js';
import { scale } from './scale.mjs';

const PAYLOAD = 64;

/** Resolves after ms (a benchmark's measurement window, not synchronisation). */
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function target(broker) {
  return { transport: 'mqtt', host: '127.0.0.1', port: broker.port };
}

/** The engine options every scenario shares. */
function base(broker, extra) {
  return { target: target(broker), version: 4, size: PAYLOAD, workers: 1, ...extra };
}

/** Runs `fn` and returns its wall time, the broker's CPU time and the generator's (this process). */
async function measured(broker, fn) {
  const cpu0 = cpuSeconds(broker.pid);
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const g = process.cpuUsage(gen0);
  return {
    wallSec: (performance.now() - t0) / 1000,
    brokerCpu: cpuSeconds(broker.pid) - cpu0,
    genCpu: (g.user + g.system) / 1e6,
  };
}

/** A result row from an engine report: `delivered` messages over the recorded time. */
function rowFrom(name, broker, win, report, latency, extra = {}) {
  const delivered = report.messages.received;
  const sec = report.durationSec > 0 ? report.durationSec : win.wallSec;
  return {
    scenario: name,
    broker: broker.name,
    msgsPerSec: delivered / sec,
    msgsPerCpuSec: win.brokerCpu > 0 ? delivered / win.brokerCpu : null,
    brokerCpuPct: (100 * win.brokerCpu) / win.wallSec,
    genCpuPct: (100 * win.genCpu) / win.wallSec,
    p50Ms: latency?.p50 ?? null,
    p90Ms: latency?.p90 ?? null,
    p99Ms: latency?.p99 ?? null,
    p999Ms: latency?.p999 ?? null,
    maxMs: latency?.max ?? null,
    rssKiB: rssKiB(broker.pid),
    ...extra,
  };
}

/** The run could not go on (nothing connected, the broker went away): say why. */
function check(report) {
  if (report.outcome.stopReason === 'finished') return;
  throw new Error(`${report.outcome.stopReason}: ${report.outcome.message ?? JSON.stringify(report.errors)}`);
}

/** Warm-up, then one measured window; the broker's CPU is read around the measured one. */
async function flow(broker, opts, options) {
  const session = await BenchSession.open(base(broker, { mode: 'e2e', ...options }));
  let win;
  try {
    await session.run({ durationMs: opts.warmupMs, record: false });
    win = await measured(broker, () => session.run({ durationMs: opts.durationMs, record: true }));
  } catch (err) {
    await session.close();
    throw err;
  }
  const report = await session.close();
  check(report);
  return { report, win };
}

/**
 * QoS 0 flow, `batch` pre-encoded PUBLISHes per write. With a `window`, each publisher keeps at
 * most that many messages not yet seen by every subscriber (sustained throughput without queueing
 * in the broker); with window 0 publishers write as fast as TCP takes their bytes, so a broker
 * that reads faster than it delivers has to push back or drop (the loss is reported).
 */
async function qos0Flow(name, broker, opts, options) {
  const { report, win } = await flow(broker, opts, { qos: 0, ...options });
  const m = report.messages;
  return rowFrom(name, broker, win, report, report.latencyMs, {
    lossPct: m.sent > 0 ? (100 * m.lost) / m.sent : null,
    accounting: {
      sent: m.sent,
      expected: m.expected,
      received: m.received,
      lost: m.lost,
      dups: m.duplicated,
      reordered: m.reordered,
      foreign: m.foreign,
    },
  });
}

/**
 * Fan-in under overload: 8 publishers as fast as TCP lets them (no window), one subscriber that
 * can read less than they send. Mosquitto reads only as fast as it routes; a broker that reads
 * faster must stop reading the publishers (backpressure) or it drops: msgs/s is what arrived,
 * loss what did not.
 */
export function fanIn(broker, opts) {
  return qos0Flow('fan-in 8->1 QoS0', broker, opts, {
    pubs: 8,
    subs: 1,
    topic: 'bench/in/%i',
    filter: 'bench/in/+',
    window: 0,
    batch: 100,
  });
}

export function fanOut(broker, opts) {
  return qos0Flow('fan-out 1->16 QoS0', broker, opts, {
    pubs: 1,
    subs: 16,
    topic: 'bench/out',
    filter: 'bench/out',
    window: 1000,
    batch: 50,
  });
}

/** QoS 1 or 2, one publisher with `inflight` unacknowledged messages, one subscriber. */
async function qosFlow(qos, broker, opts, inflight = 64) {
  const name = `QoS${qos} 1->1 (${inflight} in flight)`;
  const { report, win } = await flow(broker, opts, {
    qos,
    pubs: 1,
    subs: 1,
    topic: `bench/q${qos}`,
    filter: `bench/q${qos}`,
    inflight,
  });
  const m = report.messages;
  const errors = Object.entries(report.errors);
  const accounting = {
    published: m.sent,
    acknowledged: m.acknowledged,
    received: m.received,
    unique: m.received - m.duplicated,
    dups: m.duplicated,
    reordered: m.reordered,
    missing: m.lost,
    errors: errors.reduce((a, [, n]) => a + n, 0),
  };
  accounting.exact =
    accounting.published === accounting.acknowledged &&
    accounting.missing === 0 &&
    accounting.dups === 0 &&
    accounting.reordered === 0 &&
    accounting.errors === 0;
  if (errors.length) accounting.errorKinds = Object.fromEntries(errors);
  return rowFrom(name, broker, win, report, report.latencyMs, { accounting });
}

export const qos1 = (broker, opts) => qosFlow(1, broker, opts);
export const qos2 = (broker, opts) => qosFlow(2, broker, opts);

/**
 * Open loop, QoS 0 at a fixed rate. One session per broker; `send(ms, record)` runs a phase of ms,
 * so several brokers' sessions can take turns. Latency, CPU and wall time accumulate over the
 * recorded turns only. p50/p99 are from the moment each message was written (serviceLatencyMs),
 * as this scenario always measured; the figures from the scheduled send time (which add the
 * generator's timer lag, ~1 ms steps) are in `scheduled`.
 */
async function latencySession(broker, rate) {
  // Client ids and topic per session: several sessions may share one broker (bench:proxy).
  const tag = String(broker.name ?? '').replace(/[^A-Za-z0-9]+/g, '-');
  const topic = `bench/lat/${tag}`;
  const session = await BenchSession.open(
    base(broker, {
      mode: 'e2e',
      pubs: 1,
      subs: 1,
      qos: 0,
      topic,
      filter: topic,
      rate,
      clientIdPrefix: `bench-lat-${tag}-`,
    }),
  );
  const total = { wallSec: 0, brokerCpu: 0, genCpu: 0 };
  return {
    async send(ms, record) {
      const win = await measured(broker, () => session.run({ durationMs: ms, record }));
      if (record) {
        total.wallSec += win.wallSec;
        total.brokerCpu += win.brokerCpu;
        total.genCpu += win.genCpu;
      }
    },
    async finish() {
      const report = await session.close();
      check(report);
      const m = report.messages;
      return rowFrom(`latency @${rate / 1000}k msg/s QoS0`, broker, total, report, report.serviceLatencyMs, {
        scheduled: report.latencyMs,
        accounting: { sent: m.sent, received: m.received, lost: m.lost, reordered: m.reordered },
      });
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
  const t0 = performance.now();
  const session = await BenchSession.open(
    base(broker, { mode: 'conn', clients: count, connectConcurrency: concurrency, keepalive: 300 }),
  );
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
  const report = await session.close();
  check(report);
  return {
    scenario: `storm ${count} connections`,
    broker: broker.name,
    connectsPerSec: report.connections.ratePerSec,
    connected: report.connections.connected,
    failed: report.connections.failed,
    kibPerConnection: (rss1 - rss0) / count,
    kibPerConnectionBurst: (rssBurst - rss0) / count,
    idleSec: opts.idleMs / 1000,
    rssKiB: rss1,
    brokerCpuPct: (100 * brokerCpu) / wall,
    /** Broker CPU for the storm (connects and the 300 ms after), per 1,000 connections. */
    cpuMsPer1k: (brokerCpu * 1e6) / count,
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
  scale: (broker, opts) => scale(broker, opts, latencySession),
};

/** Scenarios that run only when named with --only (long, and they need many descriptors). */
export const ON_REQUEST = ['scale'];
