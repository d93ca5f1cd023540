#!/usr/bin/env node
// `npm run bench:broker`: mq broker vs Mosquitto vs Aedes, one fresh broker per scenario, driven
// by mq bench's load engine (src/bench through dist/: run `npm run build` first; raw clients on
// mq's codec, no MQTT library on the hot path). Prints msgs/s, msgs per broker CPU-second,
// latency p50/p99/p99.9, loss, broker RSS, QoS 1/2 accounting, and issue 11's targets as ratios
// against Mosquitto in the same run.
//
//   node bench/broker.mjs [--only fan-in,fan-out,qos1,qos2,latency,storm,scale]
//                         [--brokers mq,mosquitto,aedes,null,mqx] [--duration S] [--warmup S]
//                         [--idle S] [--connections N] [--pin] [--json]
//
// --duration: measurement window per scenario (default 5 s, after a 0.5 s warm-up; the latency
// scenario warms up for 15,000 messages, 3 s, so JIT-compiled brokers are measured warm, and
// measures for 15 s by default: a p99 from 25,000 samples moved by 20-40% between identical runs
// here, from 75,000 it is steadier); --idle: how long the storm's connections sit idle before the
// broker's RSS is read again (default 15 s: a garbage-collected broker returns the heap headroom
// the connection burst made it grow only after some seconds; the target is the figure right after
// the storm). `null` is a do-nothing forwarder (bench/loadgen/null-broker.mjs) that shows the
// generator's own ceiling. The latency scenario runs every broker at once, taking turns of 250 ms
// (one broker with traffic at a time), so that noise from other work on the machine falls on all
// of them alike.
//
// fan-in's 8 publishers write as fast as TCP takes their bytes (no window): a broker that reads
// faster than its subscriber takes the messages must push back on the publishers or drop; loss is
// reported and is a target.
//
// scale (only with --only scale: long, and it needs many descriptors): --connections N idle
// connections (default 100,000) held by child processes from several 127.0.0.x source addresses,
// next to a live 1k msg/s flow whose latency is measured while they are all held. N is cut to
// what the broker's open-file limit leaves; the output says so and extrapolates RSS to N.
//
// The generator shares this 2-core machine with the broker: its CPU use is reported per row
// ("gen CPU"); a row where it nears 100% is generator-bound. --pin runs the brokers on CPU 1 and
// the generator on CPU 0 (taskset), so they do not preempt each other on one CPU: that separates
// the machine's scheduling from the broker's own cost. The targets hold unpinned, as users run it.
//
// For A/B experiments, `mqx` is a second mq broker: MQ_BENCH_X_BIN (another checkout's bin/mq,
// built), MQ_BENCH_X_FLAGS (node flags), MQ_BENCH_X_ARGS (mq broker flags). MQ_BENCH_NODE_FLAGS
// gives node flags to `mq`; MQ_BENCH_LOG=FILE keeps the brokers' output (e.g. with --trace-gc).
// Example: MQ_BENCH_X_BIN=../old/bin/mq node bench/broker.mjs --only latency --brokers mq,mqx,mosquitto
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { listOf, parseFlags } from './args.mjs';
import { BROKERS, pinning } from './loadgen/brokers.mjs';
import { latencyInterleaved, ON_REQUEST, SCENARIOS } from './loadgen/scenarios.mjs';

const ALL = Object.keys(SCENARIOS);
const USAGE =
  `usage: node bench/broker.mjs [--only ${ALL.join(',')}] [--brokers mq,mosquitto,aedes,null,mqx] ` +
  '[--duration S] [--warmup S] [--idle S] [--connections N] [--pin] [--json]';

