/**
 * Enhanced authentication (MQTT 5.0 section 4.12) on mq's broker with SCRAM, over a raw socket:
 * the exact packet sequence, refusals, the CONNECT timeout, re-authentication.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SCRAM_METHODS, ScramClient, type ScramMethod } from '../../src/auth/scram.js';
import { makePasswdLine, makeScramPasswdLine } from '../../src/broker/index.js';
import type { AuthPacket } from '../../src/protocol/index.js';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';
import { sendAuth, sendAuthConnect } from '../helpers/scram.js';
import { withTempDir } from '../helpers/temp-dir.js';

const { broker, client, subscribe, pub } = brokerHarness();
const USERS = { alice: 'wonder land', bob: 'builder' };

/** CONNECT with the client-first-message; resolves with the AUTH 0x18 that answers it. */
async function startScram(
  port: number,
  method: ScramMethod,
  scram: ScramClient,
  extra: { username?: string; clientId?: string } = {},
): Promise<{ c: TestClient; challenge: AuthPacket }> {
  const c = await client(port, { version: 5, connect: false });
  sendAuthConnect(c, {
    clientId: extra.clientId ?? 'scram-client',
    method,
    data: scram.clientFirst(),
    username: extra.username,
  });
  const challenge = await c.nextPacket('AUTH');
  return { c, challenge };
}

/** AUTH 0x19 Re-authenticate with the client-first-message. */
function reauthenticate(c: TestClient, method: ScramMethod, scram: ScramClient): void {
  sendAuth(c, 0x19, method, scram.clientFirst());
}

/**
 * The client's AUTH 0x18 with client-final for `challenge` (as `edit` makes it), under `method`
 * (which may not be the one of `scram`); returns the client-final sent.
 */
async function answer(
  c: TestClient,
  method: ScramMethod,
  scram: ScramClient,
  challenge: AuthPacket,
  edit: (final: string) => string = (final) => final,
): Promise<string> {
  const final = edit(await scram.clientFinal(challenge.properties!.authenticationData!.toString()));
  sendAuth(c, 0x18, method, final);
  return final;
}

/** A CONNECT with this Authentication Method and Data, refused: the CONNACK's reason code. */
async function refusedAt(port: number, method: string, data: string): Promise<number | undefined> {
  const c = await client(port, {
    version: 5,
    properties: { authenticationMethod: method, authenticationData: Buffer.from(data) },
    expectSuccess: false,
  });
  return c.connack?.reasonCode;
}

describe.each(SCRAM_METHODS)('%s at CONNECT', (method) => {
  test('CONNECT -> AUTH 0x18 -> AUTH 0x18 -> CONNACK 0x00 with the server signature, then the user is alice', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient(method, 'alice', 'wonder land');
    const { c, challenge } = await startScram(b.port, method, scram);
    // [MQTT-4.12.0-2] [MQTT-4.12.0-5]
    expect(challenge.reasonCode).toBe(0x18);
    expect(challenge.properties?.authenticationMethod).toBe(method);
    expect(challenge.properties?.authenticationData?.toString()).toMatch(
      /^r=[^,]+,s=[A-Za-z0-9+/=]+,i=4096$/,
    );
    await answer(c, method, scram, challenge);
    const connack = await c.nextPacket('CONNACK');
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe(method);
    expect(() => scram.verifyServerFinal(connack.properties!.authenticationData!.toString())).not.toThrow();
    expect(c.received.map((p) => p.type)).toEqual(['AUTH', 'CONNACK']);
    await b.waitForLog(/\[scram-client\] connected .*user alice/);
    // The connection works.
    expect(await subscribe(c, 'a/b', 1)).toBe(1);
    c.send(pub('a/b', 'hello', 1));
    expect((await c.nextPacket('PUBLISH')).payload.toString()).toBe('hello');
  });

  test('a wrong password: CONNACK 0x86 and the connection closed, never a success', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient(method, 'alice', 'wonder lane');
    const { c, challenge } = await startScram(b.port, method, scram);
    await answer(c, method, scram, challenge);
    const connack = await c.nextPacket('CONNACK');
    expect(connack.reasonCode).toBe(0x86);
    expect(connack.properties?.authenticationData).toBeUndefined();
    await c.closed();
    await b.waitForLog(/connection refused: 0x86 .*failed for user 'alice': wrong password/);
  });
});

