/**
 * `mq bench sub` and `mq bench pub` in separate processes, as on two machines:
 *
 *   const { pub, sub } = await benchApart(broker.port, 2, ['--topic', 'a/#', ...], ['--topic', 'a/%i', ...], 20_000);
 *
 * The subscribers (`-c subs`) go through `mq proxy`, whose trace shows each one's SUBACK; only then
 * do the publishers start, straight to the broker.
 */
import { startMqProxy } from './proxy.js';
import { type ExitResult, spawnMq } from './spawn.js';

export async function benchApart(
  port: number,
  subs: number,
  subArgs: string[],
  pubArgs: string[],
  timeoutMs: number,
): Promise<{ pub: ExitResult; sub: ExitResult }> {
  const proxy = await startMqProxy(['--to', `mqtt://127.0.0.1:${port}`]);
  try {
    const sub = spawnMq(['bench', 'sub', '-p', String(proxy.port), '-c', String(subs), ...subArgs]);
    for (let i = 1; i <= subs; i++) {
      await proxy.proc.waitForLine(new RegExp(`\\[c${i}\\] broker->client SUBACK`), 10_000);
    }
    const pub = await spawnMq(['bench', 'pub', '-p', String(port), ...pubArgs]).exit(timeoutMs);
    // A failed pub: the subscribers would wait for messages that never come.
    return { pub, sub: pub.code === 0 ? await sub.exit(timeoutMs) : await sub.kill('SIGKILL') };
  } finally {
    await proxy.stop();
  }
}
