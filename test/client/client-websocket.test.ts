/**
 * The WebSocket transport against a local `ws` server bridged to Aedes: subprotocol 'mqtt', the
 * path, extra headers, a refused upgrade explained, and packets split across frames.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { ConnectError, MqttClient } from '../../src/client/index.js';

let aedes: Aedes;
let wss: WebSocketServer;
let port: number;
const upgrades: IncomingMessage[] = [];

beforeAll(async () => {
  aedes = await Aedes.createBroker();
  wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
    verifyClient: (info: { req: IncomingMessage }) => info.req.url === '/mqtt' || info.req.url === '/custom',
  });
  wss.on('connection', (ws, req) => {
    upgrades.push(req);
    aedes.handle(createWebSocketStream(ws));
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  port = (wss.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
  await new Promise<void>((r) => aedes.close(() => r()));
});

const base = { host: '127.0.0.1', version: 4 as const, keepalive: 60, clean: true, connectTimeoutMs: 3000 };

test("ws://: subprotocol 'mqtt', --ws-path, --ws-header reach the server; messages flow", async () => {
  const c = await MqttClient.connect({
    ...base,
    transport: 'ws',
    port,
    path: '/custom',
    clientId: 'ws-1',
    wsHeaders: { 'X-Token': 'abc' },
  });
  try {
    const req = upgrades.at(-1)!;
    expect(req.url).toBe('/custom');
    expect(req.headers['x-token']).toBe('abc');
    expect(req.headers['sec-websocket-protocol']).toBe('mqtt');
    const got: Buffer[] = [];
    c.on('message', (p) => got.push(Buffer.from(p.payload)));
    await c.subscribe([{ topicFilter: 'ws/t', qos: 1 }]);
    await c.publish('ws/t', Buffer.alloc(300_000, 1), { qos: 1 });
    await c.publish('ws/t', 'small', { qos: 1 });
    await expect.poll(() => got.length).toBe(2);
    expect(got[0]!.length).toBe(300_000);
    expect(got[1]!.toString()).toBe('small');
  } finally {
    await c.end();
  }
});

test('a refused upgrade is explained, pointing at --ws-path', async () => {
  const err = (await MqttClient.connect({
    ...base,
    transport: 'ws',
    port,
    path: '/wrong',
    clientId: 'ws-2',
  }).catch((e: unknown) => e)) as ConnectError;
  expect(err).toBeInstanceOf(ConnectError);
  expect(err.message).toBe(
    `could not connect to ws://127.0.0.1:${port}/wrong: the WebSocket upgrade was refused: HTTP 401 Unauthorized (check --ws-path)`,
  );
});
