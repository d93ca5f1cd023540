/**
 * MqttProxy over every transport: a WebSocket listener (mqtt.js splits packets across frames), a
 * WebSocket upstream, a TLS upstream (a CA made with openssl); and the recording: mode 0600,
 * secrets masked, the same packets when read back.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ConnectPacket, decode } from '../../src/protocol/index.js';
import { testPki } from '../helpers/certs.js';
import { connectClient, onCleanup, startBroker, startProxy } from './harness.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-proxy-'));
  const pki = testPki(dir);
  pki.ca('ca', 'mq proxy test CA');
  pki.ca('other-ca', 'another CA');
  pki.server('server', 'DNS:localhost,IP:127.0.0.1');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('transports', () => {
  it('WebSocket listener: mqtt.js over ws through the proxy to a TCP broker', async () => {
    const { port } = await startBroker();
    const px = await startProxy(port, { wsPort: 0 });
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${px.wsPort}/mqtt`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    onCleanup(() => c.endAsync());
    const got = new Promise<string>((resolve) => c.on('message', (_t, p) => resolve(String(p))));
    await c.subscribeAsync('ws/in', { qos: 1 });
    await c.publishAsync('ws/in', 'x'.repeat(5000), { qos: 1 });
    expect(await got).toBe('x'.repeat(5000));
    expect(px.events.find((e) => e.kind === 'connected')).toMatchObject({ conn: { via: 'ws' } });
    expect(px.packets('up').map((e) => e.packet?.type)).toContain('PUBLISH');
  });

  it('WebSocket listener: an upgrade without subprotocol mqtt is refused with HTTP 400', async () => {
    const px = await startProxy(1, { wsPort: 0, port: undefined });
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${px.wsPort}/mqtt`, ['chat']);
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('upgraded')));
      ws.once('error', () => {});
    });
    expect(status).toBe(400);
  });

  it('WebSocket upstream: a TCP client through the proxy to a broker over ws://', async () => {
    const { wsPort } = await startBroker({ wsPort: 0 });
    const px = await startProxy(0, {
      upstream: { transport: 'ws', host: '127.0.0.1', port: wsPort!, path: '/mqtt' },
    });
    const c = await connectClient(px.port);
    const got = new Promise<string>((resolve) => c.on('message', (p) => resolve(String(p.payload))));
    await c.subscribe([{ topicFilter: 'ws/up', qos: 1 }]);
    await c.publish('ws/up', 'over ws', { qos: 1 });
    expect(await got).toBe('over ws');
    expect(px.events.find((e) => e.kind === 'connected')).toMatchObject({
      conn: { upstream: `ws://127.0.0.1:${wsPort}/mqtt` },
    });
  });

  it('TLS upstream: verified with the CA; another CA makes the connection fail with a reason', async () => {
    const { tlsPort } = await startBroker({
      port: null,
      tlsPort: 0,
      cert: readFileSync(join(dir, 'server.pem')),
      key: readFileSync(join(dir, 'server.key')),
    });
    const upstream = (ca: string) => ({
      transport: 'mqtts' as const,
      host: 'localhost',
      port: tlsPort!,
      tls: { ca: readFileSync(join(dir, `${ca}.pem`)), caFile: `${ca}.pem` },
    });
    const good = await startProxy(0, { upstream: upstream('ca') });
    const c = await connectClient(good.port);
    await c.publish('tls/up', 'secure', { qos: 1 });

    const bad = await startProxy(0, { upstream: upstream('other-ca') });
    await expect(connectClient(bad.port)).rejects.toThrow();
    const e = await bad.waitFor((ev) => ev.kind === 'close');
    expect(e).toMatchObject({ failure: true });
    expect((e as { reason: string }).reason).toMatch(/not signed by a CA you trust/);
  });
});

describe('--record', () => {
  it('writes mode 0600 NDJSON in mq broker --record format, secrets masked, that decodes to the packets seen', async () => {
    const file = join(dir, 'rec.ndjson');
    const { port } = await startBroker({ users: { alice: 'pa55word-secret' } });
    const px = await startProxy(port, { recordFile: file });
    const c = await connectClient(px.port, { username: 'alice', password: Buffer.from('pa55word-secret') });
    await c.subscribe([{ topicFilter: 'rec/#', qos: 1 }]);
    await c.publish('rec/a', 'recorded', { qos: 1 });
    await c.end();
    await px.waitFor((e) => e.kind === 'close');
    await px.proxy.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(Buffer.from('pa55word-secret').toString('hex'));
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; client: string; direction: string; hex: string });
    expect(Object.keys(lines[0]!)).toEqual(['time', 'client', 'direction', 'hex']);
    const seen = px
      .packets()
      .map((e) => `${e.conn.id} ${e.direction === 'up' ? 'in' : 'out'} ${e.packet?.type}`);
    const recorded = lines.map(
      (l) => `${l.client} ${l.direction} ${decode(Buffer.from(l.hex, 'hex'), 5).type}`,
    );
    expect(recorded).toEqual(seen);
    const connect = decode(Buffer.from(lines[0]!.hex, 'hex'), 5) as ConnectPacket;
    expect(connect.username).toBe('alice');
    expect(connect.password?.toString()).toBe('*'.repeat('pa55word-secret'.length));
  });
});
