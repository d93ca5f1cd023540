#!/usr/bin/env node
// `npm run bench:startup`: how instant do one-shot commands feel? In one run, against one local
// Mosquitto, times (median of N runs each, taking turns so machine noise falls on all alike):
//
//   node -e 0                 the floor: starting Node itself
//   mq pub                    connect, publish one message, disconnect
//   mosquitto_pub             the C reference
//   mqtt pub (MQTT.js CLI)    node_modules/.bin/mqtt
//   mq --version              the lightest mq command
//
// and `mq pub -l` streaming lines (QoS 0) into Mosquitto: messages per second.
// Targets (issue 4): mq pub <= 1.3x node -e 0; mq --version < 1.3x node -e 0; mq pub -l >= 100k msgs/s.
//
//   node bench/startup.mjs [--runs N] [--lines N] [--json]
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// The port helpers' one copy is src/bench/proc.ts (built into dist/ by `npm run build`).
import { freePort, waitForPort } from '../dist/bench/proc.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MQ = join(ROOT, 'bin', 'mq');
const MQTTJS = join(ROOT, 'node_modules', '.bin', 'mqtt');

function parseArgs(argv) {
  const opts = { runs: 15, lines: 200_000, streamRuns: 3, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') opts.runs = Number(argv[++i]);
    else if (a === '--lines') opts.lines = Number(argv[++i]);
    else if (a === '--stream-runs') opts.streamRuns = Number(argv[++i]);
    else if (a === '--json') opts.json = true;
    else {
      console.error(
        `usage: node bench/startup.mjs [--runs N] [--lines N] [--stream-runs N] [--json] (unknown: ${a})`,
      );
      process.exit(1);
    }
  }
  return opts;
}

async function startMosquitto(dir) {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n`);
  const proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  await waitForPort(port, 5000);
  return { port, stop: () => proc.kill('SIGTERM') };
}

/** Wall time of one run in ms; throws when the command fails. */
function timeRun(cmd, args, stdin = 'ignore') {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    stdio: [stdin, 'ignore', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** bin/mq runs the bundle only when it is at least as new as dist/ (else the slower modules). */
function warnIfBundleStale() {
  const mtime = (path) => {
    try {
      return statSync(path).mtimeMs;
    } catch {
      return Number.NaN;
    }
  };
  const bundle = mtime(join(ROOT, 'dist', 'mq.cjs'));
  const modules = mtime(join(ROOT, 'dist', 'cli', 'main.js'));
  if (!(bundle >= modules)) {
    console.error('bench:startup: dist/mq.cjs is missing or older than dist/: run `npm run build` first');
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  warnIfBundleStale();
  const dir = mkdtempSync(join(tmpdir(), 'mq-bench-startup-'));
  const mosq = await startMosquitto(dir);
  const p = String(mosq.port);
  const node = process.execPath;
  const cases = [
    { name: 'node -e 0', cmd: node, args: ['-e', '0'] },
    {
      name: 'mq pub',
      cmd: node,
      args: [MQ, 'pub', '-h', '127.0.0.1', '-p', p, '-t', 'bench/startup', '-m', 'hello'],
    },
    {
      name: 'mosquitto_pub',
      cmd: 'mosquitto_pub',
      args: ['-h', '127.0.0.1', '-p', p, '-t', 'bench/startup', '-m', 'hello'],
    },
    {
      name: 'mqtt pub (MQTT.js)',
      cmd: node,
      args: [MQTTJS, 'pub', '-h', '127.0.0.1', '-p', p, '-t', 'bench/startup', '-m', 'hello'],
    },
    { name: 'mq --version', cmd: node, args: [MQ, '--version'] },
  ];
  try {
    // One warm-up each (file cache), then take turns.
    for (const c of cases) timeRun(c.cmd, c.args);
    const times = new Map(cases.map((c) => [c.name, []]));
    for (let i = 0; i < opts.runs; i++) for (const c of cases) times.get(c.name).push(timeRun(c.cmd, c.args));
    const med = new Map([...times].map(([k, v]) => [k, median(v)]));
    const base = med.get('node -e 0');

    // Streaming: N lines from a file into `mq pub -l`, QoS 0.
    const file = join(dir, 'lines.txt');
    const lines = Array.from({ length: opts.lines }, (_, i) => `line ${i} ${'x'.repeat(16)}`).join('\n');
    writeFileSync(file, `${lines}\n`);
    const streamTimes = [];
    for (let i = 0; i < opts.streamRuns; i++) {
      const fd = openSync(file, 'r');
      try {
        streamTimes.push(
          timeRun(node, [MQ, 'pub', '-h', '127.0.0.1', '-p', p, '-t', 'bench/lines', '-l'], fd),
        );
      } finally {
        closeSync(fd);
      }
    }
    const streamMs = median(streamTimes);
    const oneShot = med.get('mq pub');
    const rate = opts.lines / (streamMs / 1000);
    const rateNet = opts.lines / (Math.max(1, streamMs - oneShot) / 1000);

    const result = {
      runs: opts.runs,
      medianMs: Object.fromEntries(med),
      ratioToNode: Object.fromEntries([...med].map(([k, v]) => [k, v / base])),
      stream: { lines: opts.lines, medianMs: streamMs, msgsPerSec: rate, msgsPerSecAfterStartup: rateNet },
      targets: {
        'mq pub <= 1.3x node -e 0': med.get('mq pub') / base <= 1.3,
        'mq --version < 1.3x node -e 0': med.get('mq --version') / base < 1.3,
        'mq pub -l >= 100k msgs/s': rate >= 100_000,
      },
    };
    if (opts.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(
        `start-up, median of ${opts.runs} runs each (same machine, same Mosquitto, taking turns):\n`,
      );
      console.log(`  ${'command'.padEnd(22)} ${'median'.padStart(10)}   vs node -e 0`);
      for (const [k, v] of med)
        console.log(`  ${k.padEnd(22)} ${`${v.toFixed(1)} ms`.padStart(10)}   ${(v / base).toFixed(2)}x`);
      console.log(
        `\nmq pub -l, ${opts.lines} lines QoS 0 (median of ${opts.streamRuns}): ${streamMs.toFixed(0)} ms = ${Math.round(rate).toLocaleString('en')} msgs/s (${Math.round(rateNet).toLocaleString('en')} msgs/s after start-up)`,
      );
      console.log('\ntargets:');
      for (const [k, ok] of Object.entries(result.targets))
        console.log(`  ${ok ? 'met    ' : 'MISSED '} ${k}`);
    }
  } finally {
    mosq.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:startup: ${err.message}`);
  process.exit(1);
});
