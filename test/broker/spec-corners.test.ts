/**
 * Spec corners found by conformance testing (issue 12): Will Delay and reconnects, Session Present
 * after a takeover, the client's Maximum Packet Size and Receive Maximum, unexpected
 * acknowledgements, MQTT 3.1 PUBREL retries, PUBREC before forwarding.
 */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import type { Will } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { sharedBroker, client, subscribe, pub } = brokerHarness();
const b = sharedBroker();

function will(topic: string, delay: number): Will {
  return {
    topic,
    payload: Buffer.from('gone'),
    qos: 0,
    retain: false,
    properties: { willDelayInterval: delay },
  };
}

describe('Will Delay Interval [MQTT-3.1.3-9]', () => {
  test('a reconnect with the same client id and Clean Start 1 before the delay ends: no will [MQTT-3.1.3-9]', async () => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'wd/clean');
    const props = { sessionExpiryInterval: 60 };
    const c = await client(b.port, {
      version: 5,
      clientId: 'wd-clean',
      properties: props,
      will: will('wd/clean', 1),
    });
    c.destroy();
    await b.waitForLog(/\[wd-clean\] connection lost/);
    await client(b.port, { version: 5, clientId: 'wd-clean', clean: true, properties: props });
    expect(await s.nothing('PUBLISH', 1500)).toBe(true);
  });

  test('a takeover (Clean Start 1 or 0) before the delay ends: no will [MQTT-3.1.3-9]', async () => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'wd/take/+');
    for (const [id, clean, expiry] of [
      ['wd-take-1', true, 60],
      ['wd-take-0', false, 60],
      ['wd-take-e0', false, 0],
    ] as const) {
      const props = { sessionExpiryInterval: expiry };
      await client(b.port, { version: 5, clientId: id, properties: props, will: will(`wd/take/${id}`, 1) });
      await client(b.port, { version: 5, clientId: id, clean, properties: props });
    }
    expect(await s.nothing('PUBLISH', 1500)).toBe(true);
  });

  test('no reconnect: the will still comes after the delay', async () => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'wd/late');
    const c = await client(b.port, {
      version: 5,
      clientId: 'wd-late',
      properties: { sessionExpiryInterval: 60 },
      will: will('wd/late', 1),
    });
    c.destroy();
    expect((await s.nextPacket('PUBLISH', 3000)).topic).toBe('wd/late');
  });
});

describe('Session Present after a takeover', () => {
  test('3.1.1: Clean Session 0 taking over a Clean Session 1 connection gets Session Present 0 [MQTT-3.2.2-3]', async () => {
    const old = await client(b.port, { version: 4, clientId: 'sp-4', clean: true });
    await subscribe(old, 'sp/4', 1);
    const fresh = await client(b.port, { version: 4, clientId: 'sp-4', clean: false });
    expect(fresh.connack?.sessionPresent).toBe(false);
    await old.closed();
    // Nothing of the clean session was kept: its subscription is gone.
    const p = await client(b.port, { version: 4 });
    p.send(pub('sp/4', 'x', 1));
    await p.nextPacket('PUBACK');
    expect(await fresh.nothing('PUBLISH', 300)).toBe(true);
    // The new session is kept now: the next connection finds it [MQTT-3.2.2-2].
    fresh.destroy();
    const again = await client(b.port, { version: 4, clientId: 'sp-4', clean: false });
    expect(again.connack?.sessionPresent).toBe(true);
  });

  test('v5: Clean Start 0 taking over a connection with Session Expiry 0 gets Session Present 0 [MQTT-3.2.2-3]', async () => {
    await client(b.port, { version: 5, clientId: 'sp-5' });
    const fresh = await client(b.port, { version: 5, clientId: 'sp-5', clean: false });
    expect(fresh.connack?.sessionPresent).toBe(false);
  });
});

