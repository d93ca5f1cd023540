/**
 * Password checks under attack (issue 12 items 5 and 15): scrypt runs off the event loop, so wrong
 * passwords do not hold other clients up; an unknown user costs what a known one costs; passwords
 * are compared as bytes, plain ones in constant time; the queue of checks is bounded (Server busy
 * beyond it); what a client sends while its CONNECT is checked is handled after it, in order; a
 * client that leaves meanwhile leaves nothing behind. --acl without users is warned about.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AUTH_FILE_LIMIT } from '../../src/broker/auth.js';
import { Broker, brokerCore } from '../../src/broker/broker.js';
import { makePasswdLine } from '../../src/broker/index.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  encode,
  type ProtocolVersion,
} from '../../src/protocol/index.js';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';

const { broker, client, pub } = brokerHarness();
let dir: string;
let passwd: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-authh-'));
  passwd = join(dir, 'passwd');
  // scrypt N=16384, r=8: ~50 ms a check here, on purpose.
  writeFileSync(passwd, `${makePasswdLine('alice', 'right')}\n${makePasswdLine('carol', '\ufffd')}\n`);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function connectPacket(
  version: ProtocolVersion,
  clientId: string,
  username: string | undefined,
  password: Buffer | undefined,
): ConnectPacket {
  const p: ConnectPacket = {
    type: 'CONNECT',
    protocolVersion: version,
    clean: true,
    keepalive: 60,
    clientId,
  };
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = password;
  return p;
}

/** Sends a CONNECT on a fresh socket; resolves with the CONNACK and the milliseconds it took. */
async function attempt(
  port: number,
  username: string | undefined,
  password: Buffer | string | undefined,
  version: ProtocolVersion = 5,
): Promise<{ c: TestClient; ack: ConnackPacket; ms: number }> {
  const c = await client(port, { connect: false, version });
  const pw = typeof password === 'string' ? Buffer.from(password) : password;
  const start = performance.now();
  c.send(connectPacket(version, `auth-${Math.random().toString(16).slice(2, 10)}`, username, pw));
  const ack = await c.nextPacket('CONNACK', 10_000);
  return { c, ack, ms: performance.now() - start };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('--passwd checks do not block the broker', () => {
  test("20 parallel wrong passwords for a known user: another client's PINGRESP stays fast (max < 50 ms)", async () => {
    const b = await broker({ passwdFile: passwd });
    const watcher = await client(b.port, { version: 4, username: 'alice', password: 'right' });
    const attempts = Promise.all(Array.from({ length: 20 }, () => attempt(b.port, 'alice', 'wrong')));
    let done = false;
    void attempts.then(() => {
      done = true;
    });
    const rtts: number[] = [];
    while (!done) {
      const start = performance.now();
      watcher.send({ type: 'PINGREQ' });
      await watcher.nextPacket('PINGRESP', 10_000);
      rtts.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, 5));
    }
    const results = await attempts;
    expect(results.every((r) => r.ack.reasonCode === 0x86)).toBe(true);
    expect(Math.max(...rtts)).toBeLessThan(50);
    // The 20 checks took a while (~1 s): the pings sampled it.
    expect(rtts.length).toBeGreaterThanOrEqual(5);
  });

  test('an unknown user is refused as slowly as a known user with a wrong password (ratio of medians within 0.5..2)', async () => {
    const b = await broker({ passwdFile: passwd });
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      known.push((await attempt(b.port, 'alice', `wrong${i}`)).ms);
      unknown.push((await attempt(b.port, `nobody${i}`, `wrong${i}`)).ms);
    }
    const ratio = median(unknown) / median(known);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });

  test('more CONNECTs waiting than --max-auth-pending: refused with Server busy (v5 0x89, 3.1.1 return code 3)', async () => {
    const b = await broker({ passwdFile: passwd, maxAuthPending: 2 });
    const results = await Promise.all([
      ...Array.from({ length: 6 }, () => attempt(b.port, 'alice', 'wrong', 5)),
      ...Array.from({ length: 4 }, () => attempt(b.port, 'alice', 'wrong', 4)),
    ]);
    const codes = results.map((r) => r.ack.reasonCode);
    expect(codes.filter((c) => c === 0x89).length).toBeGreaterThanOrEqual(1);
    expect(codes.filter((c) => c === 0x86).length).toBeGreaterThanOrEqual(1);
    expect(codes.every((c) => c === 0x89 || c === 0x86 || c === 3 || c === 4)).toBe(true);
    await b.waitForLog(/password checks waiting \(--max-auth-pending\)/);
    // Nothing stays queued.
    const core = brokerCore(b.broker);
    for (const deadline = Date.now() + 5000; core.auth.pending > 0 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 20));
    expect(core.auth.pending).toBe(0);
  });

  test('packets sent right behind the CONNECT wait for its check and are handled after it, in order', async () => {
    const b = await broker({ passwdFile: passwd });
    const c = await client(b.port, { connect: false, version: 5 });
    c.sendRaw(
      Buffer.concat([
        encode(connectPacket(5, 'pipelined', 'alice', Buffer.from('right')), 5),
        encode({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'pipe/#', qos: 1 }] }, 5),
        encode(pub('pipe/a', 'one', 1, { packetId: 2 }), 5),
        encode({ type: 'PINGREQ' }, 5),
      ]),
    );
    const types: string[] = [];
    while (!types.includes('PINGRESP')) types.push((await c.nextPacket(undefined, 5000)).type);
    // CONNACK first; the SUBSCRIBE before the PUBLISH (so it is delivered back); PINGRESP last.
    expect(types[0]).toBe('CONNACK');
    expect(types.filter((t) => t !== 'PUBACK')).toEqual(['CONNACK', 'SUBACK', 'PUBLISH', 'PINGRESP']);
  });

  test('more than 64 KiB sent behind the CONNECT: the broker stops reading meanwhile, then handles all of it', async () => {
    const b = await broker({ passwdFile: passwd });
    const c = await client(b.port, { connect: false, version: 4 });
    const n = 100;
    const publishes = Array.from({ length: n }, (_, i) => encode(pub('bulk/a', Buffer.alloc(4096, i), 0), 4));
    c.sendRaw(
      Buffer.concat([
        encode(connectPacket(4, 'bulk', 'alice', Buffer.from('right')), 4),
        encode({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'bulk/#', qos: 0 }] }, 4),
        ...publishes,
        encode({ type: 'PINGREQ' }, 4),
      ]),
    );
    await c.nextPacket('PINGRESP', 10_000);
    const got = c.received.filter((p) => p.type === 'PUBLISH');
    expect(got.map((p) => (p.type === 'PUBLISH' ? p.payload[0] : -1))).toEqual(
      Array.from({ length: n }, (_, i) => i),
    );
  });

  test('refused: nothing sent behind the CONNECT is handled', async () => {
    const b = await broker({ passwdFile: passwd });
    const c = await client(b.port, { connect: false, version: 5 });
    c.sendRaw(
      Buffer.concat([
        encode(connectPacket(5, 'pipelined-bad', 'alice', Buffer.from('wrong')), 5),
        encode({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'x', qos: 0 }] }, 5),
      ]),
    );
    expect((await c.nextPacket('CONNACK', 5000)).reasonCode).toBe(0x86);
    await c.closed();
    expect(c.received.map((p) => p.type)).toEqual(['CONNACK']);
  });

  test('a client that disconnects while its CONNECT is checked leaves no session, no connection, no queued check', async () => {
    const b = await broker({ passwdFile: passwd });
    const core = brokerCore(b.broker);
    // Keep the checker busy, then the client that leaves, waiting behind them.
    const fillers = Array.from({ length: 4 }, () => attempt(b.port, 'alice', 'wrong'));
    const gone = await client(b.port, { connect: false, version: 4 });
    gone.send({ ...connectPacket(4, 'gone', 'alice', Buffer.from('right')), clean: false });
    for (const deadline = Date.now() + 5000; core.auth.pending < 5 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 5));
    gone.destroy();
    await Promise.all(fillers);
    for (const deadline = Date.now() + 5000; core.auth.pending > 0 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 20));
    expect(core.auth.pending).toBe(0);
    expect(core.sessions.has('gone')).toBe(false);
    expect(b.logs.some((l) => l.startsWith('[gone] connected'))).toBe(false);
    for (const deadline = Date.now() + 5000; core.connections.size > 0 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 20));
    expect(core.connections.size).toBe(0);
  });
});

