/** Limits, $SYS, authentication, ACLs, malformed packets. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { Connection } from '../../src/broker/connection.js';
import { makePasswdLine } from '../../src/broker/index.js';
import { encode } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, client, subscribe, pub } = brokerHarness();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-auth-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('limits', () => {
  test('--max-connections: one more gets CONNACK Server busy (v5) / Server unavailable (3.1.1)', async () => {
    const b = await broker({ maxConnections: 2 });
    await client(b.port, { version: 5 });
    await client(b.port, { version: 4 });
    const c5 = await client(b.port, { version: 5, expectSuccess: false });
    expect(c5.connack?.reasonCode).toBe(0x89);
    await c5.closed();
    const c4 = await client(b.port, { version: 4, expectSuccess: false });
    expect(c4.connack?.reasonCode).toBe(3);
    await b.waitForLog(/--max-connections 2 reached/);
  });

  test('--max-queued: the newest messages are dropped, counted in $SYS and logged', async () => {
    const b = await broker({ maxQueued: 2 });
    const s = await client(b.port, { version: 4, clientId: 'mq-sub', clean: false });
    await subscribe(s, 'mq/q', 1);
    await s.disconnect();
    const p = await client(b.port, { version: 4 });
    for (let i = 0; i < 5; i++) {
      p.send(pub('mq/q', String(i), 1));
      await p.nextPacket('PUBACK');
    }
    expect(b.broker.stats.messagesDropped).toBe(3);
    await b.waitForLog(/\[mq-sub\] dropped \d+ message\(s\): queue full \(--max-queued 2\)/);
    const back = await client(b.port, { version: 4, clientId: 'mq-sub', clean: false });
    const got = [await back.nextPacket('PUBLISH'), await back.nextPacket('PUBLISH')];
    expect(got.map((m) => m.payload.toString())).toEqual(['0', '1']);
  });
});

describe('$SYS', () => {
  test('$SYS/broker/... topics are published retained and updated every --sys-interval', async () => {
    const b = await broker({ sysInterval: 1 });
    const s = await client(b.port, { version: 4 });
    await subscribe(s, '$SYS/broker/#');
    const seen = new Map<string, string>();
    while (seen.size < 12) {
      const m = await s.nextPacket('PUBLISH');
      seen.set(m.topic, m.payload.toString());
    }
    for (const t of [
      'uptime',
      'clients/connected',
      'messages/received',
      'messages/sent',
      'bytes/received',
      'bytes/sent',
      'publish/messages/dropped',
      'publish/messages/received',
      'publish/messages/sent',
      'clients/maximum',
      'clients/disconnected',
    ]) {
      expect(seen.has(`$SYS/broker/${t}`)).toBe(true);
    }
    expect(seen.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/);
    // A later update reflects the new connection.
    for (;;) {
      const m = await s.nextPacket('PUBLISH', 3000);
      if (m.topic === '$SYS/broker/clients/connected') {
        expect(m.payload.toString()).toBe('1');
        break;
      }
    }
    // Like Mosquitto: messages/received counts every packet (CONNECT, SUBSCRIBE), publish/... PUBLISH only.
    for (;;) {
      const m = await s.nextPacket('PUBLISH', 3000);
      if (m.topic === '$SYS/broker/messages/received') {
        expect(Number(m.payload.toString())).toBeGreaterThanOrEqual(2);
        break;
      }
    }
    expect(seen.get('$SYS/broker/publish/messages/received')).toBe('0');
    expect(b.broker.stats.messagesReceived).toBe(0);
  });

  test('clients cannot publish to $SYS (v5 PUBACK 0x87)', async () => {
    const b = await broker();
    const c = await client(b.port, { version: 5 });
    c.send(pub('$SYS/broker/uptime', 'fake', 1));
    expect((await c.nextPacket('PUBACK')).reasonCode).toBe(0x87);
  });
});

describe('authentication', () => {
  test('--auth: good credentials connect; bad ones get 0x86 (v5) / 4 (3.1.1); anonymous is refused', async () => {
    const b = await broker({ users: { alice: 'secret' } });
    await client(b.port, { version: 5, username: 'alice', password: 'secret' });
    const bad5 = await client(b.port, {
      version: 5,
      username: 'alice',
      password: 'nope',
      expectSuccess: false,
    });
    expect(bad5.connack?.reasonCode).toBe(0x86);
    const bad4 = await client(b.port, {
      version: 4,
      username: 'alice',
      password: 'nope',
      expectSuccess: false,
    });
    expect(bad4.connack?.reasonCode).toBe(4);
    const anon = await client(b.port, { version: 4, expectSuccess: false });
    expect(anon.connack?.reasonCode).toBe(4);
  });

  test('--passwd: scrypt entries made by makePasswdLine', async () => {
    const file = join(dir, 'passwd');
    const line = makePasswdLine('bob', 'hunter2');
    expect(line).toMatch(/^bob:\$scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    writeFileSync(file, `# users\n${line}\n`);
    const b = await broker({ passwdFile: file });
    await client(b.port, { version: 4, username: 'bob', password: 'hunter2' });
    const bad = await client(b.port, {
      version: 5,
      username: 'bob',
      password: 'hunter3',
      expectSuccess: false,
    });
    expect(bad.connack?.reasonCode).toBe(0x86);
  });

  test('v5 enhanced authentication on a broker without users is refused with 0x8C', async () => {
    const b = await broker();
    const c = await client(b.port, {
      version: 5,
      properties: { authenticationMethod: 'SCRAM-SHA-1' },
      expectSuccess: false,
    });
    expect(c.connack?.reasonCode).toBe(0x8c);
  });
});

describe('access control', () => {
  test('--acl (mosquitto acl_file): per-user topics, patterns with %u/%c, anonymous rules', async () => {
    const acl = join(dir, 'acl');
    writeFileSync(
      acl,
      [
        '# anonymous',
        'topic read public/#',
        '',
        'user alice',
        'topic readwrite alice/#',
        'topic deny alice/secret',
        'pattern readwrite users/%u/#',
        'pattern write clients/%c',
      ].join('\n'),
    );
    const b = await broker({ aclFile: acl, users: { alice: 'a', bob: 'b' } });
    const alice = await client(b.port, { version: 5, clientId: 'alice-1', username: 'alice', password: 'a' });
    const bob = await client(b.port, { version: 4, username: 'bob', password: 'b' });
    expect(await subscribe(alice, 'alice/#')).toBe(0);
    expect(await subscribe(alice, 'users/alice/+')).toBe(0);
    expect(await subscribe(alice, 'users/bob/+')).toBe(0x87);
    expect(await subscribe(alice, '#')).toBe(0x87);
    expect(await subscribe(bob, 'alice/x')).toBe(0x80);
    expect(await subscribe(bob, 'users/bob/#')).toBe(0);
    // Publish checks: allowed, denied (v5 PUBACK 0x87, not delivered).
    bob.send(pub('users/bob/in', 'own topic', 1));
    expect((await bob.nextPacket('PUBLISH')).payload.toString()).toBe('own topic');
    alice.send(pub('users/bob/in', 'not hers', 1));
    expect((await alice.nextPacket('PUBACK')).reasonCode).toBe(0x87);
    alice.send(pub('alice/news', 'mine', 1));
    expect((await alice.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    expect((await alice.nextPacket('PUBLISH')).payload.toString()).toBe('mine');
    alice.send(pub('alice/secret', 'no', 1));
    expect((await alice.nextPacket('PUBACK')).reasonCode).toBe(0x87);
    alice.send(pub('clients/alice-1', 'ok', 1));
    expect((await alice.nextPacket('PUBACK')).reasonCode ?? 0).toBeLessThan(0x80);
    await b.waitForLog(/not authorized to publish to 'alice\/secret'/);
  });

  test('--acl read access is checked per message: a wildcard subscription gets no denied topics', async () => {
    const acl = join(dir, 'acl-read');
    writeFileSync(
      acl,
      ['user alice', 'topic read #', 'topic deny secret/#', 'user bob', 'topic write #'].join('\n'),
    );
    const b = await broker({ aclFile: acl, users: { alice: 'a', bob: 'b' } });
    const bob = await client(b.port, { version: 5, username: 'bob', password: 'b' });
    // Retained before the subscription: only readable ones are delivered on subscribe.
    bob.send({ ...pub('secret/r', 'hidden retained', 1), retain: true });
    await bob.nextPacket('PUBACK');
    bob.send({ ...pub('public/r', 'open retained', 1), retain: true });
    await bob.nextPacket('PUBACK');
    const alice = await client(b.port, { version: 4, username: 'alice', password: 'a' });
    const shared = await client(b.port, { version: 5, username: 'alice', password: 'a' });
    expect(await subscribe(alice, '#', 1)).toBe(1);
    expect(await subscribe(shared, '$share/g/#', 1)).toBe(1);
    expect((await alice.nextPacket('PUBLISH')).payload.toString()).toBe('open retained');
    for (const [topic, text] of [
      ['secret/x', 'hidden'],
      ['secret', 'hidden too'],
      ['public/x', 'visible'],
    ] as const) {
      bob.send(pub(topic, text, 1));
      await bob.nextPacket('PUBACK');
    }
    const got = await alice.nextPacket('PUBLISH');
    expect(`${got.topic} ${got.payload.toString()}`).toBe('public/x visible');
    const viaShare = await shared.nextPacket('PUBLISH');
    expect(`${viaShare.topic} ${viaShare.payload.toString()}`).toBe('public/x visible');
    expect(await alice.nothing('PUBLISH', 150)).toBe(true);
    expect(shared.pending()).toEqual([]);
  });

  test('--acl: a session resumed under another user keeps only the queued messages that user may read', async () => {
    const acl = join(dir, 'acl-resume');
    writeFileSync(
      acl,
      ['user alice', 'topic read a/#', 'user bob', 'topic read #', 'user carol', 'topic write #'].join('\n'),
    );
    const b = await broker({ aclFile: acl, users: { alice: 'a', bob: 'b', carol: 'c' } });
    const asBob = await client(b.port, {
      version: 4,
      clientId: 'resume',
      clean: false,
      username: 'bob',
      password: 'b',
    });
    expect(await subscribe(asBob, '#', 1)).toBe(1);
    await asBob.disconnect();
    const carol = await client(b.port, { version: 4, username: 'carol', password: 'c' });
    for (const topic of ['b/1', 'a/1']) {
      carol.send(pub(topic, topic, 1));
      await carol.nextPacket('PUBACK');
    }
    const asAlice = await client(b.port, {
      version: 4,
      clientId: 'resume',
      clean: false,
      username: 'alice',
      password: 'a',
    });
    expect(asAlice.connack?.sessionPresent).toBe(true);
    expect((await asAlice.nextPacket('PUBLISH')).topic).toBe('a/1');
    expect(await asAlice.nothing('PUBLISH', 150)).toBe(true);
  });

  test('--deny-subscribe / --deny-publish', async () => {
    const b = await broker({ denySubscribe: ['secret/#'], denyPublish: ['ro/#'] });
    const c5 = await client(b.port, { version: 5 });
    const c4 = await client(b.port, { version: 4 });
    expect(await subscribe(c5, 'secret/a')).toBe(0x87);
    expect(await subscribe(c4, 'secret/#')).toBe(0x80);
    expect(await subscribe(c4, 'ro/+')).toBe(0);
    c5.send(pub('ro/x', 'no', 1));
    expect((await c5.nextPacket('PUBACK')).reasonCode).toBe(0x87);
    const refused = pub('ro/x', 'no', 1);
    c4.send(refused);
    expect((await c4.nextPacket('PUBACK')).packetId).toBe(refused.packetId);
    expect(await c4.nothing('PUBLISH', 150)).toBe(true);
  });
});

describe('malformed packets', () => {
  test('a malformed packet closes that client (v5 DISCONNECT with the reason code), is logged, others carry on', async () => {
    const b = await broker();
    const good = await client(b.port, { version: 4 });
    await subscribe(good, 'ok');
    const bad = await client(b.port, { version: 5, clientId: 'bad-one' });
    bad.sendRaw('36 05 0001 61 0001'); // PUBLISH with QoS 3
    const d = await bad.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x81);
    await bad.closed();
    await b.waitForLog(/\[bad-one\] malformed packet: PUBLISH/);
    const p = await client(b.port, { version: 4 });
    p.send(pub('ok', 'still here'));
    expect((await good.nextPacket('PUBLISH')).payload.toString()).toBe('still here');
  });

  test('a wildcard in a PUBLISH topic: DISCONNECT 0x90 Topic Name invalid', async () => {
    const b = await broker();
    const bad = await client(b.port, { version: 5 });
    bad.sendRaw('30 06 0003 612f23 00'); // PUBLISH 'a/#', no properties
    expect((await bad.nextPacket('DISCONNECT')).reasonCode).toBe(0x90);
  });

  test('framing: partial packets are copied, never kept as views of a read buffer that is reused', async () => {
    const b = await broker();
    const sub = await client(b.port, { version: 4 });
    expect(await subscribe(sub, 'frag')).toBe(0);
    // A transport that reads into one reused buffer, as a zero-copy reader (onread) would.
    const transport = {
      write: () => true,
      end: () => {},
      destroy: () => {},
      writableLength: 0,
      remoteAddress: '127.0.0.1',
      remotePort: 1,
    };
    const conn = new Connection(brokerCore(b.broker), transport, 'tcp', Date.now());
    const readBuffer = Buffer.alloc(8192);
    const feed = (bytes: Buffer) => {
      bytes.copy(readBuffer);
      conn.onData(readBuffer.subarray(0, bytes.length));
      readBuffer.fill(0xee); // the next read overwrites it
    };
    feed(encode({ type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'reuse' }, 4));
    const payload = Buffer.from('0123456789'.repeat(300));
    const bytes = encode(pub('frag', payload.toString()), 4);
    feed(bytes.subarray(0, 9));
    feed(bytes.subarray(9, 1000));
    feed(bytes.subarray(1000, 2000));
    feed(bytes.subarray(2000));
    const got = await sub.nextPacket('PUBLISH');
    expect(got.payload.equals(payload)).toBe(true);
  });

  test('framing: the size limit is checked from the fixed header, before any body is buffered', async () => {
    const b = await broker({ maxPacketSize: 1024 });
    const c = await client(b.port, { version: 5, clientId: 'huge' });
    // PUBLISH announcing 268,435,455 bytes, then silence: refused at once.
    c.sendRaw('30 ff ff ff 7f 00');
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x95);
    await c.closed();
    await b.waitForLog(/\[huge\] malformed packet/);
  });

  test('garbage instead of CONNECT closes the connection', async () => {
    const b = await broker();
    const c = await client(b.port, { connect: false });
    c.sendRaw('ffffffffff');
    await c.closed();
    await b.waitForLog(/malformed packet/);
  });
});
