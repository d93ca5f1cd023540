/**
 * MQTT over WebSocket with a real client (mqtt.js) against an in-process mq Broker: path /mqtt,
 * subprotocol mqtt, and WebSocket data treated as a byte stream (mqtt.js splits one MQTT packet
 * across several frames), across to a plain TCP client and back.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../../src/broker/index.js';

let broker: Broker;
let tcpPort: number;
let wsPort: number;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = new Broker({ port: 0, wsPort: 0, log: () => {}, sysInterval: 0 });
  const addrs = await broker.listen();
  if (!addrs.tcp || !addrs.ws) throw new Error(`listen() returned ${JSON.stringify(addrs)}`);
  tcpPort = addrs.tcp.port;
  wsPort = addrs.ws.port;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await broker?.close();
});

async function connect(url: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(c);
  return c;
}

/** Resolves with the first `count` messages `client` receives; rejects after timeoutMs. */
function collect(
  client: MqttClient,
  count: number,
  timeoutMs = 5000,
): Promise<[string, string, mqtt.IPublishPacket][]> {
  return new Promise((resolve, reject) => {
    const got: [string, string, mqtt.IPublishPacket][] = [];
    const timer = setTimeout(
      () => reject(new Error(`got ${got.length}/${count} messages: ${JSON.stringify(got.map((g) => g[0]))}`)),
      timeoutMs,
    );
    const onMessage = (topic: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
      got.push([topic, payload.toString(), packet]);
      if (got.length === count) {
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve(got);
      }
    };
    client.on('message', onMessage);
  });
}

describe.each([4, 5] as const)('mqtt.js over WebSocket, protocol version %i', (protocolVersion) => {
  const t = (s: string) => `ws${protocolVersion}/${s}`;

  it('connects on ws://.../mqtt and exchanges QoS 0, 1 and 2 messages with itself', async () => {
    const c = await connect(`ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion });
    await c.subscribeAsync(t('self/#'), { qos: 2 });
    const got = collect(c, 3);
    await c.publishAsync(t('self/0'), 'zero', { qos: 0 });
    await c.publishAsync(t('self/1'), 'one', { qos: 1 });
    await c.publishAsync(t('self/2'), 'two', { qos: 2 });
    const msgs = await got;
    expect(msgs.map(([topic, payload, p]) => [topic, payload, p.qos])).toEqual([
      [t('self/0'), 'zero', 0],
      [t('self/1'), 'one', 1],
      [t('self/2'), 'two', 2],
    ]);
  });

  it('bridges WebSocket and TCP clients both ways, large payloads intact', async () => {
    const ws = await connect(`ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion });
    const tcp = await connect(`mqtt://127.0.0.1:${tcpPort}`, { protocolVersion });
    await ws.subscribeAsync(t('to-ws'), { qos: 1 });
    await tcp.subscribeAsync(t('to-tcp'), { qos: 1 });
    // 200 KB: spans many WebSocket frames and TCP reads.
    const big = Buffer.alloc(200_000, 'x');
    big.write('head', 0);
    big.write('tail', big.length - 4);
    const toWs = collect(ws, 1);
    const toTcp = collect(tcp, 1);
    await tcp.publishAsync(t('to-ws'), big, { qos: 1 });
    await ws.publishAsync(t('to-tcp'), 'hello tcp', { qos: 1 });
    const [[, wsPayload]] = (await toWs) as [[string, string, mqtt.IPublishPacket]];
    expect(wsPayload.length).toBe(200_000);
    expect(wsPayload.startsWith('head') && wsPayload.endsWith('tail')).toBe(true);
    expect((await toTcp)[0]?.[1]).toBe('hello tcp');
  });

  it('delivers retained messages to a WebSocket subscriber', async () => {
    const tcp = await connect(`mqtt://127.0.0.1:${tcpPort}`, { protocolVersion });
    await tcp.publishAsync(t('retained'), 'kept', { qos: 1, retain: true });
    const ws = await connect(`ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion });
    const got = collect(ws, 1);
    await ws.subscribeAsync(t('retained'), { qos: 1 });
    const [[topic, payload, packet]] = (await got) as [[string, string, mqtt.IPublishPacket]];
    expect([topic, payload, packet.retain]).toEqual([t('retained'), 'kept', true]);
    await tcp.publishAsync(t('retained'), '', { qos: 1, retain: true });
  });
});

describe('mqtt.js over WebSocket, MQTT 5 specifics', () => {
  it('forwards user properties and correlation data', async () => {
    const ws = await connect(`ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion: 5 });
    await ws.subscribeAsync('ws5/props', { qos: 1 });
    const got = collect(ws, 1);
    await ws.publishAsync('ws5/props', 'p', {
      qos: 1,
      properties: {
        userProperties: { a: '1' },
        correlationData: Buffer.from('c-1'),
        contentType: 'text/plain',
        responseTopic: 'ws5/reply',
      },
    });
    const [[, , packet]] = (await got) as [[string, string, mqtt.IPublishPacket]];
    expect(packet.properties?.userProperties).toEqual({ a: '1' });
    expect(packet.properties?.correlationData?.toString()).toBe('c-1');
    expect(packet.properties?.contentType).toBe('text/plain');
    expect(packet.properties?.responseTopic).toBe('ws5/reply');
  });
});