describe("the client's Maximum Packet Size [MQTT-3.1.2-24]", () => {
  test('a PUBLISH that does not fit is discarded for that client, later ones still flow: QoS 0, retained, with a Subscription Identifier [MQTT-3.1.2-25]', async () => {
    const big = Buffer.alloc(200, 'x');
    const p = await client(b.port, { version: 5 });
    p.send(pub('mps/r/big', big, 1, true));
    await p.nextPacket('PUBACK');
    p.send(pub('mps/r/small', 'ok', 1, true));
    await p.nextPacket('PUBACK');
    const s = await client(b.port, { version: 5, properties: { maximumPacketSize: 64 } });
    // Retained on subscribe (the encoded path: a Subscription Identifier is added).
    await subscribe(s, [{ topicFilter: 'mps/r/+', qos: 1 }], 7);
    const r = await s.nextPacket('PUBLISH');
    expect([r.topic, r.properties?.subscriptionIdentifiers]).toEqual(['mps/r/small', [7]]);
    s.send({ type: 'PUBACK', packetId: r.packetId! });
    // Live QoS 0 (the re-framed path).
    await subscribe(s, 'mps/live', 0);
    p.send(pub('mps/live', big, 0));
    p.send(pub('mps/live', 'after', 0));
    expect((await s.nextPacket('PUBLISH')).payload.toString()).toBe('after');
    expect(s.received.every((pk) => pk.type !== 'PUBLISH' || pk.payload.length < 64)).toBe(true);
  });

  test('a CONNACK that does not fit: the connection closes without it [MQTT-3.1.2-24]', async () => {
    // An empty client id: the CONNACK carries the Assigned Client Identifier (~30 bytes).
    const c = await client(b.port, { connect: false, version: 5 });
    c.send({
      type: 'CONNECT',
      protocolVersion: 5,
      clean: true,
      keepalive: 60,
      clientId: '',
      properties: { maximumPacketSize: 16 },
    });
    await c.closed();
    expect(c.received).toEqual([]);
    await b.waitForLog(/CONNACK of \d+ bytes exceeds the client's Maximum Packet Size 16/);
  });

  test('a SUBACK that does not fit: the connection closes without it [MQTT-3.1.2-24]', async () => {
    const c = await client(b.port, { version: 5, properties: { maximumPacketSize: 12 } });
    const filters = Array.from({ length: 10 }, (_, i) => `mps/f${i}`);
    c.send({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: filters.map((topicFilter) => ({ topicFilter, qos: 0 as const })),
    });
    await c.closed();
    expect(c.received.filter((pk) => pk.type === 'SUBACK')).toEqual([]);
  });
});

describe("the client's Receive Maximum (v5) [MQTT-3.3.4-9]", () => {
  test('QoS 2: at most Receive Maximum PUBLISHes unacknowledged; PUBREC does not free a slot, PUBCOMP does', async () => {
    const s = await client(b.port, { version: 5, properties: { receiveMaximum: 2 } });
    await subscribe(s, 'rm2', 2);
    const p = await client(b.port, { version: 5 });
    for (let i = 0; i < 4; i++) {
      p.send(pub('rm2', String(i), 2));
      const rec = await p.nextPacket('PUBREC');
      p.send({ type: 'PUBREL', packetId: rec.packetId });
      await p.nextPacket('PUBCOMP');
    }
    const m0 = await s.nextPacket('PUBLISH');
    const m1 = await s.nextPacket('PUBLISH');
    expect(await s.nothing('PUBLISH', 200)).toBe(true);
    s.send({ type: 'PUBREC', packetId: m0.packetId! });
    await s.nextPacket('PUBREL');
    expect(await s.nothing('PUBLISH', 200)).toBe(true);
    s.send({ type: 'PUBCOMP', packetId: m0.packetId! });
    const m2 = await s.nextPacket('PUBLISH');
    expect([m0, m1, m2].map((m) => m.payload.toString())).toEqual(['0', '1', '2']);
  });
});

describe('unexpected acknowledgements from a 3.1.1 client are ignored, as Mosquitto does', () => {
  test('PUBREC or PUBCOMP for a QoS 1 message, PUBACK for QoS 2, PUBCOMP before PUBREL, unknown ids: the client stays, nothing is released', async () => {
    const s = await client(b.port, { version: 4, clientId: 'odd-acks' });
    await subscribe(s, 'odd/1', 1);
    await subscribe(s, 'odd/2', 2);
    const p = await client(b.port, { version: 4 });
    p.send(pub('odd/1', 'one', 1));
    p.send(pub('odd/2', 'two', 2));
    const q1 = await s.nextPacket('PUBLISH');
    const q2 = await s.nextPacket('PUBLISH');
    s.send({ type: 'PUBREC', packetId: q1.packetId! });
    s.send({ type: 'PUBCOMP', packetId: q1.packetId! });
    s.send({ type: 'PUBACK', packetId: q2.packetId! });
    s.send({ type: 'PUBCOMP', packetId: q2.packetId! });
    s.send({ type: 'PUBACK', packetId: 4000 });
    s.send({ type: 'PUBCOMP', packetId: 4001 });
    s.send({ type: 'PINGREQ' });
    await s.nextPacket('PINGRESP');
    // Nothing was answered (no PUBREL for the QoS 1 message's id), nothing completed.
    expect(s.pending()).toEqual([]);
    const session = brokerCore(b.broker).sessions.get('odd-acks')!;
    expect(session.inflightSize).toBe(2);
    // The proper acknowledgements still complete both.
    s.send({ type: 'PUBACK', packetId: q1.packetId! });
    s.send({ type: 'PUBREC', packetId: q2.packetId! });
    expect((await s.nextPacket('PUBREL')).packetId).toBe(q2.packetId);
    s.send({ type: 'PUBCOMP', packetId: q2.packetId! });
    s.send({ type: 'PINGREQ' });
    await s.nextPacket('PINGRESP');
    expect(session.inflightSize).toBe(0);
  });
});

describe('MQTT 3.1 (MQIsdp)', () => {
  test('a PUBREL sent again after reconnecting (DUP set, as 3.1 retries it) gets its PUBCOMP', async () => {
    const first = await client(b.port, { version: 3, clientId: 'v31-rel', clean: false });
    first.send(pub('v31/rel', 'x', 2, { packetId: 7 }));
    expect((await first.nextPacket('PUBREC')).packetId).toBe(7);
    first.destroy();
    await b.waitForLog(/\[v31-rel\] connection lost/);
    const again = await client(b.port, { version: 3, clientId: 'v31-rel', clean: false });
    again.sendRaw('6a 02 0007'); // PUBREL, DUP and QoS 1 flags (1010), id 7
    expect((await again.nextPacket('PUBCOMP')).packetId).toBe(7);
    again.sendRaw('8a 06 0002 0001 78 00'); // SUBSCRIBE with DUP too (1010): 'x' QoS 0
    expect((await again.nextPacket('SUBACK')).packetId).toBe(2);
  });
});

describe('QoS 2 from a client', () => {
  test('PUBREC goes out before the message is forwarded [MQTT-4.3.3-2] (5.0: [MQTT-4.3.3-8])', async () => {
    for (const version of [4, 5] as const) {
      const c = await client(b.port, { version });
      await subscribe(c, `q2/order/${version}`, 2);
      c.send(pub(`q2/order/${version}`, 'x', 2, { packetId: 9 }));
      const first = await c.nextPacket();
      expect(first.type).toBe('PUBREC');
      expect((await c.nextPacket()).type).toBe('PUBLISH');
    }
  });

  test('v5: PUBREC still says 0x10 No matching subscribers when nobody subscribed', async () => {
    const c = await client(b.port, { version: 5 });
    c.send(pub('q2/nobody', 'x', 2));
    expect((await c.nextPacket('PUBREC')).reasonCode).toBe(0x10);
  });
});
