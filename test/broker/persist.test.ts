/** --persist: sessions, subscriptions, queued QoS>0 messages and retained messages across a restart. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

let dir: string;
const h = brokerHarness();
const { client, pub } = h;
const broker = (file: string) => h.broker({ persistFile: file });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-persist-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('--persist', () => {
  test('queued messages, subscriptions and retained messages survive a restart', async () => {
    const file = join(dir, 'a.log');
    const b1 = await broker(file);
    const s = await client(b1.port, {
      version: 5,
      clientId: 'durable',
      properties: { sessionExpiryInterval: 3600 },
    });
    s.send({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: [{ topicFilter: 'd/+', qos: 2 }],
      properties: { subscriptionIdentifiers: [5] },
    });
    await s.nextPacket('SUBACK');
    await s.disconnect();
    const p = await client(b1.port, { version: 5 });
    p.send(pub('d/1', 'one', 1, false));
    await p.nextPacket('PUBACK');
    p.send(pub('d/2', 'two', 2, false));
    await p.nextPacket('PUBREC');
    p.send(pub('keep/me', 'retained', 1, true));
    await p.nextPacket('PUBACK');
    await b1.broker.close();

    const b2 = await broker(file);
    await b2.waitForLog(/restored 1 session\(s\), 2 queued message\(s\), 1 retained message\(s\)/);
    const back = await client(b2.port, {
      version: 5,
      clientId: 'durable',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    expect(back.connack?.sessionPresent).toBe(true);
    const m1 = await back.nextPacket('PUBLISH');
    const m2 = await back.nextPacket('PUBLISH');
    expect([m1.payload.toString(), m1.qos, m1.properties?.subscriptionIdentifiers]).toEqual(['one', 1, [5]]);
    expect([m2.payload.toString(), m2.qos]).toEqual(['two', 2]);
    back.send({ type: 'PUBACK', packetId: m1.packetId! });
    back.send({ type: 'PUBREC', packetId: m2.packetId! });
    await back.nextPacket('PUBREL');
    back.send({ type: 'PUBCOMP', packetId: m2.packetId! });
    // The subscription survived too: a new publish is delivered.
    const p2 = await client(b2.port, { version: 4 });
    p2.send(pub('d/3', 'three', 0));
    expect((await back.nextPacket('PUBLISH')).payload.toString()).toBe('three');
    const r = await client(b2.port, { version: 4 });
    r.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'keep/#', qos: 1 }] });
    const retained = await r.nextPacket('PUBLISH');
    expect([retained.topic, retained.payload.toString(), retained.retain]).toEqual([
      'keep/me',
      'retained',
      true,
    ]);
  });

  test('acknowledged messages are not redelivered after a restart; a deleted retained message stays deleted', async () => {
    const file = join(dir, 'b.log');
    const b1 = await broker(file);
    const s = await client(b1.port, { version: 4, clientId: 'acked', clean: false });
    s.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'k', qos: 1 }] });
    await s.nextPacket('SUBACK');
    const p = await client(b1.port, { version: 4 });
    p.send(pub('k', 'x', 1));
    await p.nextPacket('PUBACK');
    p.send(pub('r/k', 'x', 1, true));
    await p.nextPacket('PUBACK');
    const m = await s.nextPacket('PUBLISH');
    s.send({ type: 'PUBACK', packetId: m.packetId! });
    await s.disconnect();
    p.send(pub('r/k', '', 1, true));
    await p.nextPacket('PUBACK');
    await b1.broker.close();
    // The log was compacted on close: one session, nothing else.
    const records = readFileSync(file, 'utf8').trim().split('\n');
    expect(records.map((l) => (JSON.parse(l) as { o: string }).o)).toEqual(['S']);

    const b2 = await broker(file);
    const back = await client(b2.port, { version: 4, clientId: 'acked', clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    const r = await client(b2.port, { version: 4 });
    r.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'r/#', qos: 1 }] });
    await r.nextPacket('SUBACK');
    expect(await back.nothing('PUBLISH', 200)).toBe(true);
    expect(await r.nothing('PUBLISH', 50)).toBe(true);
  });

  test('sessions that end with their connection are not kept', async () => {
    const file = join(dir, 'c.log');
    const b1 = await broker(file);
    const c = await client(b1.port, { version: 5, clientId: 'gone' });
    await c.disconnect();
    await b1.broker.close();
    const b2 = await broker(file);
    const back = await client(b2.port, { version: 5, clientId: 'gone', clean: false });
    expect(back.connack?.sessionPresent).toBe(false);
  });
});
