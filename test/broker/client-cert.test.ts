/**
 * Client certificates on the TLS listeners (mqtts and wss): --cafile + --require-certificate
 * refuse a client without a certificate signed by the CA at the handshake; with
 * --use-identity-as-username the certificate's CN is the user name the ACL sees.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Broker, type BrokerAddresses, type BrokerOptions } from '../../src/broker/index.js';
import { type ClientOptions, ConnectError, type MqttClient } from '../../src/client/index.js';
import { testPki } from '../helpers/certs.js';
import { clientHarness } from '../helpers/client-harness.js';

const { cleanups, opts, connect, subscriber } = clientHarness({ version: 5, idPrefix: 'cert' });
let dir: string;
const pem = (name: string) => readFileSync(join(dir, `${name}.pem`));
const key = (name: string) => readFileSync(join(dir, `${name}.key`));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-client-cert-'));
  const pki = testPki(dir);
  pki.ca('ca', 'mq test CA');
  pki.ca('other-ca', 'another CA');
  pki.server('server', 'IP:127.0.0.1');
  pki.client('alice', 'alice');
  pki.client('mallory', 'alice', { ca: 'other-ca' });
  pki.client('nocn', '', { subject: '/O=no common name' });
  writeFileSync(join(dir, 'acl'), 'user alice\ntopic readwrite alice/#\n');
}, 30_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A broker with TLS and WSS listeners requiring client certificates; its log lines. */
async function start(extra: BrokerOptions = {}): Promise<{ addresses: BrokerAddresses; logs: string[] }> {
  const logs: string[] = [];
  const broker = new Broker({
    port: 0,
    tlsPort: 0,
    wssPort: 0,
    cert: pem('server'),
    key: key('server'),
    ca: pem('ca'),
    requireCertificate: true,
    sysInterval: 0,
    log: (line) => logs.push(line),
    ...extra,
  });
  cleanups.push(() => broker.close());
  return { addresses: await broker.listen(), logs };
}

/** Client options for the mqtts (or wss) listener, with `who`'s certificate (none: no certificate). */
function tlsOpts(
  a: BrokerAddresses,
  who: string | undefined,
  extra: Partial<ClientOptions> = {},
): ClientOptions {
  const tls = { ca: pem('ca'), ...(who === undefined ? {} : { cert: pem(who), key: key(who) }) };
  const wss = extra.transport === 'wss';
  return { ...opts(wss ? a.wss!.port : a.tls!.port), transport: 'mqtts', tls, ...extra };
}

async function refusedAtHandshake(o: ClientOptions): Promise<ConnectError> {
  const e = await connect(o).catch((err: unknown) => err);
  expect(e).toBeInstanceOf(ConnectError);
  expect((e as ConnectError).reasonCode).toBeUndefined();
  return e as ConnectError;
}

describe('--require-certificate', () => {
  test('a client with a certificate signed by --cafile connects; the CONNECT password is still checked', async () => {
    const { addresses: a } = await start({ users: { u: 'p' } });
    const c = await connect(tlsOpts(a, 'alice', { username: 'u', password: Buffer.from('p') }));
    await c.end();
    const bad = await connect(tlsOpts(a, 'alice', { username: 'u', password: Buffer.from('x') })).catch(
      (err: unknown) => err,
    );
    expect((bad as ConnectError).reasonCode).toBe(0x86);
  });

  test('no client certificate, or one from another CA: refused at the TLS handshake (nothing reaches MQTT), logged', async () => {
    const { addresses: a, logs } = await start({ allowAnonymous: true });
    const none = await refusedAtHandshake(tlsOpts(a, undefined));
    expect(none.message).toMatch(/certificate/);
    await refusedAtHandshake(tlsOpts(a, 'mallory'));
    await refusedAtHandshake(tlsOpts(a, undefined, { transport: 'wss', path: '/mqtt' }));
    await expect.poll(() => logs.filter((l) => /TLS handshake refused/.test(l)).length).toBe(3);
    expect(logs.some((l) => /connected from/.test(l))).toBe(false);
    // The plain listener is not affected.
    const plain = await connect(opts(a.tcp!.port));
    await plain.end();
  });
});

describe('--use-identity-as-username', () => {
  /** `c` may publish to alice/x (a subscriber gets it), not to bob/x (PUBACK 0x87 Not authorized). */
  async function publishesAsAlice(a: BrokerAddresses, c: MqttClient): Promise<void> {
    const spy = await subscriber(tlsOpts(a, 'alice'), 'alice/#');
    await expect(c.publish('bob/x', 'to bob', { qos: 1 })).rejects.toMatchObject({ reasonCode: 0x87 });
    await c.publish('alice/x', 'to alice', { qos: 1 });
    await expect.poll(() => spy.got.map((m) => m.topic)).toEqual(['alice/x']);
  }

  test("the certificate's CN is the user name for the ACL; no user name or password needed", async () => {
    const { addresses: a, logs } = await start({ useIdentityAsUsername: true, aclFile: join(dir, 'acl') });
    const c = await connect(tlsOpts(a, 'alice', { clientId: 'cn-alice' }));
    await publishesAsAlice(a, c);
    const [bobAck] = (await c.subscribe([{ topicFilter: 'bob/#', qos: 0 }])).reasonCodes;
    expect(bobAck).toBe(0x87);
    expect(logs.find((l) => l.includes('[cn-alice] connected'))).toMatch(/over tls .*user alice\)/);
  });

  test("the CONNECT's user name and password are ignored: the certificate decides", async () => {
    const { addresses: a } = await start({
      useIdentityAsUsername: true,
      aclFile: join(dir, 'acl'),
      users: { bob: 'bobs-password' },
    });
    const c = await connect(tlsOpts(a, 'alice', { username: 'bob', password: Buffer.from('wrong') }));
    const [bobAck] = (await c.subscribe([{ topicFilter: 'bob/#', qos: 0 }])).reasonCodes;
    expect(bobAck).toBe(0x87);
  });

  test('over wss too', async () => {
    const { addresses: a } = await start({ useIdentityAsUsername: true, aclFile: join(dir, 'acl') });
    const c = await connect(tlsOpts(a, 'alice', { transport: 'wss', path: '/mqtt' }));
    const ack = await c.subscribe([
      { topicFilter: 'alice/#', qos: 0 },
      { topicFilter: 'bob/#', qos: 0 },
    ]);
    expect(ack.reasonCodes).toEqual([0, 0x87]);
  });

  test('over wss with mqtt.js (another client): the CN decides what it may subscribe to', async () => {
    const { addresses: a } = await start({ useIdentityAsUsername: true, aclFile: join(dir, 'acl') });
    const c = await mqtt.connectAsync(`wss://127.0.0.1:${a.wss!.port}/mqtt`, {
      ca: pem('ca'),
      cert: pem('alice'),
      key: key('alice'),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      const granted = await c.subscribeAsync('alice/#', { qos: 0 });
      expect(granted.map((g) => [g.topic, g.qos])).toEqual([['alice/#', 0]]);
      await expect(c.subscribeAsync('bob/#', { qos: 0 })).rejects.toThrow(/Not authorized/);
    } finally {
      await c.endAsync();
    }
  });

  test('a certificate without a CN: CONNACK Not authorized', async () => {
    const { addresses: a } = await start({ useIdentityAsUsername: true });
    const e = await connect(tlsOpts(a, 'nocn')).catch((err: unknown) => err);
    expect((e as ConnectError).reasonCode).toBe(0x87);
  });
});
