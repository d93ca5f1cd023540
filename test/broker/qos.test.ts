/** QoS 0/1/2 flows, downgrade, packet ids, in-flight windows, offline queue and redelivery. */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { encode, type PublishPacket } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, sharedBroker, client, subscribe, pub } = brokerHarness();
const b = sharedBroker();

describe('flows', () => {
  test('QoS 1: PUBACK to the publisher, PUBLISH with the subscriber session’s own packet id', async () => {
    const s = await client(b.port, { version: 4 });
    await subscribe(s, 'q1', 1);
    const p = await client(b.port, { version: 4 });
    p.send(pub('q1', 'one', 1, { packetId: 4242 }));
    expect((await p.nextPacket('PUBACK')).packetId).toBe(4242);
    const m = await s.nextPacket('PUBLISH');
    expect([m.qos, m.packetId, m.dup, m.payload.toString()]).toEqual([1, 1, false, 'one']);
    s.send({ type: 'PUBACK', packetId: m.packetId! });
  });

  test('QoS 2: PUBREC/PUBREL/PUBCOMP both ways', async () => {
    const s = await client(b.port, { version: 5, clientId: 'q2-sub' });
    await subscribe(s, 'q2', 2);
    const p = await client(b.port, { version: 5 });
    p.send(pub('q2', 'two', 2, { packetId: 9 }));
    expect((await p.nextPacket('PUBREC')).packetId).toBe(9);
    const m = await s.nextPacket('PUBLISH');
    expect(m.qos).toBe(2);
    s.send({ type: 'PUBREC', packetId: m.packetId! });
    expect((await s.nextPacket('PUBREL')).packetId).toBe(m.packetId);
    s.send({ type: 'PUBCOMP', packetId: m.packetId! });
    p.send({ type: 'PUBREL', packetId: 9 });
    const comp = await p.nextPacket('PUBCOMP');
    expect([comp.packetId, comp.reasonCode ?? 0]).toEqual([9, 0]);
    s.send({ type: 'PINGREQ' });
    await s.nextPacket('PINGRESP');
    expect(brokerCore(b.broker).sessions.get('q2-sub')?.inflight.size).toBe(0);
  });

  test('QoS 2 exactly once: a retransmitted PUBLISH (DUP) before PUBREL is not delivered again', async () => {
    const s = await client(b.port, { version: 4 });
    await subscribe(s, 'q2once', 2);
    const p = await client(b.port, { version: 4 });
    p.send(pub('q2once', 'x', 2, { packetId: 5 }));
    await p.nextPacket('PUBREC');
    p.send(pub('q2once', 'x', 2, { packetId: 5, dup: true }));
    expect((await p.nextPacket('PUBREC')).packetId).toBe(5);
    p.send({ type: 'PUBREL', packetId: 5 });
    await p.nextPacket('PUBCOMP');
    // The same id after PUBCOMP is a new message.
    p.send(pub('q2once', 'y', 2, { packetId: 5 }));
    await p.nextPacket('PUBREC');
    const first = await s.nextPacket('PUBLISH');
    const second = await s.nextPacket('PUBLISH');
    expect([first.payload.toString(), second.payload.toString()]).toEqual(['x', 'y']);
    expect(await s.nothing('PUBLISH', 150)).toBe(true);
  });

  test('PUBREL for an unknown packet id: v5 PUBCOMP 0x92', async () => {
    const p = await client(b.port, { version: 5 });
    p.send({ type: 'PUBREL', packetId: 777 });
    const comp = await p.nextPacket('PUBCOMP');
    expect([comp.packetId, comp.reasonCode]).toEqual([777, 0x92]);
  });

  test('v5 PUBACK says 0x10 No matching subscribers when nobody subscribed', async () => {
    const p = await client(b.port, { version: 5 });
    p.send(pub('nobody/here', 'x', 1, { packetId: 3 }));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x10);
  });

  test.each([
    [2, 0, 0],
    [1, 2, 1],
    [2, 1, 1],
    [0, 2, 0],
  ] as const)('published QoS %i to a QoS %i subscription is delivered at QoS %i', async (pq, sq, want) => {
    const s = await client(b.port, { version: 4 });
    await subscribe(s, `down/${pq}${sq}`, sq);
    const p = await client(b.port, { version: 4 });
    p.send(pub(`down/${pq}${sq}`, 'x', pq, { packetId: pq > 0 ? 1 : undefined }));
    expect((await s.nextPacket('PUBLISH')).qos).toBe(want);
  });

  test('packet ids are per session', async () => {
    const s1 = await client(b.port, { version: 4 });
    const s2 = await client(b.port, { version: 4 });
    await subscribe(s1, 'ids/+', 1);
    await subscribe(s2, 'ids/a', 1);
    const p = await client(b.port, { version: 4 });
    p.send(pub('ids/b', 'only s1', 1, { packetId: 1 }));
    p.send(pub('ids/a', 'both', 1, { packetId: 2 }));
    const a1 = await s1.nextPacket('PUBLISH');
    const a2 = await s1.nextPacket('PUBLISH');
    const b1 = await s2.nextPacket('PUBLISH');
    expect([a1.packetId, a2.packetId, b1.packetId]).toEqual([1, 2, 1]);
  });
});

