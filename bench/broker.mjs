#!/usr/bin/env node
// `npm run bench:broker`: mq broker vs Mosquitto vs Aedes, one fresh broker per scenario, driven
// by a raw-socket load generator (bench/loadgen: hand-built MQTT 3.1.1 bytes, no MQTT library on
// the hot path). Prints msgs/s, msgs per broker CPU-second, latency p50/p99, broker RSS, QoS 1/2
// accounting, and the targets as ratios against Mosquitto in the same run.
//
//   node bench/broker.mjs [--only fan-in,fan-out,qos1,qos2,latency,storm]
//                         [--brokers mq,mosquitto,aedes,null,mqx] [--duration S] [--warmup S]
//                         [--idle S] [--json]
//
// --duration: measurement window per scenario (default 5 s, after a 0.5 s warm-up; the latency
// scenario warms up for 15,000 messages, 3 s, so JIT-compiled brokers are measured warm, and
// measures for 15 s by default: a p99 from 25,000 samples moved by 20-40% between identical runs
// here, from 75,000 it is steadier); --idle: how
// long the storm's connections sit idle before the broker's RSS is read again (default 15 s: a
// garbage-collected broker returns the heap headroom the connection burst made it grow only after
// some seconds). `null` is a do-nothing forwarder (bench/loadgen/null-broker.mjs) that shows the
// generator's own ceiling. The latency scenario runs every broker at once, taking turns of 250 ms
// (one broker with traffic at a time), so that noise from other work on the machine falls on all
// of them alike.
//
// The generator shares this 2-core machine with the broker: its CPU use is reported per row
// ("gen CPU"); a row where it nears 100% is generator-bound.
//
// For A/B experiments, `mqx` is a second mq broker: MQ_BENCH_X_BIN (another checkout's bin/mq,
// built), MQ_BENCH_X_FLAGS (node flags), MQ_BENCH_X_ARGS (mq broker flags). MQ_BENCH_NODE_FLAGS
// gives node flags to `mq`; MQ_BENCH_LOG=FILE keeps the brokers' output (e.g. with --trace-gc).
// Example: MQ_BENCH_X_BIN=../old/bin/mq node bench/broker.mjs --only latency --brokers mq,mqx,mosquitto
import { listOf, parseFlags } from './args.mjs';
import { BROKERS } from './loadgen/brokers.mjs';
import { latencyInterleaved, SCENARIOS } from './loadgen/scenarios.mjs';

function parseArgs(argv) {
  const opts = {
    only: Object.keys(SCENARIOS),
    brokers: ['mosquitto', 'aedes', 'mq'],
    durationMs: 5000,
    /** The latency scenario's window: 15 s unless --duration is given (see the header). */
    latencyMs: 15_000,
    warmupMs: 500,
    idleMs: 15_000,
    json: false,
  };
  parseFlags(argv, {
    usage:
      'usage: node bench/broker.mjs [--only fan-in,fan-out,qos1,qos2,latency,storm] ' +
      '[--brokers mq,mosquitto,aedes,null,mqx] [--duration S] [--warmup S] [--idle S] [--json]',
    switches: { '--json': () => (opts.json = true) },
    values: {
      '--only': (v) => (opts.only = listOf(v, Object.keys(SCENARIOS), 'scenario')),
      '--brokers': (v) => (opts.brokers = listOf(v, Object.keys(BROKERS), 'broker')),
      '--duration': (v) => (opts.durationMs = opts.latencyMs = Number(v) * 1000),
      '--warmup': (v) => (opts.warmupMs = Number(v) * 1000),
      '--idle': (v) => (opts.idleMs = Number(v) * 1000),
    },
  });
  if (!(opts.durationMs > 0)) throw new Error('--duration must be a positive number of seconds');
  return opts;
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
  const flows = rows.filter((r) => r.msgsPerSec !== undefined);
  const storms = rows.filter((r) => r.connectsPerSec !== undefined);
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
        fmt(r.kibPerConnectionBurst, 2),
        fmt(r.kibPerConnection, 2),
        fmt(r.rssKiB / 1024, 1),
        `${fmt(r.brokerCpuPct)}%`,
        `${fmt(r.genCpuPct)}%`,
      ]),
    );
  for (const e of errors) console.log(`ERROR ${e.scenario} on ${e.broker}: ${e.error}`);
}

/** The targets, as ratios mq / Mosquitto in this run (memory is absolute). */
function targets(rows) {
  const get = (key, broker) => rows.find((r) => r.key === key && r.broker === broker && !r.error);
  const out = [];
  const ratio = (key, label, field, min, higherIsBetter = true) => {
    const m = get(key, 'mq');
    const o = get(key, 'mosquitto');
    if (!m || !o || m[field] == null || o[field] == null) return;
    const r = higherIsBetter ? m[field] / o[field] : o[field] / m[field];
    out.push({ target: label, mq: m[field], mosquitto: o[field], ratio: r, required: min, pass: r >= min });
  };
  ratio('fan-in', 'fan-in msgs/s >= 1.0x Mosquitto', 'msgsPerSec', 1.0);
  ratio('fan-out', 'fan-out msgs/s >= 1.0x Mosquitto', 'msgsPerSec', 1.0);
  ratio('qos1', 'QoS1 msgs per CPU-s >= 1.5x Mosquitto', 'msgsPerCpuSec', 1.5);
  ratio('qos2', 'QoS2 msgs per CPU-s >= 1.5x Mosquitto', 'msgsPerCpuSec', 1.5);
  ratio('latency', 'p99 @5k msg/s <= Mosquitto (ratio = mosq/mq)', 'p99Ms', 1.0, false);
  const s = get('storm', 'mq');
  if (s) {
    out.push({
      target: `memory per idle connection <= 4 KB (RSS delta / connections, after ${s.idleSec} s idle)`,
      mq: s.kibPerConnection,
      required: 4,
      pass: s.kibPerConnection <= 4 && s.failed === 0,
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
    const error = err instanceof Error ? err.message : String(err);
    return opts.brokers.map((broker) => ({ key: 'latency', scenario: 'latency', broker, error }));
  } finally {
    for (const b of brokers) await b.stop();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
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
          error: err instanceof Error ? err.message : String(err),
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
      `${JSON.stringify({ durationSec: opts.durationMs / 1000, cpus: (await import('node:os')).cpus().length, rows, targets: verdicts })}\n`,
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
  if (verdicts.length) {
    console.log('Targets (mq vs Mosquitto, this run):');
    for (const v of verdicts) {
      const detail =
        v.ratio !== undefined
          ? `mq ${fmt(v.mq, 3)} vs mosquitto ${fmt(v.mosquitto, 3)} -> ${fmt(v.ratio, 2)}x (need ${v.required}x)`
          : v.mq !== undefined
            ? `mq ${fmt(v.mq, 2)} KB`
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
