/** MQTT over WebSocket and TLS listeners, several at once. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { Broker, type BrokerAddresses } from '../../src/broker/index.js';
import { encode } from '../../src/protocol/index.js';

let dir: string;
let broker: Broker;
let addresses: BrokerAddresses;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  broker = new Broker({
    port: 0,
    wsPort: 0,
    tlsPort: 0,
    cert: readFileSync(join(dir, 'cert.pem')),
    key: readFileSync(join(dir, 'key.pem')),
    sysInterval: 0,
    log: () => {},
  });
  addresses = await broker.listen();
});
afterAll(async () => {
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens a WebSocket: 'open <subprotocol>', or the HTTP status the upgrade was refused with. */
function wsOutcome(url: string, protocols?: string | string[]): Promise<string> {
  const socket = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from ${url} within 3000 ms`)), 3000);
    socket.once('open', () => {
      clearTimeout(timer);
      resolve(`open ${socket.protocol}`);
      socket.close();
    });
    socket.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(String(res.statusCode));
      socket.terminate();
    });
    socket.once('error', () => {});
  });
}

describe('listeners', () => {
  test('TCP, WebSocket and TLS listen at once on their own ports', () => {
    const ports = [addresses.tcp?.port, addresses.ws?.port, addresses.tls?.port];
    expect(ports.every((p) => typeof p === 'number' && p > 0)).toBe(true);
    expect(new Set(ports).size).toBe(3);
  });

  test('mqtt.js over WebSocket (/mqtt, subprotocol mqtt) talks to mqtt.js over TLS', async () => {
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${addresses.ws!.port}/mqtt`, { protocolVersion: 5 });
    const tls = await mqtt.connectAsync(`mqtts://127.0.0.1:${addresses.tls!.port}`, {
      protocolVersion: 4,
      ca: readFileSync(join(dir, 'cert.pem')),
      servername: 'localhost',
      rejectUnauthorized: true,
    });
    try {
      await ws.subscribeAsync('x/#', { qos: 1 });
      const got = new Promise<string>((resolve) => ws.on('message', (t, p) => resolve(`${t} ${p}`)));
      await tls.publishAsync('x/y', 'over tls', { qos: 1 });
      expect(await got).toBe('x/y over tls');
    } finally {
      await ws.endAsync();
      await tls.endAsync();
    }
  });

  test('WebSocket frames are a byte stream: packets split across frames and packed into one', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${addresses.ws!.port}/mqtt`, 'mqtt');
    const received: Buffer[] = [];
    socket.on('message', (data: Buffer) => received.push(data));
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    expect(socket.protocol).toBe('mqtt');
    const connect = encode(
      { type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'ws-bytes' },
      4,
    );
    // CONNECT split in three frames.
    socket.send(connect.subarray(0, 3));
    socket.send(connect.subarray(3, 9));
    socket.send(connect.subarray(9));
    // SUBSCRIBE and PINGREQ in one frame.
    socket.send(
      Buffer.concat([
        encode({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'a', qos: 0 }] }, 4),
        encode({ type: 'PINGREQ' }, 4),
      ]),
    );
    const deadline = Date.now() + 3000;
    const want = Buffer.from('20020000' + '9003000100' + 'd000', 'hex');
    while (Buffer.concat(received).length < want.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(Buffer.concat(received).toString('hex')).toBe(want.toString('hex'));
    socket.close();
  });
});

describe('WebSocket path and subprotocol', () => {
  test('only /mqtt upgrades (other paths: HTTP 404), with subprotocol mqtt or mqttv3.1 (else HTTP 400)', async () => {
    const base = `ws://127.0.0.1:${addresses.ws!.port}`;
    expect(await wsOutcome(`${base}/mqtt`, 'mqtt')).toBe('open mqtt');
    expect(await wsOutcome(`${base}/mqtt?x=1`, ['mqttv3.1'])).toBe('open mqttv3.1');
    expect(await wsOutcome(`${base}/`, 'mqtt')).toBe('404');
    expect(await wsOutcome(`${base}/other`, 'mqtt')).toBe('404');
    expect(await wsOutcome(`${base}/mqtt`)).toBe('400');
    expect(await wsOutcome(`${base}/mqtt`, 'chat')).toBe('400');
    // A plain HTTP request: 426 on the MQTT path, 404 elsewhere.
    expect((await fetch(`http://127.0.0.1:${addresses.ws!.port}/mqtt`)).status).toBe(426);
    expect((await fetch(`http://127.0.0.1:${addresses.ws!.port}/nope`)).status).toBe(404);
  });

  test('wsPath (--ws-path) moves the listener', async () => {
    const b = new Broker({ port: null, wsPort: 0, wsPath: '/ws/mqtt', sysInterval: 0, log: () => {} });
    try {
      const a = await b.listen();
      const base = `ws://127.0.0.1:${a.ws!.port}`;
      expect(await wsOutcome(`${base}/mqtt`, 'mqtt')).toBe('404');
      const c = await mqtt.connectAsync(`${base}/ws/mqtt`, { protocolVersion: 4, reconnectPeriod: 0 });
      await c.endAsync();
    } finally {
      await b.close();
    }
  });
});
