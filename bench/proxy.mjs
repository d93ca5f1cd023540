#!/usr/bin/env node
// `npm run bench:proxy`: what `mq proxy` adds to a message's latency. One publisher and one
// subscriber at 5,000 msg/s QoS 0 (bench/loadgen's latency scenario: raw-socket clients, 64-byte
// payloads with a send timestamp) against the same broker three ways, taking turns of 250 ms so
// that noise on this shared machine falls on all of them alike:
//
//   direct         both clients connected to the broker
//   via proxy      both through `mq proxy --trace off` (forwarding only: no decoding, no copy):
//                  a message crosses the proxy twice (publisher -> broker, broker -> subscriber)
//   via --delay    both through `mq proxy --trace off --delay up:20`: the publisher's bytes are
//                  held 20 ms, the subscriber's are not; shows how exact the added delay is
//   via null       both through a do-nothing Node forwarder (socket.pipe both ways, noDelay): what
//                  one more hop through any Node process costs here, the floor for mq proxy
//
// Prints p50/p99 of each, the added median (via proxy - direct), and the delay's measured added
// latency (via --delay - direct) against the 20 ms asked for.
//
//   node bench/proxy.mjs [--brokers mq,mosquitto] [--duration S] [--rate N] [--json]
//
// Brokers: mq broker (bin/mq, build first) and Mosquitto (/usr/sbin/mosquitto) when installed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listOf, parseFlags } from './args.mjs';
import { BROKERS, ROOT } from './loadgen/brokers.mjs';
import { latencyInterleaved } from './loadgen/scenarios.mjs';

const DELAY_MS = 20;

function parseArgs(argv) {
  const opts = {
    brokers: existsSync('/usr/sbin/mosquitto') ? ['mq', 'mosquitto'] : ['mq'],
    durationMs: 10_000,
    warmupMs: 500,
    rate: 5000,
    json: false,
  };
  parseFlags(argv, {
    usage: 'usage: node bench/proxy.mjs [--brokers mq,mosquitto] [--duration S] [--rate N] [--json]',
    switches: { '--json': () => (opts.json = true) },
    values: {
      '--brokers': (v) => (opts.brokers = listOf(v, ['mq', 'mosquitto'], 'broker')),
      '--duration': (v) => (opts.durationMs = Number(v) * 1000),
      '--rate': (v) => (opts.rate = Number(v)),
    },
  });
  if (!(opts.durationMs > 0) || !(opts.rate > 0)) throw new Error('--duration and --rate must be positive');
  return opts;
}

const NULL_PROXY = `
import net from 'node:net';
const upstream = Number(process.env.UPSTREAM_PORT);
const server = net.createServer({ noDelay: true }, (client) => {
  const up = net.connect({ port: upstream, host: '127.0.0.1', noDelay: true });
  client.pipe(up);
  up.pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => console.log('null proxy listening on mqtt://127.0.0.1:' + server.address().port + ' '));
process.on('SIGTERM', () => process.exit(0));
`;

/** Spawns `mq proxy --listen 0 --to ... ARGS` (or, for 'null', the null forwarder); resolves once it listens. */
function startProxy(name, upstreamPort, args) {
  return new Promise((resolve, reject) => {
    const to = `mqtt://127.0.0.1:${upstreamPort}`;
    const mq = [join(ROOT, 'bin', 'mq'), 'proxy', '--listen', '0', '--to', to, '--trace', 'off', '-q'];
    const argv = args === 'null' ? ['--input-type=module', '-e', NULL_PROXY] : [...mq, ...args];
    const proc = spawn(process.execPath, argv, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', UPSTREAM_PORT: String(upstreamPort) },
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mq proxy did not start within 10 s\n${out}${err}`));
    }, 10_000);
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on mqtt:\/\/[^\s]+:(\d+) /.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout.resume();
        resolve({
          name,
          port: Number(m[1]),
          pid: proc.pid,
          stop: () =>
            new Promise((done) => {
              if (proc.exitCode !== null) return done();
              proc.once('exit', () => done());
              proc.kill('SIGTERM');
            }),
        });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mq proxy exited (${code}) during start-up\n${out}${err}`));
    });
  });
}

const fmt = (v, digits = 3) => (v == null || Number.isNaN(v) ? '-' : v.toFixed(digits));

async function runBroker(name, opts, log) {
  const broker = await BROKERS[name]();
  const started = [broker];
  try {
    const direct = { ...broker, name: `${name} direct` };
    const proxy = await startProxy(`${name} via proxy`, broker.port, []);
    started.push(proxy);
    const delayed = await startProxy(`${name} via --delay up:${DELAY_MS}`, broker.port, [
      '--delay',
      `up:${DELAY_MS}`,
    ]);
    started.push(delayed);
    const nul = await startProxy(`${name} via null forwarder`, broker.port, 'null');
    started.push(nul);
    log(
      `${name}: direct, via proxy, via --delay up:${DELAY_MS}, via a null forwarder at ${opts.rate} msg/s, ${opts.durationMs / 1000} s each (interleaved)...`,
    );
    const [d, p, dl, n] = await latencyInterleaved([direct, proxy, delayed, nul], opts, opts.rate);
    return {
      broker: name,
      rows: [d, p, n, dl],
      nullAddedMedianMs: n.p50Ms - d.p50Ms,
      addedMedianMs: p.p50Ms - d.p50Ms,
      addedP99Ms: p.p99Ms - d.p99Ms,
      delayAddedMedianMs: dl.p50Ms - d.p50Ms,
      delayP50Ms: dl.p50Ms,
    };
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = (line) => process.stderr.write(`${line}\n`);
  const results = [];
  for (const name of opts.brokers) results.push(await runBroker(name, opts, log));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  const header = [
    'broker / path',
    'msgs/s',
    'p50 ms',
    'p99 ms',
    'CPU (broker or proxy)',
    'lost',
    'reordered',
  ];
  const body = results.flatMap((r) =>
    r.rows.map((row) => [
      row.broker,
      fmt(row.msgsPerSec, 0),
      fmt(row.p50Ms),
      fmt(row.p99Ms),
      `${fmt(row.brokerCpuPct, 1)}%`,
      String(row.accounting.lost),
      String(row.accounting.reordered),
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(line(b));
  console.log();
  for (const r of results) {
    console.log(
      `${r.broker}: the proxy adds ${fmt(r.addedMedianMs)} ms to the median over the path (publisher and subscriber both behind it: 2 crossings), ${fmt(r.addedMedianMs / 2)} ms per crossing; a null forwarder adds ${fmt(r.nullAddedMedianMs)} ms; p99 +${fmt(r.addedP99Ms)} ms`,
    );
    console.log(
      `${r.broker}: target median added < 0.100 ms: per crossing ${r.addedMedianMs / 2 < 0.1 ? 'PASS' : 'FAIL'}, whole path ${r.addedMedianMs < 0.1 ? 'PASS' : 'FAIL'}`,
    );
    console.log(
      `${r.broker}: --delay up:${DELAY_MS}: p50 ${fmt(r.delayP50Ms)} ms, added ${fmt(r.delayAddedMedianMs)} ms over direct (asked ${DELAY_MS}; error ${fmt(r.delayAddedMedianMs - DELAY_MS)} ms)`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`bench:proxy: ${err.stack ?? err}\n`);
  process.exit(1);
});
