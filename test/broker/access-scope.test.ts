/**
 * Access rules a client could once walk around (issue 12, items 2, 3 and 10):
 * - an ACL `pattern` substituted with a client id or user name holding '+', '#' or '/' (a client
 *   named '+' got 'devices/+/#', every device's tree): such a rule now matches nothing;
 * - --deny-subscribe checked by containment only at SUBSCRIBE ('+/x', '+/+', '$share/g/+/x' were
 *   granted and delivered secret/x): filters inside the denied set are refused, wider ones granted
 *   but never delivered a denied topic, retained or live;
 * - maps keyed by what clients send: a client id, user name and topic '__proto__' are ordinary.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';
import { killAll, startMqBroker } from '../helpers/spawn.js';

const { broker, client, subscribe, pub } = brokerHarness();
const dir = mkdtempSync(join(tmpdir(), 'mq-access-scope-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Publishes and waits for the broker's PUBACK: 0 when accepted, else its (refusal) reason code. */
async function publish(c: TestClient, topic: string, payload: string, retain = false): Promise<number> {
  c.send(pub(topic, payload, 1, retain));
  const code = (await c.nextPacket('PUBACK')).reasonCode ?? 0;
  return code < 0x80 ? 0 : code;
}

describe('ACL patterns: a %c / %u value holding + # or / matches nothing (CVE-2017-7650)', () => {
  async function start() {
    const acl = join(dir, `acl-${Math.random().toString(16).slice(2)}`);
    writeFileSync(
      acl,
      [
        'pattern readwrite devices/%c/#',
        'pattern readwrite users/%u/#',
        'user admin',
        'topic readwrite #',
      ].join('\n'),
    );
    const b = await broker({ aclFile: acl, users: { admin: 'a', alice: 'a', '+': 'p', '#': 'p' } });
    // Device 'dev1' and device 'a' own their trees; alice her user tree.
    const dev1 = await client(b.port, { version: 5, clientId: 'dev1', username: 'alice', password: 'a' });
    expect(await publish(dev1, 'devices/dev1/state', 'dev1 retained', true)).toBe(0);
    const devA = await client(b.port, { version: 5, clientId: 'a', username: 'alice', password: 'a' });
    expect(await publish(devA, 'devices/a/b/secret', 'a retained', true)).toBe(0);
    expect(await publish(dev1, 'users/alice/inbox', 'alice retained', true)).toBe(0);
    return { b, dev1, devA };
  }

  test.each(['+', '#', 'a/b'])(
    'client id %j: no read (live or retained) and no write outside its scope',
    async (id) => {
      const { b, dev1, devA } = await start();
      const hostile = await client(b.port, { version: 5, clientId: id, username: 'alice', password: 'a' });
      // 'devices/+/#' (or 'devices/#/#', 'devices/a/b/#') as a pattern: nothing of it is granted.
      for (const filter of ['devices/+/#', 'devices/dev1/state', 'devices/a/b/secret', 'devices/#'])
        expect(await subscribe(hostile, filter), filter).toBe(0x87);
      expect(await publish(hostile, 'devices/dev1/cmd', 'forged')).toBe(0x87);
      expect(await publish(hostile, 'devices/a/b/secret', 'forged')).toBe(0x87);
      // The devices' own scopes still work.
      expect(await subscribe(dev1, 'devices/dev1/#')).toBe(0);
      expect((await dev1.nextPacket('PUBLISH')).payload.toString()).toBe('dev1 retained');
      expect(await subscribe(devA, 'devices/a/#')).toBe(0);
      expect((await devA.nextPacket('PUBLISH')).payload.toString()).toBe('a retained');
      expect(await dev1.nothing('PUBLISH', 100)).toBe(true);
      expect(await devA.nothing('PUBLISH', 50)).toBe(true);
      expect(hostile.pending().filter((p) => p.type === 'PUBLISH')).toEqual([]);
    },
  );

  test("%c and %u are substituted in one pass: a client id '%u' does not become the user name", async () => {
    const acl = join(dir, 'acl-one-pass');
    writeFileSync(acl, 'pattern readwrite site/%u/%c/#\n');
    const b = await broker({ aclFile: acl, users: { alice: 'a' } });
    const c = await client(b.port, { version: 5, clientId: '%u', username: 'alice', password: 'a' });
    expect(await subscribe(c, 'site/alice/alice/#')).toBe(0x87);
    expect(await subscribe(c, 'site/alice/%u/#')).toBe(0);
  });

  test("user name '+' (and '#'): %u patterns grant it nothing", async () => {
    const { b } = await start();
    for (const user of ['+', '#']) {
      const hostile = await client(b.port, { version: 5, username: user, password: 'p' });
      expect(await subscribe(hostile, 'users/alice/#')).toBe(0x87);
      expect(await subscribe(hostile, 'users/+/inbox')).toBe(0x87);
      expect(await publish(hostile, 'users/alice/inbox', 'forged')).toBe(0x87);
      expect(await hostile.nothing('PUBLISH', 100)).toBe(true);
    }
    const alice = await client(b.port, { version: 5, username: 'alice', password: 'a' });
    expect(await subscribe(alice, 'users/alice/#')).toBe(0);
    expect((await alice.nextPacket('PUBLISH')).payload.toString()).toBe('alice retained');
  });
});