describe('in-flight windows', () => {
  test("the client's Receive Maximum bounds the broker's unacknowledged QoS 1 messages", async () => {
    const s = await client(b.port, { version: 5, properties: { receiveMaximum: 2 } });
    await subscribe(s, 'rm', 1);
    const p = await client(b.port, { version: 5 });
    for (let i = 0; i < 5; i++) p.send(pub('rm', String(i), 1, { packetId: i + 1 }));
    const m0 = await s.nextPacket('PUBLISH');
    const m1 = await s.nextPacket('PUBLISH');
    expect(await s.nothing('PUBLISH', 200)).toBe(true);
    s.send({ type: 'PUBACK', packetId: m0.packetId! });
    const m2 = await s.nextPacket('PUBLISH');
    expect([m0, m1, m2].map((m) => m.payload.toString())).toEqual(['0', '1', '2']);
    s.send({ type: 'PUBACK', packetId: m1.packetId! });
    s.send({ type: 'PUBACK', packetId: m2.packetId! });
    const rest = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')];
    expect(rest.map((m) => m.payload.toString())).toEqual(['3', '4']);
  });

  test("a client exceeding the broker's Receive Maximum is disconnected with 0x93", async () => {
    const rb = await broker({ receiveMaximum: 2 });
    const p = await client(rb.port, { version: 5 });
    expect(p.connack?.properties?.receiveMaximum).toBe(2);
    for (let i = 1; i <= 3; i++) p.send(pub('rmx', 'x', 2, { packetId: i }));
    const d = await p.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x93);
  });

  test('Receive Maximum [MQTT-3.3.4-7]: QoS 1 bursts are acknowledged as read; QoS 2 counts until PUBREL', async () => {
    const rb = await broker({ receiveMaximum: 2 });
    const p = await client(rb.port, { version: 5 });
    // Five QoS 1 in one write: each PUBACK is queued as its PUBLISH is read, none is pending.
    p.sendRaw(Buffer.concat([1, 2, 3, 4, 5].map((i) => encode(pub('rm1', 'x', 1, { packetId: i }), 5))));
    for (let i = 1; i <= 5; i++) expect((await p.nextPacket('PUBACK')).packetId).toBe(i);
    // QoS 2: two unreleased fill the window; PUBREL frees a slot.
    p.sendRaw(Buffer.concat([11, 12].map((i) => encode(pub('rm2', 'x', 2, { packetId: i }), 5))));
    expect((await p.nextPacket('PUBREC')).packetId).toBe(11);
    expect((await p.nextPacket('PUBREC')).packetId).toBe(12);
    p.send({ type: 'PUBREL', packetId: 11 });
    expect((await p.nextPacket('PUBCOMP')).packetId).toBe(11);
    p.send(pub('rm2', 'x', 2, { packetId: 13 }));
    expect((await p.nextPacket('PUBREC')).packetId).toBe(13);
    // 12 and 13 unreleased: a third is one too many.
    p.send(pub('rm2', 'x', 2, { packetId: 14 }));
    expect((await p.nextPacket('DISCONNECT')).reasonCode).toBe(0x93);
    await p.closed();
    // 3.1.1 has no Receive Maximum: a 3.1.1 client is not held to it.
    const p4 = await client(rb.port, { version: 4 });
    for (let i = 1; i <= 3; i++) p4.send(pub('rm4', 'x', 2, { packetId: i }));
    for (let i = 1; i <= 3; i++) expect((await p4.nextPacket('PUBREC')).packetId).toBe(i);
    expect(p4.closedNow).toBe(false);
  });

  test('--max-inflight bounds 3.1.1 clients too', async () => {
    const rb = await broker({ maxInflight: 1 });
    const s = await client(rb.port, { version: 4 });
    await subscribe(s, 'mi', 1);
    const p = await client(rb.port, { version: 4 });
    p.send(pub('mi', 'a', 1, { packetId: 1 }));
    p.send(pub('mi', 'b', 1, { packetId: 2 }));
    const m = await s.nextPacket('PUBLISH');
    expect(await s.nothing('PUBLISH', 150)).toBe(true);
    s.send({ type: 'PUBACK', packetId: m.packetId! });
    expect((await s.nextPacket('PUBLISH')).payload.toString()).toBe('b');
  });
});