describe('refusals at CONNECT', () => {
  test('an unknown user gets a challenge like anyone, then 0x86', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-256', 'mallory', 'x');
    const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    expect(challenge.reasonCode).toBe(0x18);
    await answer(c, 'SCRAM-SHA-256', scram, challenge);
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x86);
    await b.waitForLog(/no SCRAM-SHA-256 credentials for user 'mallory'/);
  });

  test('a forged proof (right nonce, proof of another key) gets no successful CONNACK', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-1', 'alice', 'wonder land');
    const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-1', scram);
    await answer(c, 'SCRAM-SHA-1', scram, challenge, (final) =>
      final.replace(/p=.*$/, `p=${Buffer.alloc(20, 0x5a).toString('base64')}`),
    );
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x86);
    await c.closed();
  });

  test('[MQTT-4.12.0-1] an unknown method gets 0x8C, and so does SCRAM on a broker without users', async () => {
    const b = await broker({ users: USERS });
    expect(await refusedAt(b.port, 'KERBEROS', 'x')).toBe(0x8c);
    await b.waitForLog(/authentication method 'KERBEROS' not supported/);
    const open = await broker();
    expect(await refusedAt(open.port, 'SCRAM-SHA-256', 'n,,n=a,r=b')).toBe(0x8c);
    await open.waitForLog(/needs users/);
  });

  test('a malformed client-first-message gets 0x87', async () => {
    const b = await broker({ users: USERS });
    expect(await refusedAt(b.port, 'SCRAM-SHA-256', 'hello')).toBe(0x87);
    await b.waitForLog(/SCRAM-SHA-256: client-first-message: no GS2 header/);
  });

  test('a CONNECT User Name other than the SCRAM user gets 0x86', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const c = await client(b.port, { version: 5, connect: false });
    sendAuthConnect(c, {
      clientId: 'x',
      method: 'SCRAM-SHA-256',
      data: scram.clientFirst(),
      username: 'bob',
    });
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x86);
  });

  test('[MQTT-3.1.2-30] a PUBLISH before the CONNACK is a protocol error (CONNACK 0x82)', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const { c } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    c.send(pub('a/b', 'too early', 0));
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x82);
    await c.closed();
  });

  test('[MQTT-4.12.0-5] an AUTH with another method during the exchange is a protocol error', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    await answer(c, 'SCRAM-SHA-1', scram, challenge);
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x82);
  });

  test('the CONNECT timeout covers the exchange: no answer to the challenge, the connection is closed', async () => {
    const b = await broker({ users: USERS, connectTimeoutMs: 300 });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const { c } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    await c.closed(5000);
    expect(c.received.map((p) => p.type)).toEqual(['AUTH']);
    await b.waitForLog(/authentication not done within 0.3 s: closing/);
  });

  test('DISCONNECT during the exchange closes quietly', async () => {
    const b = await broker({ users: USERS });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const { c } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    c.send({ type: 'DISCONNECT', reasonCode: 0 });
    await c.closed();
    await b.waitForLog(/disconnected during enhanced authentication/);
  });

  test('a plain password still works beside SCRAM; the SCRAM user is the one the ACL sees', async () => {
    await withTempDir('mq-scram-acl-', async (dir) => {
      const acl = join(dir, 'acl');
      writeFileSync(acl, 'user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n');
      const b = await broker({ users: USERS, aclFile: acl });
      const plain = await client(b.port, { version: 5, username: 'bob', password: 'builder' });
      expect(await subscribe(plain, 'bob/x', 0)).toBe(0);
      const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
      const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-256', scram);
      await answer(c, 'SCRAM-SHA-256', scram, challenge);
      expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0);
      expect(await subscribe(c, 'alice/x', 0)).toBe(0);
      expect(await subscribe(c, 'bob/x', 0)).toBe(0x87);
    });
  });
});

