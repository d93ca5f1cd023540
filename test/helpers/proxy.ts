/**
 * `bin/mq proxy` in tests: spawned with --listen 0 (and --ws-listen 0 when asked), resolved once it
 * printed where it listens.
 *
 *   const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${broker.port}`]);
 *   ... connect to 127.0.0.1:p.port ...
 *   await p.stop();   // SIGTERM: the proxy closes every connection and exits 0
 */
import { type ExitResult, type Spawned, spawnMq } from './spawn.js';

export interface MqProxy {
  port: number;
  /** Set when args include --ws-listen. */
  wsPort?: number;
  proc: Spawned;
  stop(): Promise<ExitResult>;
}

/** The text line, or with --json the listening object. */
const LISTENING =
  /^(?:mq proxy listening on mqtt:\/\/[^\s]+:(\d+) -> |\{"event":"listening","tcp":\{"host":"[^"]*","port":(\d+)\})/;
const LISTENING_WS = /^mq proxy listening on ws:\/\/[^\s]+:(\d+) -> /;

export async function startMqProxy(args: string[], timeoutMs = 10_000): Promise<MqProxy> {
  const proc = spawnMq(['proxy', '--listen', '0', ...args]);
  try {
    const line = await proc.waitForLine(LISTENING, timeoutMs);
    const proxy: MqProxy = {
      port: Number(
        LISTENING.exec(line)
          ?.slice(1)
          .find((g) => g !== undefined),
      ),
      proc,
      stop: () => proc.kill('SIGTERM', 5000),
    };
    if (args.includes('--ws-listen')) {
      proxy.wsPort = Number(LISTENING_WS.exec(await proc.waitForLine(LISTENING_WS, timeoutMs))?.[1]);
    }
    return proxy;
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
}

/** startMqProxy to the broker on 127.0.0.1:`port`, --trace off, then `args` (--delay, --drop-every...). */
export function quietProxyTo(port: number, args: string[] = []): Promise<MqProxy> {
  return startMqProxy(['--to', `mqtt://127.0.0.1:${port}`, '--trace', 'off', ...args]);
}