describe('offline queue', () => {
  test('in-flight messages are resent with DUP after reconnect, then the queue, in order', async () => {
    const props = { sessionExpiryInterval: 60 };
    const s = await client(b.port, { version: 5, clientId: 'redeliver', properties: props });
    await subscribe(s, 'rd', 1);
    const p = await client(b.port, { version: 5 });
    p.send(pub('rd', 'm0', 1, { packetId: 1 }));
    p.send(pub('rd', 'm1', 1, { packetId: 2 }));
    const first = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')];
    s.destroy(); // no PUBACK, no DISCONNECT
    await b.waitForLog(/\[redeliver\] connection lost/);
    for (let i = 2; i < 5; i++) {
      p.send(pub('rd', `m${i}`, 1, { packetId: i + 1 }));
      await p.nextPacket('PUBACK');
    }
    const back = await client(b.port, { version: 5, clientId: 'redeliver', clean: false, properties: props });
    expect(back.connack?.sessionPresent).toBe(true);
    const got: PublishPacket[] = [];
    for (let i = 0; i < 5; i++) {
      const m = await back.nextPacket('PUBLISH');
      got.push(m);
      back.send({ type: 'PUBACK', packetId: m.packetId! });
    }
    expect(got.map((m) => m.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(got.map((m) => m.dup)).toEqual([true, true, false, false, false]);
    expect(got.slice(0, 2).map((m) => m.packetId)).toEqual(first.map((m) => m.packetId));
    await back.disconnect();
  });

  test('QoS 2 in PUBREL state is resumed with PUBREL after reconnect', async () => {
    const props = { sessionExpiryInterval: 60 };
    const s = await client(b.port, { version: 5, clientId: 'rel-resume', properties: props });
    await subscribe(s, 'rr', 2);
    const p = await client(b.port, { version: 5 });
    p.send(pub('rr', 'x', 2, { packetId: 1 }));
    const m = await s.nextPacket('PUBLISH');
    s.send({ type: 'PUBREC', packetId: m.packetId! });
    await s.nextPacket('PUBREL');
    s.destroy();
    await b.waitForLog(/\[rel-resume\] connection lost/);
    const back = await client(b.port, {
      version: 5,
      clientId: 'rel-resume',
      clean: false,
      properties: props,
    });
    const rel = await back.nextPacket('PUBREL');
    expect(rel.packetId).toBe(m.packetId);
    back.send({ type: 'PUBCOMP', packetId: rel.packetId });
    expect(await back.nothing('PUBLISH', 150)).toBe(true);
    await back.disconnect();
  });
});
