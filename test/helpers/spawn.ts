/**
 * Spawning `bin/mq` (or any command) in tests, with colour off and bounded waits.
 *
 *   const p = spawnProcess('mosquitto_sub', ['-p', String(port), '-t', 'a/#', '-v']);
 *   await p.waitForLine(/^a\/b hello$/, 5000);
 *   const { code, stdout } = await p.exit(5000);     // waits for exit (SIGKILL after the timeout)
 *
 *   const mq = spawnMq(['decode', '300d0004']);       // bin/mq with NO_COLOR=1
 *
 *   const broker = await startMqBroker(['--persist', file]);   // bin/mq broker --port 0 ...
 *   ... 127.0.0.1:broker.port ...
 *   await broker.stop();                              // SIGTERM (graceful); broker.kill9() for crashes
 *
 * Every process started here is remembered; `killAll()` (call it in afterAll) kills the ones still
 * running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MQ_BIN = join(ROOT, 'bin', 'mq');

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, then stdin is closed. Without it stdin stays open (use `proc.stdin`). */
  input?: string | Buffer;
}

export interface Spawned {
  proc: ChildProcess;
  pid: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Complete stdout lines so far. */
  lines(): string[];
  /**
   * Resolves with the first stdout line (existing or future) matching `re`; rejects after
   * timeoutMs or when the process exits first. Use `stream: 'stderr'` for stderr.
   */
  waitForLine(re: RegExp, timeoutMs: number, stream?: 'stdout' | 'stderr'): Promise<string>;
  /** Resolves once `count` stdout lines exist (bounded, like waitForLine). */
  waitForLines(count: number, timeoutMs: number): Promise<string[]>;
  /** Waits for the process to exit; SIGKILLs it after timeoutMs and rejects. */
  exit(timeoutMs: number): Promise<ExitResult>;
  /** Sends a signal and waits (bounded) for exit; SIGKILL after timeoutMs. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitResult>;
  readonly exited: boolean;
}

const running = new Set<ChildProcess>();

/** Kills (SIGKILL) every process spawned through this module that is still running. */
export async function killAll(): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const proc of running) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    waits.push(new Promise((resolve) => proc.once('exit', () => resolve())));
    proc.kill('SIGKILL');
  }
  await Promise.all(waits);
  running.clear();
}

