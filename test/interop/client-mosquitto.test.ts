import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { newCommand } from '../../src/cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  resolveConnectionOptions,
} from '../../src/cli/connection-options.js';
import { type ClientOptions, ConnectError, MqttClient } from '../../src/client/index.js';
import type { Packet, PublishPacket } from '../../src/protocol/index.js';
import { testPki } from '../helpers/certs.js';
import { clientHarness } from '../helpers/client-harness.js';
import { once, startCuttingProxy, startProxy } from '../helpers/fake-broker.js';
import { freePort, type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';

let mosq: MosquittoHandle;
let dir: string;
let tlsPort: number;
let tlsOtherPort: number;
let wssPort: number;
let tlsExpiredPort: number;
let unixPath: string;
const { cleanups, connect, collect, subscriber } = clientHarness({ version: 4 });

/** A CA, a server cert for 127.0.0.1/localhost, one for other.example only, and an unrelated CA. */
function makeCertificates(): void {
  const pki = testPki(dir);
  pki.ca('ca', 'mq test CA');
  pki.ca('other-ca', 'other CA');
  pki.server('server', 'DNS:localhost,IP:127.0.0.1');
  pki.server('other', 'DNS:other.example');
  // Valid until a day before it was issued: expired from the start.
  pki.server('expired', 'DNS:localhost,IP:127.0.0.1', { days: -1 });
  for (const f of [
    'ca.pem',
    'server.pem',
    'server.key',
    'other.pem',
    'other.key',
    'expired.pem',
    'expired.key',
  ]) {
    chmodSync(join(dir, f), 0o644);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-client-interop-'));
  // Mosquitto drops root privileges before it binds the unix socket: the directory must be open.
  chmodSync(dir, 0o777);
  makeCertificates();
  tlsPort = await freePort();
  tlsOtherPort = await freePort();
  wssPort = await freePort();
  tlsExpiredPort = await freePort();
  unixPath = join(dir, 'mosquitto.sock');
  mosq = await startMosquitto({
    websockets: true,
    extraConfig: [
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      `listener ${tlsOtherPort} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'other.pem')}`,
      `keyfile ${join(dir, 'other.key')}`,
      `listener ${wssPort} lo`,
      'protocol websockets',
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      `listener ${tlsExpiredPort} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'expired.pem')}`,
      `keyfile ${join(dir, 'expired.key')}`,
      `listener 0 ${unixPath}`,
    ],
  });
});

afterAll(async () => {
  await mosq?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** ClientOptions exactly as the CLI would build them from these flags. */
async function fromFlags(args: string[]): Promise<ClientOptions> {
  const cmd = newCommand('t').exitOverride();
  addConnectionOptions(cmd, { reconnect: false });
  cmd.parse(args, { from: 'user' });
  const o = await resolveConnectionOptions(cmd.opts<ConnectionFlags>(), {});
  return { ...o, connectTimeoutMs: 5000 };
}

/** Subscribes over plain TCP, publishes through `client`, expects the message to arrive. */
async function roundTrip(client: MqttClient, topic: string): Promise<void> {
  const { got } = await subscriber(await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]), topic);
  await client.publish(topic, `via ${client.options.transport}`, { qos: 1 });
  await expect.poll(() => got.length, { timeout: 3000 }).toBe(1);
  expect(got[0]!.payload.toString()).toBe(`via ${client.options.transport}`);
}

const cafile = () => join(dir, 'ca.pem');

describe('TLS (mqtts://) with a test CA', () => {
  test('--cafile: verified connection, messages flow', async () => {
    const c = await connect(await fromFlags(['-L', `mqtts://127.0.0.1:${tlsPort}`, '--cafile', cafile()]));
    await roundTrip(c, 'tls/ok');
  });

  test('by name (localhost) too', async () => {
    const c = await connect(await fromFlags(['-L', `mqtts://localhost:${tlsPort}`, '--cafile', cafile()]));
    expect(c.connected).toBe(true);
  });

  test('wrong CA: says the certificate is not signed by a CA you trust and names --cafile', async () => {
    const o = await fromFlags(['-L', `mqtts://127.0.0.1:${tlsPort}`, '--cafile', join(dir, 'other-ca.pem')]);
    const err = (await MqttClient.connect(o).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(
      new RegExp(
        `^could not connect to 127\\.0\\.0\\.1:${tlsPort}: TLS: the server's certificate is not signed by a CA you trust \\(\\w+\\): it is not signed by the CA in .*other-ca\\.pem: pass the CA that signed it with --cafile FILE \\(or --insecure to skip the check\\)$`,
      ),
    );
  });

  test('no --cafile (system CAs only): suggests --cafile or --insecure', async () => {
    const o = await fromFlags(['-L', `mqtts://127.0.0.1:${tlsPort}`]);
    const err = (await MqttClient.connect(o).catch((e: unknown) => e)) as ConnectError;
    expect(err.message).toMatch(
      /not signed by a CA you trust .*: pass --cafile FILE \(or --insecure to skip the check\)$/,
    );
  });

  test('wrong host name: says which names the certificate is valid for and suggests --servername', async () => {
    const o = await fromFlags(['-L', `mqtts://127.0.0.1:${tlsOtherPort}`, '--cafile', cafile()]);
    const err = (await MqttClient.connect(o).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(err.message).toBe(
      `could not connect to 127.0.0.1:${tlsOtherPort}: TLS: the server's certificate is valid for other.example, not 127.0.0.1: connect by that name or pass --servername NAME (or --insecure to skip the check)`,
    );
  });

  test('expired certificate: says so, and what to do', async () => {
    const o = await fromFlags(['-L', `mqtts://127.0.0.1:${tlsExpiredPort}`, '--cafile', cafile()]);
    const err = (await MqttClient.connect(o).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe('CERT_HAS_EXPIRED');
    expect(err.message).toBe(
      `could not connect to 127.0.0.1:${tlsExpiredPort}: TLS: the server's certificate has expired (CERT_HAS_EXPIRED): renew it on the broker, or pass --insecure to skip the check`,
    );
  });

  test('--servername fixes the name check; --insecure skips verification', async () => {
    const named = await connect(
      await fromFlags([
        '-L',
        `mqtts://127.0.0.1:${tlsOtherPort}`,
        '--cafile',
        cafile(),
        '--servername',
        'other.example',
      ]),
    );
    expect(named.connected).toBe(true);
    const insecure = await connect(
      await fromFlags(['-L', `mqtts://127.0.0.1:${tlsOtherPort}`, '--insecure']),
    );
    expect(insecure.connected).toBe(true);
  });

  test('TLS to a plain port: says the server did not answer in TLS', async () => {
    const o = await fromFlags(['-L', `mqtts://127.0.0.1:${mosq.port}`, '--cafile', cafile()]);
    const err = (await MqttClient.connect(o).catch((e: unknown) => e)) as ConnectError;
    expect(err.message).toMatch(
      /TLS handshake failed: the server did not answer in TLS \(is 127\.0\.0\.1:\d+ a TLS port\?/,
    );
  });
});

describe('other transports', () => {
  test("WebSocket (ws://, subprotocol 'mqtt') against Mosquitto's websockets listener", async () => {
    const c = await connect(await fromFlags(['-L', `ws://127.0.0.1:${mosq.wsPort}/mqtt`]));
    await roundTrip(c, 'ws/ok');
    const got = collect(c);
    await c.subscribe([{ topicFilter: 'ws/in', qos: 2 }]);
    const other = await connect(await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]));
    // Several KB (Mosquitto 2.0.11 over WebSocket drops messages above 64 KiB, for mqtt.js too).
    await other.publish('ws/in', Buffer.alloc(20_000, 7), { qos: 2 });
    await expect.poll(() => got.length, { timeout: 3000 }).toBe(1);
    expect(got[0]!.payload.length).toBe(20_000);
  });

  test('secure WebSocket (wss://) with --cafile', async () => {
    const c = await connect(await fromFlags(['-L', `wss://127.0.0.1:${wssPort}`, '--cafile', cafile()]));
    await roundTrip(c, 'wss/ok');
    const err = (await MqttClient.connect(await fromFlags(['-L', `wss://127.0.0.1:${wssPort}`])).catch(
      (e: unknown) => e,
    )) as ConnectError;
    expect(err.message).toMatch(
      new RegExp(
        `^could not connect to wss://127\\.0\\.0\\.1:${wssPort}/mqtt: TLS: the server's certificate is not signed by a CA you trust`,
      ),
    );
  });

  test('Unix socket (unix:///path)', async () => {
    const c = await connect(await fromFlags(['-L', `unix://${unixPath}`]));
    await roundTrip(c, 'unix/ok');
  });

  test('MQTT 3.1 and 3.1.1 work too', async () => {
    for (const v of ['3.1', '3.1.1']) {
      const c = await connect(
        await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port), '-V', v, '-i', `v${v}`]),
      );
      await roundTrip(c, `ver/${v}`);
    }
  });
});