function parseArgs(argv) {
  const opts = {
    only: ALL.filter((k) => !ON_REQUEST.includes(k)),
    brokers: ['mosquitto', 'aedes', 'mq'],
    durationMs: 5000,
    /** The latency scenario's window: 15 s unless --duration is given (see the header). */
    latencyMs: 15_000,
    warmupMs: 500,
    idleMs: 15_000,
    connections: 100_000,
    pin: false,
    json: false,
  };
  parseFlags(argv, {
    usage: USAGE,
    switches: { '--json': () => (opts.json = true), '--pin': () => (opts.pin = true) },
    values: {
      '--only': (v) => (opts.only = listOf(v, ALL, 'scenario')),
      '--brokers': (v) => (opts.brokers = listOf(v, Object.keys(BROKERS), 'broker')),
      '--duration': (v) => (opts.durationMs = opts.latencyMs = Number(v) * 1000),
      '--warmup': (v) => (opts.warmupMs = Number(v) * 1000),
      '--idle': (v) => (opts.idleMs = Number(v) * 1000),
      '--connections': (v) => (opts.connections = Number(v)),
    },
  });
  if (!(opts.durationMs > 0)) throw new Error('--duration must be a positive number of seconds');
  if (!(Number.isInteger(opts.connections) && opts.connections > 0))
    throw new Error('--connections must be a positive integer');
  return opts;
}

/** A scenario's failure in words: a /proc file gone means the broker process ended mid-run. */
function describeError(err, broker) {
  const message = err instanceof Error ? err.message : String(err);
  if (broker !== undefined && message.includes(`/proc/${broker.pid}/`) && /ENOENT/.test(message))
    return `the broker (pid ${broker.pid}) exited during the scenario (MQ_BENCH_LOG=FILE keeps its output)`;
  return message;
}

const fmt = (v, digits = 0) =>
  v === null || v === undefined || Number.isNaN(v)
    ? '-'
    : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function accountingText(row) {
  const a = row.accounting;
  if (!a) return '';
  if ('exact' in a) {
    const s = `pub ${a.published} ack ${a.acknowledged} recv ${a.received} dup ${a.dups} reord ${a.reordered} miss ${a.missing}`;
    return a.exact ? `${s} EXACT` : `${s} VIOLATION`;
  }
  const parts = [`sent ${a.sent}`, `recv ${a.received}`];
  if (a.lost) parts.push(`lost ${a.lost}`);
  if (a.dups) parts.push(`dup ${a.dups}`);
  if (a.reordered) parts.push(`reord ${a.reordered}`);
  return parts.join(' ');
}

function printTable(rows) {
  const flows = rows.filter((r) => r.msgsPerSec !== undefined && r.connections === undefined);
  const storms = rows.filter((r) => r.connectsPerSec !== undefined && r.connections === undefined);
  const scales = rows.filter((r) => r.connections !== undefined);
  const errors = rows.filter((r) => r.error);
  const table = (header, body) => {
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
    const line = (cells) =>
      cells.map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
    console.log(line(header));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of body) console.log(line(r));
    console.log();
  };
  if (flows.length)
    table(
      [
        'scenario',
        'broker',
        'msgs/s',
        'msgs/CPU-s',
        'broker CPU',
        'gen CPU',
        'p50 ms',
        'p99 ms',
        'p99.9 ms',
        'loss',
        'RSS MB',
        'accounting',
      ],
      flows.map((r) => [
        r.scenario,
        r.broker,
        fmt(r.msgsPerSec),
        fmt(r.msgsPerCpuSec),
        `${fmt(r.brokerCpuPct)}%`,
        `${fmt(r.genCpuPct)}%`,
        fmt(r.p50Ms, 3),
        fmt(r.p99Ms, 3),
        fmt(r.p999Ms, 3),
        lossText(r),
        fmt(r.rssKiB / 1024, 1),
        accountingText(r),
      ]),
    );
  if (storms.length)
    table(
      [
        'scenario',
        'broker',
        'connects/s',
        'connected',
        'failed',
        'CPU ms/1k conn',
        'KB/conn at once',
        'KB/conn idle',
        'RSS MB',
        'broker CPU',
        'gen CPU',
      ],
      storms.map((r) => [
        r.scenario,
        r.broker,
        fmt(r.connectsPerSec),
        r.connected,
        r.failed,
        fmt(r.cpuMsPer1k),
        fmt(r.kibPerConnectionBurst, 2),
        fmt(r.kibPerConnection, 2),
        fmt(r.rssKiB / 1024, 1),
        `${fmt(r.brokerCpuPct)}%`,
        `${fmt(r.genCpuPct)}%`,
      ]),
    );
  if (scales.length)
    table(
      [
        'scenario',
        'broker',
        'connected',
        'failed',
        'connects/s',
        'CPU ms/1k conn',
        'RSS MB',
        'KB/conn',
        `RSS MB at ${fmt(scales[0].wanted)}`,
        'live p50 ms',
        'live p99 ms',
        'live p99.9 ms',
        'live loss',
      ],
      scales.map((r) => [
        r.scenario,
        r.broker,
        r.connected,
        r.failed,
        fmt(r.connectsPerSec),
        fmt(r.cpuMsPer1k),
        fmt(r.rssKiB / 1024, 1),
        fmt(r.kibPerConnection, 2),
        `${fmt(r.extrapolatedMiB, 0)}${r.cappedByFdLimit ? ' (extrapolated)' : ''}`,
        fmt(r.p50Ms, 3),
        fmt(r.p99Ms, 3),
        fmt(r.p999Ms, 3),
        lossText(r),
      ]),
    );
  for (const r of scales) {
    if (r.cappedByFdLimit)
      console.log(
        `NOTE: scale on ${r.broker}: the broker's open-file limit is ${r.fdLimit} (one descriptor per connection), ` +
          `so it held ${fmt(r.connections)} connections, not ${fmt(r.wanted)}; at ${fmt(r.kibPerConnection, 2)} KB ` +
          `per connection, ${fmt(r.wanted)} would take ~${fmt(r.extrapolatedMiB, 0)} MB of RSS.`,
      );
  }
  for (const e of errors) console.log(`ERROR ${e.scenario} on ${e.broker}: ${e.error}`);
}

