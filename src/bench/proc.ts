/**
 * Process measurements and port helpers shared by mq bench, the benchmarks in bench/ (through
 * dist/) and the tests: the one copy.
 *
 *   cpuSeconds(pid) / rssKiB(pid)   another process's CPU time and memory, from /proc (Linux)
 *   freePort() / waitForPort()      a port to give a spawned server, and waiting until it listens
 */
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

/** Clock ticks per second of /proc/PID/stat (USER_HZ: 100 on every Linux mq runs on). */
const CLOCK_TICKS = 100;

/**
 * CPU time of process `pid` in seconds: the sum of its threads' run time from
 * /proc/PID/task/TID/schedstat (nanoseconds; a thread that already exited is not counted), else
 * utime + stime from /proc/PID/stat (10 ms ticks: a 2,000-connection storm costs ~100-200 ms,
 * so ticks alone move a per-connection figure by 5-10%).
 */
export function cpuSeconds(pid: number): number {
  let ns = 0;
  let threads: string[] = [];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    // No /proc/PID/task (not Linux, or the process is gone): the tick counters below.
  }
  for (const tid of threads) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  if (ns > 0 && Number.isFinite(ns)) return ns / 1e9;
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces); rest[0] is field 3
  // (state), utime is field 14 and stime field 15.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
}

/** VmRSS of process `pid` in KiB, from /proc/PID/status. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** A port that was free a moment ago: bind port 0 on 127.0.0.1, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no address'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once a TCP connection to 127.0.0.1:port succeeds; rejects after timeoutMs, or as soon as
 * `isDead()` says the process that should listen has exited.
 */
export async function waitForPort(port: number, timeoutMs: number, isDead?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (isDead?.()) throw new Error(`process exited before port ${port} accepted connections`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ port, host: '127.0.0.1' });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => {
        sock.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`port ${port} did not accept connections within ${timeoutMs} ms`);
    // Polling a port that is not open yet: nothing to wait on but time.
    await new Promise((r) => setTimeout(r, 20));
  }
}