describe('MQTT 5 with Mosquitto', () => {
  test('topic aliases: repeats go out as alias only, the subscriber sees the full topic every time', async () => {
    const wire: [string, number | undefined][] = [];
    const o = await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]);
    const pub = await connect({
      ...o,
      trace: (d, p) => {
        if (d === 'out' && p.type === 'PUBLISH') wire.push([p.topic, p.properties?.topicAlias]);
      },
    });
    expect(pub.connack.properties?.topicAliasMaximum).toBeGreaterThan(0);
    const { got } = await subscriber(
      await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]),
      'alias/#',
    );
    const topics = ['alias/long/topic/name', 'alias/long/topic/name', 'alias/other', 'alias/long/topic/name'];
    for (const t of topics) await pub.publish(t, 'x', { qos: 1 });
    expect(wire).toEqual([
      ['alias/long/topic/name', undefined],
      ['alias/long/topic/name', 1],
      ['alias/other', undefined],
      ['', 1],
    ]);
    await expect.poll(() => got.length, { timeout: 3000 }).toBe(4);
    expect(got.map((p) => p.topic)).toEqual(topics);
  });

  test('persistent session (-c): messages published while away arrive after reconnect', async () => {
    const id = `persist-${process.pid}`;
    const args = ['-h', '127.0.0.1', '-p', String(mosq.port), '-i', id, '-c', '-x', '60'];
    const first = await MqttClient.connect(await fromFlags(args));
    await first.subscribe([{ topicFilter: 'away/#', qos: 1 }]);
    await first.end();
    const pub = await connect(await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]));
    await pub.publish('away/1', 'queued', { qos: 1 });
    const back = await MqttClient.connect(await fromFlags(args));
    cleanups.push(() => back.end());
    expect(back.connack.sessionPresent).toBe(true);
    const [msg] = await once<[PublishPacket]>(back, 'message');
    expect(msg.payload.toString()).toBe('queued');
  });

  test('QoS 2 publisher cut right after PUBREC: PUBREL resent, exactly one delivery', async () => {
    const { got } = await subscriber(
      await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]),
      'eo/pub',
      2,
    );
    const proxy = await startCuttingProxy(mosq.port, 5, 'PUBREC');
    cleanups.push(() => proxy.stop());
    const o = await fromFlags([
      '-h',
      '127.0.0.1',
      '-p',
      String(proxy.port),
      '-i',
      `eo-pub-${process.pid}`,
      '-c',
      '-x',
      '60',
    ]);
    const pub = await connect({ ...o, reconnect: { minMs: 10, maxMs: 100 } });
    const reconnected = once<[unknown, boolean]>(pub, 'connect');
    await pub.publish('eo/pub', 'exactly once', { qos: 2 });
    const [, resumed] = await reconnected;
    expect(resumed).toBe(true);
    expect(proxy.sentAfterCut).toEqual(['CONNECT', 'PUBREL']);
    await pub.publish('eo/pub', 'marker', { qos: 2 });
    await expect.poll(() => got.length, { timeout: 3000 }).toBe(2);
    expect(got.map((p) => p.payload.toString())).toEqual(['exactly once', 'marker']);
  });

  test('QoS 2 subscriber cut before its PUBREC arrives: the DUP resend is not delivered twice', async () => {
    let cut = false;
    const upAfter: Packet['type'][] = [];
    const downAfter: PublishPacket[] = [];
    const proxy = await startProxy(mosq.port, 5, {
      up: (p, link) => {
        if (p.type === 'PUBREC' && !cut) {
          cut = true;
          return 'cut';
        }
        if (link.index > 0) upAfter.push(p.type);
        return 'pass';
      },
      down: (p, link) => {
        if (link.index > 0 && p.type === 'PUBLISH') downAfter.push(p);
        return 'pass';
      },
    });
    cleanups.push(() => proxy.stop());
    const o = await fromFlags([
      '-h',
      '127.0.0.1',
      '-p',
      String(proxy.port),
      '-i',
      `eo-sub-${process.pid}`,
      '-c',
      '-x',
      '60',
    ]);
    const { client: sub, got } = await subscriber(
      { ...o, reconnect: { minMs: 10, maxMs: 100 } },
      'eo/sub',
      2,
    );
    const reconnected = once<[unknown, boolean]>(sub, 'connect');
    const pub = await connect(await fromFlags(['-h', '127.0.0.1', '-p', String(mosq.port)]));
    await pub.publish('eo/sub', 'only once', { qos: 2 });
    const [, resumed] = await reconnected;
    expect(resumed).toBe(true);
    await expect.poll(() => upAfter.includes('PUBCOMP'), { timeout: 3000 }).toBe(true);
    expect(downAfter.map((p) => p.dup)).toEqual([true]);
    expect(got.map((p) => p.payload.toString())).toEqual(['only once']);
  });
});