function lossText(r) {
  const a = r.accounting;
  if (!a || a.sent === undefined || !(a.sent > 0)) return '-';
  return `${fmt((100 * (a.lost ?? 0)) / a.sent, 2)}%`;
}

/** Issue 11's targets: ratios mq / Mosquitto in this run, absolute figures for memory and loss. */
function targets(rows) {
  const get = (key, broker) => rows.find((r) => r.key === key && r.broker === broker && !r.error);
  const out = [];
  // mq's figure over Mosquitto's, at least (higher is better) or at most (lower is better:
  // latency, CPU per connection) `bound` times it.
  const compare = (key, label, field, bound, higherIsBetter) => {
    const m = get(key, 'mq');
    const o = get(key, 'mosquitto');
    if (!m || !o || m[field] == null || o[field] == null) return;
    const r = m[field] / o[field];
    out.push({
      target: label,
      mq: m[field],
      mosquitto: o[field],
      ratio: r,
      need: `${higherIsBetter ? '>=' : '<='} ${bound}x`,
      pass: higherIsBetter ? r >= bound : r <= bound,
    });
  };
  const atLeast = (key, label, field, min) => compare(key, label, field, min, true);
  const atMost = (key, label, field, max) => compare(key, label, field, max, false);
  const fanIn = get('fan-in', 'mq');
  if (fanIn?.lossPct != null)
    out.push({ target: 'fan-in QoS0 loss < 1%', mq: fanIn.lossPct, unit: '%', pass: fanIn.lossPct < 1 });
  atLeast('fan-in', 'fan-in delivered msgs/s >= 2x Mosquitto', 'msgsPerSec', 2);
  atLeast('fan-out', 'fan-out msgs/s >= 2x Mosquitto', 'msgsPerSec', 2);
  atLeast('qos1', 'QoS1 msgs per CPU-s >= 2x Mosquitto', 'msgsPerCpuSec', 2);
  atLeast('qos2', 'QoS2 msgs per CPU-s >= 2x Mosquitto', 'msgsPerCpuSec', 2);
  atMost('latency', 'p99 @5k msg/s <= Mosquitto', 'p99Ms', 1);
  atMost('latency', 'p99.9 @5k msg/s <= Mosquitto', 'p999Ms', 1);
  atMost('storm', 'storm CPU per connect <= 1.5x Mosquitto', 'cpuMsPer1k', 1.5);
  const s = get('storm', 'mq');
  if (s) {
    out.push({
      target: 'memory per connection right after the storm <= 4 KB',
      mq: s.kibPerConnectionBurst,
      unit: 'KB',
      pass: s.kibPerConnectionBurst <= 4 && s.failed === 0,
    });
  }
  const sc = get('scale', 'mq');
  if (sc) {
    out.push({
      target: `scale: RSS with ${fmt(sc.wanted)} idle connections < 400 MB${sc.cappedByFdLimit ? ` (extrapolated from ${fmt(sc.connected)})` : ''}`,
      mq: sc.extrapolatedMiB,
      unit: 'MB',
      pass: sc.extrapolatedMiB < 400 && sc.failed === 0 && sc.accounting.lost === 0,
    });
  }
  for (const key of ['qos1', 'qos2']) {
    const m = get(key, 'mq');
    if (m) out.push({ target: `${key} exact accounting (mq)`, pass: m.accounting.exact === true });
  }
  return out;
}

