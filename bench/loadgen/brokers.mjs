// Starting and stopping the brokers under test (their CPU time and RSS: cpuSeconds / rssKiB from
// dist/bench, the one copy of the /proc readers).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from '../../dist/bench/index.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * --pin: the CPU every broker runs on (taskset), the generator being kept on the others, so that
 * the two do not preempt each other on one CPU (see bench/broker.mjs). undefined: not pinned.
 */
export const pinning = { brokerCpu: undefined };

/** `cmd args`, run through taskset when the brokers are pinned (taskset execs: same pid). */
function pinned(cmd, args) {
  if (pinning.brokerCpu === undefined) return [cmd, args];
  return ['taskset', ['-c', String(pinning.brokerCpu), cmd, ...args]];
}

/** Spawns `cmd args` and waits for a stdout line matching `re`; resolves with [proc, match]. */
function spawnAndWait(cmd, args, re, timeoutMs, options = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(...pinned(cmd, args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${cmd}: no line matching ${re} within ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        // From here on, output is drained and dropped (a broker's log must not pile up here).
        proc.stdout.removeAllListeners('data');
        proc.stderr.removeAllListeners('data');
        const log = process.env.MQ_BENCH_LOG;
        if (log !== undefined && log !== '') {
          // MQ_BENCH_LOG=FILE keeps the brokers' output instead (e.g. with --trace-gc).
          const file = createWriteStream(log, { flags: 'a' });
          file.write(`--- ${cmd} ${args.join(' ')}\n${out}`);
          proc.stdout.pipe(file, { end: false });
          proc.stderr.pipe(file, { end: false });
        } else {
          proc.stdout.resume();
          proc.stderr.resume();
        }
        resolve([proc, m]);
      }
    });
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code ?? signal}) during start-up\n${out}\n${err}`));
    });
  });
}

function stopper(proc, cleanup) {
  return () =>
    new Promise((resolve) => {
      const done = () => {
        cleanup?.();
        resolve();
      };
      if (proc.exitCode !== null || proc.signalCode !== null) return done();
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      proc.once('exit', () => {
        clearTimeout(t);
        done();
      });
      proc.kill('SIGTERM');
    });
}

/** The whitespace-separated words of environment variable `name` ([] when unset). */
function envWords(name) {
  return (process.env[name] ?? '').split(/\s+/).filter(Boolean);
}

// MQ_BENCH_NODE_FLAGS: node flags for the mq broker process only (experiments, e.g. --trace-gc).
async function startMq(
  extraArgs = [],
  flags = envWords('MQ_BENCH_NODE_FLAGS'),
  name = 'mq',
  bin = join(ROOT, 'bin', 'mq'),
) {
  const [proc, m] = await spawnAndWait(
    process.execPath,
    // -q: no per-connection log lines, like Mosquitto's `log_type error` below.
    [...flags, bin, 'broker', '--port', '0', '-q', ...extraArgs],
    /mq broker listening on mqtt:\/\/[^\s:]+:(\d+)/,
    10_000,
    { env: { ...process.env, NO_COLOR: '1' } },
  );
  return { name, port: Number(m[1]), pid: proc.pid, stop: stopper(proc) };
}

/** Mosquitto with the load-test config of NOTES.md, plus `extra` config lines. */
async function startMosquitto(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'mq-bench-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'max_queued_messages 100000',
      'max_inflight_messages 64',
      'log_type error',
      ...extra,
      '',
    ].join('\n'),
  );
  const proc = spawn(...pinned('/usr/sbin/mosquitto', ['-c', conf]), { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr.resume();
  let dead = false;
  proc.once('exit', () => {
    dead = true;
  });
  try {
    await waitForPort(port, 5000, () => dead);
  } catch (err) {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    name: 'mosquitto',
    port,
    pid: proc.pid,
    stop: stopper(proc, () => rmSync(dir, { recursive: true, force: true })),
  };
}

const AEDES_SCRIPT = `
import net from 'node:net';
import { Aedes } from 'aedes';
const aedes = await Aedes.createBroker();
const server = net.createServer((socket) => { socket.setNoDelay(true); aedes.handle(socket); });
server.listen(0, '127.0.0.1', () => { console.log('aedes listening on ' + server.address().port); });
process.on('SIGTERM', () => { server.close(); aedes.close(() => process.exit(0)); });
`;

async function startAedes() {
  const [proc, m] = await spawnAndWait(
    process.execPath,
    ['--input-type=module', '-e', AEDES_SCRIPT],
    /aedes listening on (\d+)/,
    10_000,
  );
  return { name: 'aedes', port: Number(m[1]), pid: proc.pid, stop: stopper(proc) };
}

async function startNull() {
  const [proc, m] = await spawnAndWait(
    process.execPath,
    [join(ROOT, 'bench', 'loadgen', 'null-broker.mjs')],
    /null broker listening on (\d+)/,
    10_000,
  );
  return { name: 'null', port: Number(m[1]), pid: proc.pid, stop: stopper(proc) };
}

export const BROKERS = {
  null: startNull,
  mq: startMq,
  mqx: () =>
    startMq(envWords('MQ_BENCH_X_ARGS'), envWords('MQ_BENCH_X_FLAGS'), 'mqx', process.env.MQ_BENCH_X_BIN),
  mosquitto: startMosquitto,
  aedes: startAedes,
};
