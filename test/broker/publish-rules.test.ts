/**
 * The rules a publication keeps, for a PUBLISH and for a will alike (issue 12, items 1 and 8):
 * --max-topic-levels (default 128) on topic names and filters, and one check (may-publish.ts) for
 * both paths, so a will can no longer write $SYS or go around --deny-publish and --acl.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { Will } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';
import { killAll, spawnMq } from '../helpers/spawn.js';

const { broker, sharedBroker, client, subscribe, pub } = brokerHarness();
const dir = mkdtempSync(join(tmpdir(), 'mq-publish-rules-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A topic of exactly `n` levels. */
function levels(n: number, first = 'l'): string {
  return [first, ...Array.from({ length: n - 1 }, (_, i) => String(i))].join('/');
}

function will(topic: string, extra: Partial<Will> = {}): Will {
  return { topic, payload: Buffer.from('w'), qos: 0, retain: false, ...extra };
}

describe('--max-topic-levels (default 128)', () => {
  const b = sharedBroker();

  test('128 levels go through: a filter and a topic name at the limit', async () => {
    const s = await client(b.port, { version: 5 });
    expect(await subscribe(s, levels(128, 'ok'))).toBe(0);
    expect(await subscribe(s, `$share/g/${levels(127, 'okshare')}/+`)).toBe(0);
    const p = await client(b.port, { version: 5 });
    p.send(pub(levels(128, 'ok'), 'deep', 1));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    expect((await s.nextPacket('PUBLISH')).payload.toString()).toBe('deep');
  });

  test('a PUBLISH of 129 levels: v5 PUBACK/PUBREC 0x90, DISCONNECT 0x90 at QoS 0; 3.1.1 disconnected', async () => {
    const s = await client(b.port, { version: 5 });
    expect(await subscribe(s, 'l/#')).toBe(0);
    const p = await client(b.port, { version: 5, clientId: 'too-deep' });
    p.send(pub(levels(129), 'x', 1));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x90);
    p.send(pub(levels(129), 'x', 2));
    expect((await p.nextPacket('PUBREC')).reasonCode).toBe(0x90);
    p.send(pub(levels(129), 'x', 0));
    expect((await p.nextPacket('DISCONNECT')).reasonCode).toBe(0x90);
    await b.waitForLog(/\[too-deep\] PUBLISH to 'l\/0\/1.*\.\.\.' has more than 128 topic levels/);
    const p4 = await client(b.port, { version: 4 });
    p4.send(pub(levels(129), 'x', 1));
    await p4.closed();
    expect(p4.pending()).toEqual([]);
    expect(await s.nothing('PUBLISH', 100)).toBe(true);
  });

  test('a filter of 129 levels: SUBACK 0x8F (3.1.1: 0x80), the others in the packet granted; UNSUBSCRIBE 0x8F', async () => {
    const c5 = await client(b.port, { version: 5 });
    expect(await subscribe(c5, [levels(129), 'fine', `$share/g/${levels(129)}`], undefined)).toEqual([
      0x8f, 0, 0x8f,
    ]);
    const c4 = await client(b.port, { version: 4 });
    expect(await subscribe(c4, levels(129))).toBe(0x80);
    c5.send({ type: 'UNSUBSCRIBE', packetId: 77, topicFilters: [levels(129), 'fine'] });
    expect((await c5.nextPacket('UNSUBACK')).reasonCodes).toEqual([0x8f, 0]);
  });

  test('a will of 129 levels: CONNACK 0x90', async () => {
    const c = await client(b.port, { version: 5, will: will(levels(129)), expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(0x90);
    await c.closed();
  });

  test('the limit is a flag: --max-topic-levels 4 refuses a fifth level', async () => {
    const small = await broker({ maxTopicLevels: 4 });
    const c = await client(small.port, { version: 5 });
    expect(await subscribe(c, [levels(4), levels(5), '+/+/+/#', '+/+/+/+/#'], undefined)).toEqual([
      0, 0x8f, 0, 0x8f,
    ]);
    const bad = await spawnMq(['broker', '--max-topic-levels', '0']).exit(10_000);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--max-topic-levels/);
    const help = await spawnMq(['broker', '--help']).exit(10_000);
    for (const flag of [
      '--max-topic-levels',
      '--max-user-properties',
      '--max-connect-size',
      '--max-subscriptions',
    ])
      expect(help.stdout).toContain(flag);
  });
});