/** The latency scenario with every broker up at once, taking turns (see latencyInterleaved). */
async function interleavedLatency(opts, log) {
  log(`latency on ${opts.brokers.join(', ')} (interleaved)...`);
  const brokers = [];
  try {
    for (const name of opts.brokers) {
      const b = await BROKERS[name]();
      b.name = name;
      brokers.push(b);
    }
    const rows = await latencyInterleaved(brokers, opts);
    return rows.map((row) => ({ key: 'latency', ...row }));
  } catch (err) {
    const gone = brokers.find((b) => describeError(err, b) !== describeError(err, undefined));
    const error = gone === undefined ? describeError(err) : `${gone.name}: ${describeError(err, gone)}`;
    return opts.brokers.map((broker) => ({ key: 'latency', scenario: 'latency', broker, error }));
  } finally {
    for (const b of brokers) await b.stop();
  }
}

/** --pin: this process (and the worker threads it starts later) on CPU 0, the brokers on CPU 1. */
function pin() {
  execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  pinning.brokerCpu = 1;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.pin) pin();
  const load0 = loadavg()[0];
  const rows = [];
  const log = (s) => {
    if (!opts.json) process.stderr.write(`${s}\n`);
  };
  for (const key of opts.only) {
    if (key === 'latency' && opts.brokers.length > 1) {
      rows.push(...(await interleavedLatency(opts, log)));
      continue;
    }
    for (const name of opts.brokers) {
      log(`${key} on ${name}...`);
      let broker;
      try {
        broker = await BROKERS[name]();
        broker.name = name;
        const row = await SCENARIOS[key](broker, opts);
        rows.push({ key, ...row });
      } catch (err) {
        rows.push({
          key,
          scenario: key,
          broker: name,
          error: describeError(err, broker),
        });
      } finally {
        await broker?.stop();
      }
    }
  }
  const verdicts = targets(rows);
  const qosViolations = rows.filter((r) => r.accounting && 'exact' in r.accounting && !r.accounting.exact);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ durationSec: opts.durationMs / 1000, cpus: (await import('node:os')).cpus().length, pinned: opts.pin, loadavg: [load0, loadavg()[0]], rows, targets: verdicts })}\n`,
    );
    return;
  }
  console.log();
  printTable(rows);
  const genBound = rows.filter((r) => r.genCpuPct > 85);
  for (const r of genBound)
    console.log(
      `NOTE: ${r.scenario} on ${r.broker}: the load generator used ${fmt(r.genCpuPct)}% of a core; the row may be generator-bound.`,
    );
  for (const r of qosViolations)
    console.log(`VIOLATION: ${r.scenario} on ${r.broker}: QoS accounting not exact (${accountingText(r)})`);
  console.log(
    `Load average (1 min) ${fmt(load0, 2)} at the start, ${fmt(loadavg()[0], 2)} at the end${opts.pin ? '; brokers pinned to CPU 1, generator to CPU 0' : ''}.`,
  );
  if (verdicts.length) {
    console.log('Targets (mq vs Mosquitto, this run):');
    for (const v of verdicts) {
      const detail =
        v.ratio !== undefined
          ? `mq ${fmt(v.mq, 3)} vs mosquitto ${fmt(v.mosquitto, 3)} -> ${fmt(v.ratio, 2)}x (need ${v.need})`
          : v.mq !== undefined
            ? `mq ${fmt(v.mq, 2)} ${v.unit}`
            : '';
      console.log(`  ${v.pass ? 'PASS' : 'FAIL'}  ${v.target}  ${detail}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench:broker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
