/**
 * Starts a real Mosquitto (Debian's /usr/sbin/mosquitto) on a free loopback port, for interop
 * tests and benchmarks. Only for tests under test/interop (the package may be missing elsewhere).
 *
 *   const mosq = await startMosquitto();                       // TCP only
 *   const mosq = await startMosquitto({ websockets: true });   // + MQTT over WebSocket on mosq.wsPort
 *   const mosq = await startMosquitto({ extraConfig: ['max_inflight_messages 64'] });
 *   ... connect to 127.0.0.1:mosq.port ...
 *   await mosq.stop();                                         // in afterAll
 *
 * Ports come from a probe (bind port 0, read it, close): a race with another process is possible
 * but rare; startMosquitto retries with fresh ports if Mosquitto fails to bind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from '../../src/bench/proc.js';

// The one copy of the port helpers lives in src/bench/proc.ts (bench/ uses it through dist/).
export { freePort, waitForPort };

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** Also open a WebSocket listener (on `lo`: `127.0.0.1` with websockets binds every interface). */
  websockets?: boolean;
  /** Extra lines appended to the config, e.g. `max_queued_messages 100000`. */
  extraConfig?: string[];
  /** How long to wait for the listener(s) to accept connections. Default 5000 ms. */
  startTimeoutMs?: number;
}

export interface MosquittoHandle {
  port: number;
  wsPort?: number;
  /** The broker's process id (for /proc/PID/stat and /proc/PID/status in benchmarks). */
  pid: number;
  proc: ChildProcess;
  /** Everything Mosquitto wrote to stderr/stdout so far (for failure messages). */
  log(): string;
  /** SIGTERM, then SIGKILL after 2 s; resolves when the process has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Waits for a child to exit, SIGKILL after graceMs. */
export function stopProcess(
  proc: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 2000,
): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill(signal);
  });
}

async function startOnce(options: MosquittoOptions): Promise<MosquittoHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'mq-mosquitto-'));
  const port = await freePort();
  const wsPort = options.websockets ? await freePort() : undefined;
  const lines = [`listener ${port} 127.0.0.1`, 'allow_anonymous true'];
  if (wsPort !== undefined) lines.push(`listener ${wsPort} lo`, 'protocol websockets');
  lines.push(...(options.extraConfig ?? []));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);

  const proc = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  let dead = false;
  proc.once('exit', () => {
    dead = true;
  });
  proc.once('error', (err) => {
    dead = true;
    output += String(err);
  });
  let stopped: Promise<void> | undefined;
  const handle: MosquittoHandle = {
    port,
    pid: proc.pid ?? -1,
    proc,
    log: () => output,
    stop: () => {
      stopped ??= stopProcess(proc).then(() => rmSync(dir, { recursive: true, force: true }));
      return stopped;
    },
  };
  if (wsPort !== undefined) handle.wsPort = wsPort;
  try {
    const timeout = options.startTimeoutMs ?? 5000;
    await waitForPort(port, timeout, () => dead);
    if (wsPort !== undefined) await waitForPort(wsPort, timeout, () => dead);
  } catch (err) {
    await handle.stop();
    throw new Error(`mosquitto did not start: ${(err as Error).message}\n${output}`);
  }
  return handle;
}

/** Starts Mosquitto; retries twice with new ports if the probed port was taken meanwhile. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoHandle> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}
