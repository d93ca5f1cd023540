/** Subscription matching, overlapping subscriptions, v5 subscription options, shared subscriptions. */
import { describe, expect, test } from 'vitest';
import type { PublishPacket, QoS } from '../../src/protocol/index.js';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';

const h = brokerHarness();
const { client, subscribe } = h;
const b = h.sharedBroker();

function publish(c: TestClient, topic: string, payload: string, qos: QoS = 0, retain = false): void {
  c.send(h.pub(topic, payload, qos, retain));
}
/** Collects PUBLISH packets until a marker message on `marker` arrives (so "nothing else" is exact). */
async function collectUntilMarker(c: TestClient, pub: TestClient, marker: string): Promise<PublishPacket[]> {
  publish(pub, marker, 'end');
  const got: PublishPacket[] = [];
  for (;;) {
    const m = await c.nextPacket('PUBLISH');
    if (m.topic === marker) return got;
    got.push(m);
  }
}

describe('matching', () => {
  test.each([
    ['a/+/c', ['a/b/c', 'a//c'], ['a/b', 'a/b/c/d', 'x/b/c']],
    ['a/#', ['a', 'a/b', 'a/b/c'], ['b', 'ab']],
    ['+', ['a'], ['a/b', '/a']],
    ['#', ['a', 'a/b', '/'], ['$SYS/x']],
    ['+/+', ['a/b', '/b', '/'], ['a', 'a/b/c']],
    ['$foo/#', ['$foo/x'], ['foo/x']],
    ['+/x', ['a/x'], ['$foo/x']],
  ])('%s', async (filter, yes, no) => {
    const sub = await client(b.port, { version: 5 });
    const pub = await client(b.port, { version: 5 });
    await subscribe(sub, [filter, 'marker/m']);
    for (const t of [...yes, ...no]) publish(pub, t, t);
    const got = await collectUntilMarker(sub, pub, 'marker/m');
    expect(got.map((m) => m.topic).sort()).toEqual([...yes].sort());
  });

  test('$-topics are not matched by a leading wildcard [MQTT-4.7.2-1]', async () => {
    const sub = await client(b.port, { version: 4 });
    const pub = await client(b.port, { version: 4 });
    await subscribe(sub, ['#', '+/info', 'marker/d']);
    publish(pub, '$foo/info', 'x');
    publish(pub, 'bar/info', 'y');
    const got = await collectUntilMarker(sub, pub, 'marker/d');
    expect(got.map((m) => m.topic)).toEqual(['bar/info']);
  });

  test('SUBACK failure codes for invalid filters (3.1.1 0x80, v5 0x8F)', async () => {
    const c4 = await client(b.port, { version: 4 });
    expect(await subscribe(c4, ['a/#/b', 'ok/+', 'a+'])).toEqual([0x80, 0, 0x80]);
    const c5 = await client(b.port, { version: 5 });
    expect(await subscribe(c5, ['#/a', { topicFilter: 'ok', qos: 2 }, '$share//x'])).toEqual([0x8f, 2, 0x8f]);
  });

  test('UNSUBSCRIBE: v5 reason codes per filter; delivery stops', async () => {
    const c = await client(b.port, { version: 5 });
    const pub = await client(b.port, { version: 5 });
    await subscribe(c, ['u/1', 'marker/u']);
    c.send({ type: 'UNSUBSCRIBE', packetId: 77, topicFilters: ['u/1', 'u/never', 'u/#/x'] });
    const ack = await c.nextPacket('UNSUBACK');
    expect(ack.packetId).toBe(77);
    expect(ack.reasonCodes).toEqual([0x00, 0x11, 0x8f]);
    publish(pub, 'u/1', 'gone');
    expect(await collectUntilMarker(c, pub, 'marker/u')).toEqual([]);
  });

  test('UNSUBSCRIBE 3.1.1: UNSUBACK without reason codes', async () => {
    const c = await client(b.port, { version: 4 });
    await subscribe(c, ['u4']);
    c.send({ type: 'UNSUBSCRIBE', packetId: 5, topicFilters: ['u4'] });
    const ack = await c.nextPacket('UNSUBACK');
    expect(ack.packetId).toBe(5);
    expect(ack.reasonCodes).toEqual([]);
  });

  test('granted QoS is the requested QoS; resubscribing replaces the subscription', async () => {
    const c = await client(b.port, { version: 4 });
    const pub = await client(b.port, { version: 4 });
    expect(await subscribe(c, [{ topicFilter: 'rq', qos: 2 }])).toEqual([2]);
    expect(await subscribe(c, [{ topicFilter: 'rq', qos: 0 }, 'marker/r'])).toEqual([0, 0]);
    publish(pub, 'rq', 'x', 2);
    const got = await collectUntilMarker(c, pub, 'marker/r');
    expect(got.map((m) => m.qos)).toEqual([0]);
  });
});