describe('passwords are compared as bytes', () => {
  test('--auth (plain, constant time): right accepted; same length, prefix, longer, empty refused; bytes that are not UTF-8 never match', async () => {
    const b = await broker({ users: { bob: 's3cret', eve: '\ufffd' } });
    expect((await attempt(b.port, 'bob', 's3cret')).ack.reasonCode).toBe(0);
    for (const wrong of ['s3cres', 's3cre', 's3cret!', '', undefined])
      expect((await attempt(b.port, 'bob', wrong)).ack.reasonCode).toBe(0x86);
    expect((await attempt(b.port, 'nobody', 's3cret')).ack.reasonCode).toBe(0x86);
    // 0xff is not UTF-8: decoded it would read as U+FFFD, eve's password.
    expect((await attempt(b.port, 'eve', Buffer.from([0xff]))).ack.reasonCode).toBe(0x86);
    expect((await attempt(b.port, 'eve', '\ufffd')).ack.reasonCode).toBe(0);
  });

  test('--passwd (scrypt): bytes that are not UTF-8 never match a password they would decode to', async () => {
    const b = await broker({ passwdFile: passwd });
    expect((await attempt(b.port, 'carol', Buffer.from([0xfe]))).ack.reasonCode).toBe(0x86);
    expect((await attempt(b.port, 'carol', '\ufffd')).ack.reasonCode).toBe(0);
  });
});