describe("--deny-subscribe 'secret/#': no wildcard reaches a denied topic", () => {
  test('filters inside it are refused; wider ones granted but never given secret/..., retained or live', async () => {
    const b = await broker({ denySubscribe: ['secret/#'] });
    const p = await client(b.port, { version: 5 });
    expect(await publish(p, 'secret/x', 'hidden retained', true)).toBe(0);
    expect(await publish(p, 'open/x', 'open retained', true)).toBe(0);
    const c5 = await client(b.port, { version: 5 });
    const c4 = await client(b.port, { version: 4 });
    // Every topic they can match is denied: refused.
    expect(await subscribe(c5, ['secret/#', 'secret/+', 'secret/x', 'secret', '$share/g/secret/+'])).toEqual([
      0x87, 0x87, 0x87, 0x87, 0x87,
    ]);
    expect(await subscribe(c4, 'secret/+')).toBe(0x80);
    // Overlapping: granted.
    expect(await subscribe(c5, ['+/x', '+/+', '#'])).toEqual([0, 0, 0]);
    const shared = await client(b.port, { version: 5 });
    expect(await subscribe(shared, '$share/g/+/x')).toBe(0);
    expect(await subscribe(c4, '+/x')).toBe(0);
    // Retained: open/x only (once per matching subscription for v5).
    const retained = [
      await c5.nextPacket('PUBLISH'),
      await c5.nextPacket('PUBLISH'),
      await c5.nextPacket('PUBLISH'),
    ];
    expect(retained.map((m) => m.topic)).toEqual(['open/x', 'open/x', 'open/x']);
    expect((await c4.nextPacket('PUBLISH')).topic).toBe('open/x');
    // Live: secret/x reaches nobody, open/x everybody.
    p.send(pub('secret/x', 'hidden live', 1));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x10); // No matching subscribers
    expect(await publish(p, 'open/x', 'open live')).toBe(0);
    expect((await c4.nextPacket('PUBLISH')).payload.toString()).toBe('open live');
    expect((await shared.nextPacket('PUBLISH')).payload.toString()).toBe('open live');
    for (let i = 0; i < 3; i++) expect((await c5.nextPacket('PUBLISH')).payload.toString()).toBe('open live');
    for (const c of [c5, c4, shared]) expect(await c.nothing('PUBLISH', 100)).toBe(true);
  });

  test('--deny-publish is exact per topic, through a topic alias and a will too', async () => {
    const b = await broker({ denyPublish: ['secret/#'] });
    const s = await client(b.port, { version: 5 });
    expect(await subscribe(s, '#')).toBe(0);
    const p = await client(b.port, { version: 5 });
    p.send(pub('open/a', 'set alias', 1, { properties: { topicAlias: 1 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    p.send(pub('secret/a', 'alias 2', 1, { properties: { topicAlias: 2 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x87);
    p.send(pub('', 'via alias 2', 1, { properties: { topicAlias: 2 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x87);
    expect(await publish(p, 'secretx', 'not under secret/')).toBe(0);
    const w = await client(b.port, {
      version: 5,
      will: { topic: 'secret/w', payload: Buffer.from('w'), qos: 0, retain: false },
      expectSuccess: false,
    });
    expect(w.connack?.reasonCode).toBe(0x87);
    expect((await s.nextPacket('PUBLISH')).topic).toBe('open/a');
    expect((await s.nextPacket('PUBLISH')).topic).toBe('secretx');
    expect(await s.nothing('PUBLISH', 100)).toBe(true);
  });
});

describe("'__proto__' from the network is an ordinary name (spawned mq broker, --persist)", () => {
  test('a client id, a user name and a topic named __proto__; a persistent session across a restart', async () => {
    const file = join(dir, 'proto.db');
    const acl = join(dir, 'acl-proto');
    writeFileSync(
      acl,
      ['user __proto__', 'topic readwrite __proto__', 'topic readwrite __proto__/#'].join('\n'),
    );
    const args = ['--sys-interval', '0', '--persist', file, '--acl', acl, '--passwd', join(dir, 'passwd')];
    const { makePasswdLine } = await import('../../src/broker/index.js');
    writeFileSync(join(dir, 'passwd'), `${makePasswdLine('__proto__', 'pw')}\n`);
    const mq = await startMqBroker(args);
    const anon = await client(mq.port, { version: 5, clientId: '__proto__', expectSuccess: false });
    expect(anon.connack?.reasonCode).toBe(0x86);
    const login = { version: 5 as const, username: '__proto__', password: 'pw' };
    const sub = await client(mq.port, {
      ...login,
      clientId: '__proto__',
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    // '__proto__/#' matches '__proto__' too ('#' takes in the parent level).
    expect(await subscribe(sub, '__proto__/#', 1)).toBe(1);
    const p = await client(mq.port, { ...login, clientId: 'constructor' });
    expect(await publish(p, '__proto__', 'retained proto', true)).toBe(0);
    const live = await sub.nextPacket('PUBLISH');
    expect(live.payload.toString()).toBe('retained proto');
    sub.send({ type: 'PUBACK', packetId: live.packetId! });
    expect(await publish(p, 'toString', 'not allowed')).toBe(0x87);
    await sub.disconnect();
    expect(await publish(p, '__proto__/q', 'queued')).toBe(0);
    await mq.stop();
    const again = await startMqBroker(args);
    const back = await client(again.port, {
      ...login,
      clientId: '__proto__',
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    expect(back.connack?.sessionPresent).toBe(true);
    expect((await back.nextPacket('PUBLISH')).payload.toString()).toBe('queued');
    const fresh = await client(again.port, { ...login });
    expect(await subscribe(fresh, '__proto__')).toBe(0);
    expect((await fresh.nextPacket('PUBLISH')).payload.toString()).toBe('retained proto');
    await again.stop();
  });
});