describe('overlapping subscriptions', () => {
  test('3.1.1: one copy, at the highest QoS of the matching subscriptions', async () => {
    const c = await client(b.port, { version: 4 });
    const pub = await client(b.port, { version: 4 });
    await subscribe(c, [{ topicFilter: 'o/+', qos: 0 }, { topicFilter: 'o/#', qos: 1 }, 'o/x', 'marker/o']);
    publish(pub, 'o/x', 'hello', 2);
    const got = await collectUntilMarker(c, pub, 'marker/o');
    expect(got.length).toBe(1);
    expect(got[0]!.qos).toBe(1);
  });

  test('v5: one copy per subscription, each with its Subscription Identifier', async () => {
    const c = await client(b.port, { version: 5 });
    const pub = await client(b.port, { version: 5 });
    await subscribe(c, [{ topicFilter: 'o5/+', qos: 0 }], 11);
    await subscribe(c, [{ topicFilter: 'o5/#', qos: 1 }], 22);
    await subscribe(c, ['marker/o5']);
    publish(pub, 'o5/x', 'hello', 1);
    const got = await collectUntilMarker(c, pub, 'marker/o5');
    const byId = got.map((m) => [m.properties?.subscriptionIdentifiers, m.qos]).sort();
    expect(byId).toEqual([
      [[11], 0],
      [[22], 1],
    ]);
  });
});

describe('v5 subscription options', () => {
  test('No Local: own messages are not delivered back', async () => {
    const c = await client(b.port, { version: 5 });
    const other = await client(b.port, { version: 5 });
    await subscribe(c, [{ topicFilter: 'nl', qos: 0, noLocal: true }, 'marker/nl']);
    publish(c, 'nl', 'mine');
    publish(other, 'nl', 'theirs');
    const got = await collectUntilMarker(c, other, 'marker/nl');
    expect(got.map((m) => m.payload.toString())).toEqual(['theirs']);
  });

  test('Retain As Published keeps the RETAIN flag on live delivery; otherwise it is cleared', async () => {
    const c = await client(b.port, { version: 5 });
    const pub = await client(b.port, { version: 5 });
    await subscribe(c, [{ topicFilter: 'rap/1', qos: 0, retainAsPublished: true }, 'rap/2', 'marker/rap']);
    publish(pub, 'rap/1', 'a', 0, true);
    publish(pub, 'rap/2', 'b', 0, true);
    const got = await collectUntilMarker(c, pub, 'marker/rap');
    expect(got.map((m) => [m.topic, m.retain])).toEqual([
      ['rap/1', true],
      ['rap/2', false],
    ]);
    publish(pub, 'rap/1', '', 0, true);
    publish(pub, 'rap/2', '', 0, true);
  });

  test('Retain Handling 0 / 1 / 2', async () => {
    const pub = await client(b.port, { version: 5 });
    publish(pub, 'rh/t', 'kept', 0, true);
    const probe = await client(b.port, { version: 5 });
    await subscribe(probe, ['rh/t']);
    await probe.nextPacket('PUBLISH');

    const c = await client(b.port, { version: 5 });
    await subscribe(c, [{ topicFilter: 'rh/t', qos: 0, retainHandling: 0 }]);
    expect((await c.nextPacket('PUBLISH')).retain).toBe(true);
    await subscribe(c, [{ topicFilter: 'rh/t', qos: 0, retainHandling: 0 }]);
    expect((await c.nextPacket('PUBLISH')).retain).toBe(true); // 0: again on every subscribe

    const c1 = await client(b.port, { version: 5 });
    await subscribe(c1, [{ topicFilter: 'rh/+', qos: 0, retainHandling: 1 }]);
    expect((await c1.nextPacket('PUBLISH')).payload.toString()).toBe('kept');
    await subscribe(c1, [{ topicFilter: 'rh/+', qos: 0, retainHandling: 1 }, 'marker/rh1']);
    expect(await collectUntilMarker(c1, pub, 'marker/rh1')).toEqual([]); // 1: not for an existing subscription

    const c2 = await client(b.port, { version: 5 });
    await subscribe(c2, [{ topicFilter: 'rh/#', qos: 0, retainHandling: 2 }, 'marker/rh2']);
    expect(await collectUntilMarker(c2, pub, 'marker/rh2')).toEqual([]); // 2: never
    publish(pub, 'rh/t', '', 0, true);
  });
});

describe('shared subscriptions', () => {
  test('$share/group/filter: round-robin among the group, one copy per group', async () => {
    const m1 = await client(b.port, { version: 5 });
    const m2 = await client(b.port, { version: 5 });
    const plain = await client(b.port, { version: 5 });
    const pub = await client(b.port, { version: 5 });
    await subscribe(m1, ['$share/g/sh/+', 'marker/sh']);
    await subscribe(m2, ['$share/g/sh/+', 'marker/sh']);
    await subscribe(plain, ['sh/+', 'marker/sh']);
    for (let i = 0; i < 6; i++) publish(pub, 'sh/x', String(i));
    const [a, bb, p] = await Promise.all([
      collectUntilMarker(m1, pub, 'marker/sh'),
      collectUntilMarker(m2, pub, 'marker/sh'),
      collectUntilMarker(plain, pub, 'marker/sh'),
    ]);
    expect(a.length).toBe(3);
    expect(bb.length).toBe(3);
    expect([...a, ...bb].map((m) => m.payload.toString()).sort()).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(p.length).toBe(6);
  });

  test('No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]', async () => {
    const c = await client(b.port, { version: 5 });
    c.send({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: [{ topicFilter: '$share/g/x', qos: 0, noLocal: true }],
    });
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x82);
  });

  test('shared subscriptions get no retained messages on subscribe', async () => {
    const pub = await client(b.port, { version: 5 });
    publish(pub, 'shr/t', 'kept', 0, true);
    const c = await client(b.port, { version: 5 });
    await subscribe(c, ['$share/g2/shr/t', 'marker/shr']);
    expect(await collectUntilMarker(c, pub, 'marker/shr')).toEqual([]);
    publish(pub, 'shr/t', '', 0, true);
  });
});