describe('--acl without users', () => {
  test('warned about at start-up (one line); not with --auth', async () => {
    const acl = join(dir, 'acl');
    writeFileSync(acl, 'user alice\ntopic readwrite alice/#\n');
    const open = await broker({ aclFile: acl });
    expect(open.logs.filter((l) => /--acl without --auth or --passwd/.test(l))).toHaveLength(1);
    const closed = await broker({ aclFile: acl, users: { alice: 'pw' } });
    expect(closed.logs.some((l) => /--acl without/.test(l))).toBe(false);
  });
});

describe('--passwd and --acl files are read bounded', () => {
  test('a file over the limit is one clear error, from its size (nothing is read); a device once past it', () => {
    const huge = join(dir, 'huge');
    writeFileSync(huge, '');
    truncateSync(huge, AUTH_FILE_LIMIT.bytes + 1); // sparse: no disk used
    const tooBig = new RegExp(
      `is larger than ${AUTH_FILE_LIMIT.bytes} bytes \\(mq's limit for a password or ACL file\\)`,
    );
    expect(() => new Broker({ passwdFile: huge })).toThrow(/^password file: .*huge is larger than/);
    expect(() => new Broker({ passwdFile: huge })).toThrow(tooBig);
    expect(() => new Broker({ aclFile: huge, users: { a: 'b' } })).toThrow(
      /^ACL file: .*huge is larger than/,
    );
    // A character device has no size: read until the limit is passed, then refused.
    expect(() => new Broker({ passwdFile: '/dev/zero' })).toThrow(tooBig);
    expect(() => new Broker({ passwdFile: join(dir, 'nope') })).toThrow(
      /^password file: cannot read .*nope: no such file$/,
    );
  });
});