test('--trace and --record mask the password and every Authentication Data', async () => {
  await withTempDir('mq-scram-trace-', async (dir) => {
    const record = join(dir, 'traffic.ndjson');
    const lines: string[] = [];
    const b = await broker({
      users: USERS,
      trace: 'full',
      traceOut: (l) => lines.push(l),
      recordFile: record,
    });
    const plain = await client(b.port, { version: 5, username: 'bob', password: 'builder' });
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'wonder land');
    const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-256', scram);
    const final = await answer(c, 'SCRAM-SHA-256', scram, challenge);
    const connack = await c.nextPacket('CONNACK');
    expect(connack.reasonCode).toBe(0);
    await plain.disconnect();
    await c.disconnect();
    await b.broker.close();
    const secrets = [
      'builder',
      final,
      challenge.properties!.authenticationData!.toString(),
      connack.properties!.authenticationData!.toString(),
    ];
    const trace = lines.join('\n');
    const recorded = readFileSync(record, 'utf8');
    expect(trace).toMatch(/AUTH/);
    expect(recorded.split('\n').length).toBeGreaterThan(6);
    for (const secret of secrets) {
      const hex = Buffer.from(secret).toString('hex');
      expect(trace).not.toContain(secret);
      expect(trace).not.toContain(hex);
      expect(recorded).not.toContain(hex);
    }
  });
});

describe('--passwd: $scram$ lines', () => {
  test('a $scram$ line logs in with all three methods and with a plain password; a scrypt line does not do SCRAM', async () => {
    await withTempDir('mq-scram-passwd-', async (dir) => {
      const file = join(dir, 'passwd');
      const line = makeScramPasswdLine('carol', 'c4rol pass', 4096);
      expect(line).toMatch(/^carol:\$scram\$4096\$[A-Za-z0-9+/=]{24}(\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+){3}$/);
      expect(line).not.toContain('c4rol pass');
      writeFileSync(file, `${line}\n${makePasswdLine('dave', 'd4ve')}\n`);
      const b = await broker({ passwdFile: file });
      for (const method of SCRAM_METHODS) {
        const scram = new ScramClient(method, 'carol', 'c4rol pass');
        const { c, challenge } = await startScram(b.port, method, scram, { clientId: `carol-${method}` });
        expect(challenge.properties?.authenticationData?.toString()).toMatch(/,i=4096$/);
        await answer(c, method, scram, challenge);
        const connack = await c.nextPacket('CONNACK');
        expect(connack.reasonCode).toBe(0);
        scram.verifyServerFinal(connack.properties!.authenticationData!.toString());
      }
      const plain = await client(b.port, { version: 5, username: 'carol', password: 'c4rol pass' });
      expect(plain.connack?.reasonCode).toBe(0);
      const bad = await client(b.port, {
        version: 4,
        username: 'carol',
        password: 'c4rol',
        expectSuccess: false,
      });
      expect(bad.connack?.reasonCode).toBe(4);
      const scrypt = new ScramClient('SCRAM-SHA-256', 'dave', 'd4ve');
      const { c, challenge } = await startScram(b.port, 'SCRAM-SHA-256', scrypt);
      await answer(c, 'SCRAM-SHA-256', scrypt, challenge);
      expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0x86);
      await b.waitForLog(/no SCRAM-SHA-256 credentials for user 'dave'/);
      expect(
        (await client(b.port, { version: 5, username: 'dave', password: 'd4ve' })).connack?.reasonCode,
      ).toBe(0);
    });
  });

  test('a damaged $scram$ line is an error naming the file and line', async () => {
    await withTempDir('mq-scram-passwd-', async (dir) => {
      const file = join(dir, 'passwd');
      const line = makeScramPasswdLine('carol', 'x');
      writeFileSync(file, `# users\n${line.slice(0, -10)}\n`);
      await expect(broker({ passwdFile: file })).rejects.toThrow(
        /passwd:2: the SCRAM-SHA-512 keys are not two base64 keys of 64 bytes/,
      );
      writeFileSync(file, 'carol:$scram$many$salt\n');
      await expect(broker({ passwdFile: file })).rejects.toThrow(
        /passwd:1: expected user:\$scram\$ITERATIONS/,
      );
    });
  });
});

