/**
 * MqttClient against mq's own broker, in-process: MQTT 5 end to end (topic aliases both ways,
 * Receive Maximum, refusals and limits from the broker's fault knobs, QoS 2 across a cut) plus
 * 3.1 / 3.1.1 and WebSocket.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { Broker, type BrokerOptions } from '../../src/broker/index.js';
import { ConnectError, DisconnectError, MqttClient, PublishRefusedError } from '../../src/client/index.js';
import { clientHarness } from '../helpers/client-harness.js';
import { once, startCuttingProxy } from '../helpers/fake-broker.js';

const brokers: Broker[] = [];
const { cleanups, opts, connect, collect, subscriber } = clientHarness({ version: 5, idPrefix: 'mqb' });

afterAll(async () => {
  for (const b of brokers) await b.close();
});

async function startBroker(options: BrokerOptions = {}): Promise<{ port: number; wsPort?: number }> {
  const broker = new Broker({ port: 0, sysInterval: 0, log: () => {}, ...options });
  brokers.push(broker);
  const { tcp, ws } = await broker.listen();
  return ws ? { port: tcp!.port, wsPort: ws.port } : { port: tcp!.port };
}

let shared: { port: number } | undefined;
async function sharedBroker(): Promise<number> {
  shared ??= await startBroker({ topicAliasOut: true });
  return shared.port;
}

describe('round trips', () => {
  test.each([
    [3, 0],
    [4, 1],
    [5, 2],
  ] as const)('MQTT level %i, QoS %i', async (version, qos) => {
    const port = await sharedBroker();
    const { got } = await subscriber(opts(port, { version }), `mqb/${version}/#`, qos);
    const pub = await connect(opts(port, { version }));
    await pub.publish(`mqb/${version}/x`, Buffer.from([1, 2, 3]), { qos });
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]).toMatchObject({ topic: `mqb/${version}/x`, qos });
    expect(got[0]!.payload).toEqual(Buffer.from([1, 2, 3]));
  });

  test('over WebSocket', async () => {
    const { port, wsPort } = await startBroker({ wsPort: 0 });
    const { client: c, got } = await subscriber(
      { ...opts(port), transport: 'ws', port: wsPort!, path: '/mqtt' },
      'ws/#',
    );
    await c.publish('ws/x', 'over ws', { qos: 1 });
    await expect.poll(() => got.length).toBe(1);
  });
});

describe('MQTT 5 features', () => {
  test('topic aliases both ways: the broker aliases what it sends, the client what it sends', async () => {
    const port = await sharedBroker();
    const inbound: [string, number | undefined][] = [];
    const sub = await connect(
      opts(port, {
        connectProperties: { topicAliasMaximum: 4 },
        trace: (d, p) => {
          if (d === 'in' && p.type === 'PUBLISH') inbound.push([p.topic, p.properties?.topicAlias]);
        },
      }),
    );
    const got = collect(sub);
    await sub.subscribe([{ topicFilter: 'ali/#', qos: 1 }]);
    const outbound: [string, number | undefined][] = [];
    const pub = await connect(
      opts(port, {
        trace: (d, p) => {
          if (d === 'out' && p.type === 'PUBLISH') outbound.push([p.topic, p.properties?.topicAlias]);
        },
      }),
    );
    for (let i = 0; i < 4; i++) await pub.publish('ali/some/long/topic', String(i), { qos: 1 });
    await expect.poll(() => got.length).toBe(4);
    expect(got.map((p) => `${p.topic}=${p.payload}`)).toEqual(
      [0, 1, 2, 3].map((i) => `ali/some/long/topic=${i}`),
    );
    expect(outbound.some(([topic, alias]) => topic === '' && alias !== undefined)).toBe(true);
    expect(inbound.some(([topic, alias]) => topic === '' && alias !== undefined)).toBe(true);
  });

  test("the broker's Receive Maximum is honoured (exceeding it would be DISCONNECT 0x93)", async () => {
    const { port } = await startBroker({ receiveMaximum: 2 });
    const c = await connect(opts(port));
    expect(c.connack.properties?.receiveMaximum).toBe(2);
    let peak = 0;
    const all = Array.from({ length: 30 }, (_, i) => {
      const p = c.publish(`rm/${i}`, 'x', { qos: i % 2 === 0 ? 1 : 2 });
      peak = Math.max(peak, c.inflight);
      return p;
    });
    await Promise.all(all);
    expect(peak).toBeLessThanOrEqual(2);
    expect(c.connected).toBe(true);
  });

  test('a refused CONNECT names the reason', async () => {
    const { port } = await startBroker({ refuseConnect: 0x86 });
    const err = (await MqttClient.connect(opts(port)).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(/0x86 Bad User Name or Password/);
  });

  test("publishing above the broker's Maximum QoS is refused before sending", async () => {
    const { port } = await startBroker({ maxQoS: 1 });
    const c = await connect(opts(port));
    const err = (await c.publish('q', 'x', { qos: 2 }).catch((e: unknown) => e)) as PublishRefusedError;
    expect(err).toBeInstanceOf(PublishRefusedError);
    expect(err.message).toBe('the broker accepts at most QoS 1 (Maximum QoS in its CONNACK): use -q 1');
    // QoS 1 goes through; 0x10 No matching subscribers is a success code, not a refusal.
    await expect(c.publish('q', 'x', { qos: 1 })).resolves.toMatchObject({ reasonCode: 0x10 });
  });

  test('QoS 1 and 2 to a broker announcing a Maximum Packet Size: sent when they fit, refused (0x95) when not', async () => {
    const { port } = await startBroker({ maxPacketSize: 200 });
    const c = await connect(opts(port));
    expect(c.connack.properties?.maximumPacketSize).toBe(200);
    await expect(c.publish('mps', Buffer.alloc(100), { qos: 1 })).resolves.toMatchObject({
      reasonCode: 0x10,
    });
    await expect(c.publish('mps', Buffer.alloc(100), { qos: 2 })).resolves.toMatchObject({
      reasonCode: 0x10,
    });
    // 200 - 1 (type) - 2 (remaining length) - 5 (topic) - 2 (packet id) - 1 (properties) = 189 bytes fit.
    await expect(c.publish('mps', Buffer.alloc(189), { qos: 1 })).resolves.toMatchObject({
      reasonCode: 0x10,
    });
    const err = (await c
      .publish('mps', Buffer.alloc(190), { qos: 1 })
      .catch((e: unknown) => e)) as PublishRefusedError;
    expect(err).toBeInstanceOf(PublishRefusedError);
    expect(err.message).toMatch(/\(201 bytes\) exceeds the broker's Maximum Packet Size of 200 bytes/);
    expect(c.connected).toBe(true);
  });

  test('a broker DISCONNECT is reported with its reason, then the client reconnects', async () => {
    const { port } = await startBroker({ disconnectAfterS: 0.3, disconnectReason: 0x98 });
    const c = await connect(opts(port, { reconnect: { minMs: 10, maxMs: 50 } }));
    const [err] = await once<[Error]>(c, 'offline', 3000);
    expect(err).toBeInstanceOf(DisconnectError);
    expect((err as DisconnectError).reasonCode).toBe(0x98);
    expect(err.message).toMatch(/disconnected: 0x98 Administrative action/);
    await once(c, 'connect', 3000);
  });

  test('QoS 2 publisher cut right after PUBREC (persistent session): PUBREL resent, exactly once', async () => {
    const port = await sharedBroker();
    const { got } = await subscriber(opts(port), 'mqb/eo', 2);
    const proxy = await startCuttingProxy(port, 5, 'PUBREC');
    cleanups.push(() => proxy.stop());
    const pub = await connect(
      opts(proxy.port, { clean: false, sessionExpiry: 60, reconnect: { minMs: 10, maxMs: 100 } }),
    );
    const reconnected = once<[unknown, boolean]>(pub, 'connect');
    await pub.publish('mqb/eo', 'exactly once', { qos: 2 });
    const [, resumed] = await reconnected;
    expect(resumed).toBe(true);
    expect(proxy.sentAfterCut).toEqual(['CONNECT', 'PUBREL']);
    await pub.publish('mqb/eo', 'marker', { qos: 2 });
    await expect.poll(() => got.length).toBe(2);
    expect(got.map((p) => p.payload.toString())).toEqual(['exactly once', 'marker']);
  });
});