describe('--max-subscriptions (default 10,000)', () => {
  test('a session holds at most that many: one more gets SUBACK 0x97 (3.1.1 0x80); replacing or unsubscribing frees none / one', async () => {
    const b = await broker({ maxSubscriptions: 3 });
    const c = await client(b.port, { version: 5, clientId: 'many-subs' });
    expect(await subscribe(c, ['a', 'b'])).toEqual([0, 0]);
    expect(await subscribe(c, ['c', 'd'])).toEqual([0, 0x97]);
    await b.waitForLog(
      /\[many-subs\] 1 subscription\(s\) refused: the session holds 3 \(--max-subscriptions\)/,
    );
    expect(await subscribe(c, ['a', 'e'])).toEqual([0, 0x97]);
    c.send({ type: 'UNSUBSCRIBE', packetId: 90, topicFilters: ['a'] });
    await c.nextPacket('UNSUBACK');
    expect(await subscribe(c, 'e')).toBe(0);
    const c4 = await client(b.port, { version: 4 });
    expect(await subscribe(c4, ['a', 'b', 'c'])).toEqual([0, 0, 0]);
    expect(await subscribe(c4, 'd')).toBe(0x80);
    // More filters in one packet than a session may hold: refused before it is decoded.
    const greedy = await client(b.port, { version: 5 });
    greedy.send({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: ['w', 'x', 'y', 'z'].map((topicFilter) => ({ topicFilter, qos: 0 as const })),
    });
    expect((await greedy.nextPacket('DISCONNECT')).reasonCode).toBe(0x97);
  });
});

describe('a will is held to every rule a PUBLISH is', () => {
  test('a will on $SYS is refused (CONNACK 0x87; 3.1.1: 5), so no spoofed retained $SYS/broker/version stays', async () => {
    const b = await broker({ sysInterval: 1 });
    const spoof = will('$SYS/broker/version', { payload: Buffer.from('spoofed'), retain: true });
    const c5 = await client(b.port, { version: 5, will: spoof, expectSuccess: false });
    expect(c5.connack?.reasonCode).toBe(0x87);
    const c4 = await client(b.port, { version: 4, will: spoof, expectSuccess: false });
    expect(c4.connack?.reasonCode).toBe(5);
    await b.waitForLog(/will to '\$SYS\/broker\/version' is not authorized/);
    const s = await client(b.port, { version: 4 });
    await subscribe(s, '$SYS/broker/version');
    expect((await s.nextPacket('PUBLISH')).payload.toString()).toBe('mq broker');
  });

  test('--deny-publish and --acl write rules apply to the will', async () => {
    const acl = join(dir, 'acl');
    writeFileSync(acl, ['user alice', 'topic readwrite alice/#'].join('\n'));
    const denied = await broker({ denyPublish: ['ro/#'] });
    const c = await client(denied.port, { version: 5, will: will('ro/x'), expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(0x87);
    const withAcl = await broker({ aclFile: acl, users: { alice: 'a' } });
    const other = await client(withAcl.port, {
      version: 5,
      username: 'alice',
      password: 'a',
      will: will('bob/x'),
      expectSuccess: false,
    });
    expect(other.connack?.reasonCode).toBe(0x87);
    await client(withAcl.port, { version: 5, username: 'alice', password: 'a', will: will('alice/x') });
  });

  test('--max-qos and --no-retain apply to the will (0x9B, 0x9A)', async () => {
    const qos = await broker({ maxQoS: 0 });
    const c = await client(qos.port, { version: 5, will: will('w', { qos: 1 }), expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(0x9b);
    const noRetain = await broker({ noRetain: true });
    const r = await client(noRetain.port, {
      version: 5,
      will: will('w', { retain: true }),
      expectSuccess: false,
    });
    expect(r.connack?.reasonCode).toBe(0x9a);
  });
});
