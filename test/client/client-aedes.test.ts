/**
 * MqttClient against a real broker in-process (Aedes, MQTT 3.1.1, as a test oracle), through a
 * packet-aware proxy where a test needs to cut or swallow traffic.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DisconnectError, MqttClient } from '../../src/client/index.js';
import type { Packet } from '../../src/protocol/index.js';
import { clientHarness } from '../helpers/client-harness.js';
import { once, startCuttingProxy, startProxy } from '../helpers/fake-broker.js';

let aedes: Aedes;
let server: net.Server;
let port: number;
const { cleanups, opts, connect, collect, subscriber } = clientHarness({
  version: 4,
  idPrefix: 'aedes-test',
});

beforeAll(async () => {
  aedes = await Aedes.createBroker();
  server = net.createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise<void>((r) => aedes.close(() => r()));
});

describe('publish and subscribe (3.1.1)', () => {
  test.each([0, 1, 2] as const)('QoS %i round trip', async (qos) => {
    const sub = await connect(opts(port));
    const got = collect(sub);
    const suback = await sub.subscribe([{ topicFilter: `rt/${qos}/#`, qos }]);
    expect(suback.reasonCodes).toEqual([qos]);
    const pub = await connect(opts(port));
    const result = await pub.publish(`rt/${qos}/x`, Buffer.from([0, 1, 255]), { qos });
    expect(result.reasonCode).toBe(0);
    if (qos > 0) expect(result.packetId).toBeGreaterThan(0);
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]).toMatchObject({ topic: `rt/${qos}/x`, qos });
    expect(got[0]!.payload).toEqual(Buffer.from([0, 1, 255]));
    await pub.end();
  });

  test('unsubscribe stops delivery', async () => {
    const { client: sub, got } = await subscriber(opts(port), 'unsub/a');
    await sub.unsubscribe(['unsub/a']);
    await sub.subscribe([{ topicFilter: 'unsub/b', qos: 1 }]);
    const pub = await connect(opts(port));
    await pub.publish('unsub/a', 'no', { qos: 1 });
    await pub.publish('unsub/b', 'yes', { qos: 1 });
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]!.topic).toBe('unsub/b');
  });

  test('over a Unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mq-unix-'));
    const path = join(dir, 'broker.sock');
    const unixServer = net.createServer(aedes.handle);
    await new Promise<void>((r) => unixServer.listen(path, r));
    cleanups.push(async () => {
      await new Promise<void>((r) => unixServer.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    });
    const { client: c, got } = await subscriber({ ...opts(0), transport: 'unix', path }, 'unix/t');
    await c.publish('unix/t', 'over unix', { qos: 1 });
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]!.payload.toString()).toBe('over unix');
  });
});

describe('will', () => {
  test('destroy() (no DISCONNECT) makes the broker publish the will; end() does not', async () => {
    const { got } = await subscriber(opts(port), 'will/#');
    const will = { topic: 'will/gone', payload: Buffer.from('bye'), qos: 1 as const, retain: false };
    const polite = await MqttClient.connect(opts(port, { will: { ...will, topic: 'will/polite' } }));
    await polite.end();
    const rude = await MqttClient.connect(opts(port, { will }));
    rude.destroy();
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]).toMatchObject({ topic: 'will/gone', qos: 1 });
    expect(got[0]!.payload.toString()).toBe('bye');
  });
});

describe('across a forced disconnect', () => {
  test('QoS 2 cut right after PUBREC: PUBREL resent on reconnect; no loss, no duplicate', async () => {
    const { got } = await subscriber(opts(port), 'eo/q2', 2);
    const proxy = await startCuttingProxy(port, 4, 'PUBREC');
    cleanups.push(() => proxy.stop());
    const pub = await connect(
      opts(proxy.port, {
        clean: false,
        clientId: `eo-pub-${process.pid}`,
        reconnect: { minMs: 10, maxMs: 100 },
      }),
    );
    const reconnected = once<[unknown, boolean]>(pub, 'connect');
    const result = await pub.publish('eo/q2', 'exactly once', { qos: 2 });
    expect(result.reasonCode).toBe(0);
    // (Aedes answers sessionPresent 0 here; the client resends the PUBREL either way.)
    await reconnected;
    expect(proxy.sentAfterCut).toEqual(['CONNECT', 'PUBREL']);
    await expect.poll(() => got.length).toBe(1);
    // Give a duplicate every chance to show up: one more message through the same path.
    await pub.publish('eo/q2', 'marker', { qos: 2 });
    await expect.poll(() => got.length).toBe(2);
    expect(got.map((p) => p.payload.toString())).toEqual(['exactly once', 'marker']);
  });

  test('lost session (clean start): reconnects with backoff, resubscribes, receives again', async () => {
    const proxy = await startCuttingProxy(port, 4);
    cleanups.push(() => proxy.stop());
    const { client: sub, got } = await subscriber(
      opts(proxy.port, { reconnect: { minMs: 20, maxMs: 200 } }),
      'resub/#',
    );
    const reconnect = once<[number, number]>(sub, 'reconnect');
    const connected = once<[unknown, boolean]>(sub, 'connect');
    const resubscribed = once<[{ reasonCodes: number[] }]>(sub, 'resubscribed');
    const offline = once<[Error]>(sub, 'offline');
    proxy.cutAll();
    const [lost] = await offline;
    expect(lost).toBeInstanceOf(DisconnectError);
    expect(lost.message).toMatch(/the connection to 127\.0\.0\.1:\d+ was lost/);
    const [attempt, delay] = await reconnect;
    expect(attempt).toBe(1);
    expect(delay).toBeGreaterThanOrEqual(10);
    expect(delay).toBeLessThanOrEqual(20);
    const [, resumed] = await connected;
    expect(resumed).toBe(false);
    const [suback] = await resubscribed;
    expect(suback.reasonCodes).toEqual([1]);
    expect(proxy.sentAfterCut.filter((t) => t === 'SUBSCRIBE')).toHaveLength(1);
    const pub = await connect(opts(port));
    await pub.publish('resub/x', 'after reconnect', { qos: 1 });
    await expect.poll(() => got.length).toBe(1);
    expect(got[0]!.payload.toString()).toBe('after reconnect');
  });

  test('session kept (persistent): no SUBSCRIBE on reconnect, messages still arrive', async () => {
    const proxy = await startProxy(port, 4);
    cleanups.push(() => proxy.stop());
    const sent: Packet['type'][] = [];
    const sub = await connect(
      opts(proxy.port, {
        clean: false,
        clientId: `persist-${process.pid}`,
        reconnect: { minMs: 10, maxMs: 100 },
        trace: (d, p) => {
          if (d === 'out') sent.push(p.type);
        },
      }),
    );
    const got = collect(sub);
    await sub.subscribe([{ topicFilter: 'persist/#', qos: 1 }]);
    const connected = once<[unknown, boolean]>(sub, 'connect');
    sent.length = 0;
    proxy.cutAll();
    const [, resumed] = await connected;
    expect(resumed).toBe(true);
    expect(sent).toEqual(['CONNECT']);
    const pub = await connect(opts(port));
    await pub.publish('persist/x', 'still subscribed', { qos: 1 });
    await expect.poll(() => got.length).toBe(1);
  });

  test('dead connection: a path that swallows PINGRESP is detected by keepalive', async () => {
    const proxy = await startProxy(port, 4, { down: (p) => (p.type === 'PINGRESP' ? 'drop' : 'pass') });
    cleanups.push(() => proxy.stop());
    const c = await connect(opts(proxy.port, { keepalive: 1 }));
    const closed = once<[Error | undefined]>(c, 'close', 4000);
    const [err] = await closed;
    expect(err).toBeInstanceOf(DisconnectError);
    expect(err?.message).toMatch(/no answer from .* \(keepalive 1 s\): connection lost/);
  });
});