export function spawnProcess(command: string, args: string[], options: SpawnOptions = {}): Spawned {
  const proc = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(proc);
  let stdout = '';
  let stderr = '';
  let exitResult: ExitResult | undefined;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  proc.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    notify();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    notify();
  });
  const exitPromise = new Promise<ExitResult>((resolve) => {
    // 'close' fires after stdio is drained, so stdout is complete.
    proc.once('close', (code, signal) => {
      running.delete(proc);
      exitResult = { code, signal, stdout, stderr };
      notify();
      resolve(exitResult);
    });
    proc.once('error', (err) => {
      stderr += `\nspawn error: ${err.message}`;
      running.delete(proc);
      exitResult = { code: null, signal: null, stdout, stderr };
      notify();
      resolve(exitResult);
    });
  });
  proc.stdin?.on('error', () => {
    // EPIPE when the process exits without reading stdin: not a test failure by itself.
  });
  if (options.input !== undefined) proc.stdin?.end(options.input);

  const splitLines = (text: string) => {
    const parts = text.split('\n');
    parts.pop(); // the incomplete tail (or '' after a final newline)
    return parts;
  };

  /** Polls `check` on every output/exit event until it returns a value; bounded. */
  const waitFor = <T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const first = check();
      if (first !== undefined) {
        resolve(first);
        return;
      }
      const done = () => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      const listener = () => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (exitResult !== undefined) {
          done();
          reject(
            new Error(
              `${command} exited (code ${exitResult.code}, signal ${exitResult.signal}) before ${what}\nstdout: ${stdout}\nstderr: ${stderr}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${stdout}\nstderr: ${stderr}`,
          ),
        );
      }, timeoutMs);
      listeners.add(listener);
    });

  /** The exit, or 'timeout' (and SIGKILL sent) when the process runs past timeoutMs. */
  const exitWithin = async (timeoutMs: number): Promise<ExitResult | 'timeout'> => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const r = await Promise.race([exitPromise, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') proc.kill('SIGKILL');
    return r;
  };
  const self: Spawned = {
    proc,
    pid: proc.pid ?? -1,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get exited() {
      return exitResult !== undefined;
    },
    lines: () => splitLines(stdout),
    waitForLine: (re, timeoutMs, stream = 'stdout') =>
      waitFor(`a ${stream} line matching ${re}`, timeoutMs, () =>
        splitLines(stream === 'stdout' ? stdout : stderr).find((l) => re.test(l)),
      ),
    waitForLines: (count, timeoutMs) =>
      waitFor(`${count} stdout lines`, timeoutMs, () => {
        const ls = splitLines(stdout);
        return ls.length >= count ? ls : undefined;
      }),
    exit: async (timeoutMs) => {
      const r = await exitWithin(timeoutMs);
      if (r === 'timeout') {
        await exitPromise;
        throw new Error(
          `${command} ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        );
      }
      return r;
    },
    kill: async (signal = 'SIGTERM', timeoutMs = 5000) => {
      if (exitResult !== undefined) return exitResult;
      proc.kill(signal);
      const r = await exitWithin(timeoutMs);
      return r === 'timeout' ? exitPromise : r;
    },
  };
  return self;
}

/** `bin/mq ARGS` with NO_COLOR=1. */
export function spawnMq(args: string[], options: SpawnOptions = {}): Spawned {
  return spawnProcess(process.execPath, [MQ_BIN, ...args], options);
}

/** A shell word: `it's` -> `'it'\''s'`. */
function shellWord(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * `bin/mq ARGS` on a pseudo-terminal (util-linux `script`, in Debian's essential bsdutils): its
 * stdout and stderr are a TTY, both read back (merged, with the terminal's `\r\n` line ends) as
 * the Spawned's stdout. NO_COLOR=1, so what remains of escape sequences came from elsewhere.
 */
export function spawnMqOnTty(args: string[], options: SpawnOptions = {}): Spawned {
  const command = [process.execPath, MQ_BIN, ...args].map(shellWord).join(' ');
  return spawnProcess('script', ['-qefc', command, '/dev/null'], options);
}

export interface MqBroker {
  port: number;
  /** Set when `--ws-port 0` was given and the broker printed a ws:// listening line. */
  wsPort?: number;
  pid: number;
  proc: Spawned;
  /** SIGTERM (graceful shutdown), SIGKILL after 5 s. */
  stop(): Promise<ExitResult>;
  /** SIGKILL, for crash tests. */
  kill9(): Promise<ExitResult>;
}

const LISTENING = /^mq broker listening on mqtt:\/\/[^\s:]+:(\d+)/;
const LISTENING_WS = /^mq broker listening on ws:\/\/[^\s:]+:(\d+)/;

/**
 * Spawns `bin/mq broker --port 0 ARGS` and waits (bounded) for
 * `mq broker listening on mqtt://127.0.0.1:PORT` on stdout.
 */
export async function startMqBroker(args: string[] = [], timeoutMs = 10_000): Promise<MqBroker> {
  const proc = spawnMq(['broker', '--port', '0', ...args]);
  let line: string;
  try {
    line = await proc.waitForLine(LISTENING, timeoutMs);
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
  const port = Number(LISTENING.exec(line)?.[1]);
  const broker: MqBroker = {
    port,
    pid: proc.pid,
    proc,
    stop: () => proc.kill('SIGTERM', 5000),
    kill9: () => proc.kill('SIGKILL', 5000),
  };
  if (args.includes('--ws-port')) {
    const wsLine = await proc.waitForLine(LISTENING_WS, timeoutMs);
    broker.wsPort = Number(LISTENING_WS.exec(wsLine)?.[1]);
  }
  return broker;
}

// /proc readers: the one copy lives in src/bench/proc.ts.
export { cpuSeconds, rssKiB } from '../../src/bench/proc.js';

export interface BrokerUnderTest {
  name: 'mq' | 'mosquitto';
  port: number;
  wsPort?: number;
  stop(): Promise<void>;
}

/**
 * The broker an interop test talks to: `mq broker` (spawned from bin/mq, `--port 0`) by default;
 * `MQ_INTEROP_BROKER=mosquitto` runs the same test against a real Mosquitto instead, to check the
 * test itself.
 */
export async function startBrokerUnderTest(args: string[] = []): Promise<BrokerUnderTest> {
  if (process.env.MQ_INTEROP_BROKER === 'mosquitto') {
    const { startMosquitto } = await import('./mosquitto.js');
    const m = await startMosquitto();
    return { name: 'mosquitto', port: m.port, stop: m.stop };
  }
  const b = await startMqBroker(args);
  return {
    name: 'mq',
    port: b.port,
    stop: async () => {
      await b.stop();
    },
  };
}
