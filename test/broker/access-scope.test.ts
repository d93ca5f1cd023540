/**
 * Access rules a client could once walk around (issue 12, item 2):
 * - an ACL `pattern` substituted with a client id or user name holding '+', '#' or '/' (a client
 *   named '+' got 'devices/+/#', every device's tree): such a rule now matches nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';
import { killAll } from '../helpers/spawn.js';

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
