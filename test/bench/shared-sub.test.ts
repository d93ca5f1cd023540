/**
 * sub mode on a shared subscription: each member receives only its share of each publisher's
 * sequence, so loss is counted over the group's members together (a member's own gaps are the
 * other members' messages, not losses).
 */
import { describe, expect, it } from 'vitest';
import { startBuiltinBroker } from '../../src/bench/builtin.js';
import { BenchSession, runBench } from '../../src/bench/engine.js';
import type { BenchOptions } from '../../src/bench/settings.js';

async function sharedRun(dropEvery: number | undefined, qos: 0 | 1) {
  const broker = await startBuiltinBroker(dropEvery !== undefined ? { dropEvery } : {});
  try {
    const target = { transport: 'mqtt' as const, host: broker.host, port: broker.port };
    const common: Partial<BenchOptions> = { workers: 0, warmupSec: 0, qos };
    const sub = await BenchSession.open({ mode: 'sub', target, subs: 3, filter: '$share/g/sh/+', ...common });
    // Lossless runs end on the count; a lossy one on its (bounded) duration.
    const receiving = sub.run(
      dropEvery === undefined ? { count: 1200, record: true } : { durationMs: 3000, record: true },
    );
    const pub = await runBench({ mode: 'pub', target, pubs: 2, topic: 'sh/%i', count: 600, ...common });
    await receiving;
    return { pub, sub: await sub.close() };
  } finally {
    await broker.close();
  }
}

describe('sub mode, $share', () => {
  it('three members of one group: every message once, none counted lost', async () => {
    const { pub, sub } = await sharedRun(undefined, 1);
    expect(pub.messages.sent).toBe(1200);
    expect(sub.messages).toMatchObject({ received: 1200, lost: 0, duplicated: 0 });
  });

  it('a broker that drops messages: the group counts them lost', async () => {
    const { pub, sub } = await sharedRun(10, 0);
    expect(sub.messages.lost).toBeGreaterThan(0);
    // Every message is received or lost, but for losses after the last one a member saw.
    expect(sub.messages.received + sub.messages.lost).toBeLessThanOrEqual(pub.messages.sent);
    expect(sub.messages.received + sub.messages.lost).toBeGreaterThanOrEqual(pub.messages.sent - 3);
  });
});
