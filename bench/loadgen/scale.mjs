// The scale scenario: a broker holding many idle connections (default 100,000) while a live
// publisher and subscriber keep going; reports the broker's RSS (total and per connection) and the
// live flow's delivery latency with every connection held.
//
// Limits of the machine, detected and reported instead of failing:
// - the broker's open-file limit (/proc/PID/limits): one descriptor per connection, so N is cut
//   to what the limit leaves (a row says so, and what its RSS per connection extrapolates to);
// - the generator's: the idle connections are held by child processes (idle-holder.mjs), each
//   within its own open-file limit;
// - ephemeral ports: ~28,000 per (source address, destination) on Linux, so each child dials
//   from its own 127.0.0.x source address.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuSeconds, rssKiB } from '../../dist/bench/index.js';
import { ROOT } from './brokers.mjs';

/** Descriptors kept free in the broker for its listeners, logs and the live clients. */
const BROKER_FD_RESERVE = 100;
/** Descriptors a holder process keeps for itself (node, its pipes). */
const HOLDER_FD_RESERVE = 200;
/** Connections per source address: below Linux's default ephemeral range (32768-60999). */
const PORTS_PER_ADDRESS = 25_000;
/** The live flow's rate while the connections are held (messages per second). */
const LIVE_RATE = 1000;

/** The soft open-file limit of process `pid` (Infinity when unlimited). */
export function openFileLimit(pid = 'self') {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  if (!m) throw new Error(`no open-file limit in /proc/${pid}/limits`);
  return {
    soft: Number(m[1] === 'unlimited' ? Infinity : m[1]),
    hard: Number(m[2] === 'unlimited' ? Infinity : m[2]),
  };
}

function openFiles(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** One holder process: resolves with it once its connections are up (or failed). */
function startHolder(port, count, localAddress, prefix) {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [join(ROOT, 'bench', 'loadgen', 'idle-holder.mjs'), String(port), String(count), localAddress, prefix],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let out = '';
    const onData = (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      proc.stdout.off('data', onData);
      proc.off('exit', onExit);
      resolve({ proc, counts: JSON.parse(out.slice(0, nl)) });
    };
    const onExit = (code) => reject(new Error(`idle-holder exited (${code}) before its connections were up`));
    proc.stdout.on('data', onData);
    proc.once('exit', onExit);
  });
}

/** Closes a holder's stdin (it disconnects and exits); resolves when it has. */
function stopHolder(h) {
  return new Promise((resolve) => {
    if (h.proc.exitCode !== null) return resolve();
    const t = setTimeout(() => h.proc.kill('SIGKILL'), 15_000);
    h.proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    h.proc.stdin.end();
  });
}

/**
 * `opts.connections` idle connections (default 100,000, cut to the broker's open-file limit) next
 * to a live 1k msg/s flow (`liveSession(broker, rate)`, the latency scenario's), which runs while
 * they connect and is measured for `opts.durationMs` once they are all held.
 */
export async function scale(broker, opts, liveSession) {
  const wanted = opts.connections ?? 100_000;
  const limit = openFileLimit(broker.pid);
  const room = limit.soft - openFiles(broker.pid) - BROKER_FD_RESERVE;
  const n = Math.max(0, Math.min(wanted, room));
  const own = openFileLimit();
  const perHolder = Math.max(1, Math.min(own.soft - HOLDER_FD_RESERVE, PORTS_PER_ADDRESS));
  const live = await liveSession(broker, LIVE_RATE);
  await live.send(2000, false);
  const rss0 = rssKiB(broker.pid);
  const cpu0 = cpuSeconds(broker.pid);
  const t0 = performance.now();
  const holders = [];
  let connected = 0;
  let failed = 0;
  try {
    // Holders connect one after another (the live flow goes on meanwhile): a connection storm of
    // `perHolder` at a time, as many clients as one process can hold.
    const starting = (async () => {
      for (let k = 0, left = n; left > 0; k++) {
        const count = Math.min(perHolder, left);
        const h = await startHolder(broker.port, count, `127.0.0.${2 + k}`, `scale-${broker.name}-${k}`);
        holders.push(h);
        connected += h.counts.connected;
        failed += h.counts.failed;
        left -= count;
      }
    })();
    let done = false;
    starting.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    while (!done) await live.send(500, false);
    await starting;
    const connectSec = (performance.now() - t0) / 1000;
    const connectCpu = cpuSeconds(broker.pid) - cpu0;
    await live.send(opts.durationMs, true);
    const rss1 = rssKiB(broker.pid);
    const kib = connected > 0 ? (rss1 - rss0) / connected : null;
    const row = await live.finish();
    return {
      ...row,
      scenario: `scale ${n.toLocaleString('en-US')} idle + 1k msg/s`,
      wanted,
      connections: n,
      connected,
      failed,
      fdLimit: limit.soft,
      cappedByFdLimit: n < wanted,
      connectsPerSec: connected / connectSec,
      cpuMsPer1k: connected > 0 ? (connectCpu * 1e6) / connected : null,
      rssKiB: rss1,
      rssBeforeKiB: rss0,
      kibPerConnection: kib,
      /** RSS the broker would have with `wanted` connections at this cost per connection. */
      extrapolatedMiB: kib === null ? null : (rss0 + kib * wanted) / 1024,
    };
  } finally {
    await Promise.all(holders.map(stopHolder));
  }
}