describe('re-authentication [MQTT-4.12.1-1]', () => {
  async function connected(port: number, method: ScramMethod): Promise<TestClient> {
    const scram = new ScramClient(method, 'alice', 'wonder land');
    const { c, challenge } = await startScram(port, method, scram);
    await answer(c, method, scram, challenge);
    expect((await c.nextPacket('CONNACK')).reasonCode).toBe(0);
    return c;
  }

  test('AUTH 0x19 -> AUTH 0x18 -> AUTH 0x18 -> AUTH 0x00 with the server signature; traffic goes on meanwhile', async () => {
    const b = await broker({ users: USERS });
    const c = await connected(b.port, 'SCRAM-SHA-512');
    const scram = new ScramClient('SCRAM-SHA-512', 'alice', 'wonder land');
    reauthenticate(c, 'SCRAM-SHA-512', scram);
    const challenge = await c.nextPacket('AUTH');
    expect(challenge.reasonCode).toBe(0x18);
    // Other packets flow during a re-authentication (section 4.12.1).
    expect(await subscribe(c, 'during/reauth', 0)).toBe(0);
    await answer(c, 'SCRAM-SHA-512', scram, challenge);
    const done = await c.nextPacket('AUTH');
    expect(done.reasonCode).toBe(0);
    expect(done.properties?.authenticationMethod).toBe('SCRAM-SHA-512');
    expect(() => scram.verifyServerFinal(done.properties!.authenticationData!.toString())).not.toThrow();
    await b.waitForLog(/re-authenticated with SCRAM-SHA-512 \(user alice\)/);
    expect(await subscribe(c, 'after/reauth', 0)).toBe(0);
  });

  test('a wrong password: DISCONNECT 0x87 and the connection closed [MQTT-4.12.1-2]', async () => {
    const b = await broker({ users: USERS });
    const c = await connected(b.port, 'SCRAM-SHA-256');
    const scram = new ScramClient('SCRAM-SHA-256', 'alice', 'not it');
    reauthenticate(c, 'SCRAM-SHA-256', scram);
    await answer(c, 'SCRAM-SHA-256', scram, await c.nextPacket('AUTH'));
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x87);
    await c.closed();
  });

  test('as another user: DISCONNECT 0x87', async () => {
    const b = await broker({ users: USERS });
    const c = await connected(b.port, 'SCRAM-SHA-256');
    const scram = new ScramClient('SCRAM-SHA-256', 'bob', 'builder');
    reauthenticate(c, 'SCRAM-SHA-256', scram);
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x87);
    await b.waitForLog(/user 'bob' is not the connection's user 'alice'/);
  });

  test('with another method: DISCONNECT 0x8C', async () => {
    const b = await broker({ users: USERS });
    const c = await connected(b.port, 'SCRAM-SHA-256');
    const scram = new ScramClient('SCRAM-SHA-1', 'alice', 'wonder land');
    reauthenticate(c, 'SCRAM-SHA-1', scram);
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x8c);
  });

  test('[MQTT-4.12.0-7] AUTH on a connection without a method, or 0x18 out of turn: DISCONNECT 0x82', async () => {
    const b = await broker({ users: USERS });
    const plain = await client(b.port, { version: 5, username: 'bob', password: 'builder' });
    plain.send({ type: 'AUTH', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256' } });
    expect((await plain.nextPacket('DISCONNECT')).reasonCode).toBe(0x82);
    const c = await connected(b.port, 'SCRAM-SHA-256');
    c.send({ type: 'AUTH', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-256' } });
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x82);
  });
});
