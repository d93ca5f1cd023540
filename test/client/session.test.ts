/** Packet ids, incoming QoS 2 bookkeeping and topic alias tables, unit by unit. */
import { describe, expect, test } from 'vitest';
import {
  backoffDelay,
  IncomingAliases,
  IncomingQos2,
  OutgoingAliases,
  OutgoingPublishes,
  PacketIdAllocator,
} from '../../src/client/index.js';

describe('PacketIdAllocator', () => {
  test('ids run 1..65535 and wrap, skipping ids still in flight [MQTT-2.2.1-3]', () => {
    const ids = new PacketIdAllocator();
    const held = ids.allocate();
    expect(held).toBe(1);
    for (let i = 2; i <= 65535; i++) {
      const id = ids.allocate()!;
      expect(id).toBe(i);
      if (id !== 3) ids.release(id);
    }
    // Wrapped: 1 and 3 are still in flight.
    expect(ids.allocate()).toBe(2);
    expect(ids.allocate()).toBe(4);
    expect(ids.inUse).toBe(4);
  });

  test('all 65,535 in flight: no id until one is released', () => {
    const ids = new PacketIdAllocator();
    for (let i = 0; i < 65535; i++) ids.allocate();
    expect(ids.allocate()).toBeUndefined();
    ids.release(777);
    expect(ids.allocate()).toBe(777);
  });
});

describe('IncomingQos2', () => {
  test('delivered once until PUBREL; the id is then free for a new message', () => {
    const q = new IncomingQos2();
    expect(q.receive(5)).toBe(true);
    expect(q.receive(5)).toBe(false); // DUP resend before PUBREL
    q.release(5);
    expect(q.receive(5)).toBe(true); // a new message reusing the id
  });
});

describe('topic aliases', () => {
  test('outgoing: plain first, topic+alias on the second use, alias alone after; full table: plain', () => {
    const a = new OutgoingAliases(1);
    expect(a.apply('x')).toEqual({ topic: 'x' });
    expect(a.apply('x')).toEqual({ topic: 'x', alias: 1 });
    expect(a.apply('x')).toEqual({ topic: '', alias: 1 });
    expect(a.apply('y')).toEqual({ topic: 'y' });
    expect(a.apply('y')).toEqual({ topic: 'y' });
    const none = new OutgoingAliases(0);
    none.apply('x');
    expect(none.apply('x')).toEqual({ topic: 'x' });
  });

  test('incoming: 0 or above the announced maximum is an error; so is an unknown alias with an empty topic', () => {
    const a = new IncomingAliases(2);
    expect(a.resolve('t', 0)).toEqual({ error: expect.stringMatching(/outside 1\.\.2/) });
    expect(a.resolve('t', 3)).toEqual({ error: expect.stringMatching(/outside 1\.\.2/) });
    expect(a.resolve('', 1)).toEqual({ error: expect.stringMatching(/never set/) });
    expect(a.resolve('t', 1)).toEqual({ topic: 't' });
    expect(a.resolve('', 1)).toEqual({ topic: 't' });
    a.reset();
    expect(a.resolve('', 1)).toHaveProperty('error');
  });
});

describe('backoffDelay', () => {
  test('doubles from min, capped at max, jittered within the upper half', async () => {
    const range = { minMs: 1000, maxMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, range, () => 1))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
    expect([1, 2, 6].map((a) => backoffDelay(a, range, () => 0))).toEqual([500, 1000, 15_000]);
  });
});

describe('OutgoingPublishes (QoS 1/2 sender state)', () => {
  const pub = (qos: 0 | 1 | 2, topic = 't') => ({
    type: 'PUBLISH' as const,
    dup: false,
    qos,
    retain: false,
    topic,
    payload: Buffer.from('x'),
  });

  test('the in-flight limit holds messages back until an ack frees a slot', async () => {
    const out = new OutgoingPublishes(new PacketIdAllocator());
    out.limit = 2;
    const results: (number | string)[] = [];
    for (let i = 0; i < 3; i++) {
      out.enqueue({
        packet: pub(1),
        resolve: (r) => results.push(r.packetId ?? -1),
        reject: (e) => results.push(e.message),
      });
    }
    const a = out.next()!;
    out.sent(a);
    const b = out.next()!;
    out.sent(b);
    expect(out.next()).toBeUndefined(); // limit 2 reached
    expect(out.onPuback(a.packet.packetId!, 0)).toBe(true);
    expect(out.onPuback(a.packet.packetId!, 0)).toBe(false); // a duplicate ack is ignored
    const c = out.next()!;
    expect(c.packet.packetId).toBe(3);
    await Promise.resolve();
    expect(results).toEqual([1]);
  });

  test('QoS 2: PUBREC -> pubrel, PUBCOMP completes; resend gives PUBLISH(DUP) then PUBREL in order', () => {
    const out = new OutgoingPublishes(new PacketIdAllocator());
    const done: number[] = [];
    for (const topic of ['first', 'second']) {
      out.enqueue({ packet: pub(2, topic), resolve: (r) => done.push(r.packetId!), reject: () => {} });
      out.sent(out.next()!);
    }
    expect(out.onPubrec(2, 0)).toBe('pubrel');
    expect(out.onPubrec(99, 0)).toBe('unknown');
    expect(out.onPubcomp(1)).toBe(false); // 1 never got its PUBREC
    expect([...out.resend()]).toEqual([
      { kind: 'publish', packet: expect.objectContaining({ topic: 'first', dup: true, packetId: 1 }) },
      { kind: 'pubrel', packetId: 2 },
    ]);
    expect(out.onPubcomp(2)).toBe(true);
    expect(out.inflight).toBe(1);
  });

  test('a PUBREC >= 0x80 rejects with the reason by name and frees the id', async () => {
    const ids = new PacketIdAllocator();
    const out = new OutgoingPublishes(ids);
    let error: Error | undefined;
    out.enqueue({ packet: pub(2, 'x/y'), resolve: () => {}, reject: (e) => (error = e) });
    out.sent(out.next()!);
    expect(out.onPubrec(1, 0x87)).toBe('done');
    expect(error?.message).toBe('the broker refused the message to x/y: 0x87 Not authorized');
    expect(ids.inUse).toBe(0);
  });
});
