/**
 * Backpressure (issue 11): a publisher is not read from while a subscriber it feeds is backed up,
 * so a slow subscriber loses no QoS 0 message; a subscriber that does not catch up within
 * --backpressure-timeout stops holding anyone up and gets its QoS 0 messages dropped (counted in
 * $SYS); clients that do not read cannot stall the broker. Real sockets, in-process broker.
 *
 * Loopback sockets buffer megabytes on each side, so each test sends more than the broker's old
 * bound (64 MiB waiting for one client, then drops) plus every buffer on the way.
 */
import type { Socket } from 'node:net';
import { describe, expect, test } from 'vitest';
import { encode, Framer, type PublishPacket } from '../../src/protocol/index.js';
import { brokerHarness, type StartedBroker } from '../helpers/mqtt-test-client.js';

const { broker, client, subscribe } = brokerHarness();

const PAYLOAD = 1024;
/** 96 MiB of QoS 0 PUBLISHes: more than 64 MiB plus what the sockets on the way hold. */
const COUNT = 96 * 1024;

/** COUNT QoS 0 PUBLISHes to `topic`, payload = sequence number (4 bytes) + padding, in one buffer. */
function publishes(topic: string, count = COUNT): Buffer {
  const one = encode(
    { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic, payload: Buffer.alloc(PAYLOAD) },
    4,
  );
  const all = Buffer.allocUnsafe(one.length * count);
  for (let i = 0; i < count; i++) {
    one.copy(all, i * one.length);
    all.writeUInt32BE(i, (i + 1) * one.length - PAYLOAD);
  }
  return all;
}

/** Polls `cond` every 20 ms until it holds; fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves once the broker has read nothing for `quietMs` (its bytes-received counter has not
 * moved): the client feeding it is paused, or done.
 */
async function readingStopped(b: StartedBroker, quietMs = 300, ms = 10_000): Promise<number> {
  let last = -1;
  let since = Date.now();
  await until(
    () => {
      const now = b.broker.stats.bytesReceived;
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    ms,
    'the broker to stop reading',
  );
  return last;
}

/**
 * A subscriber that counts PUBLISHes (and checks their sequence numbers are in order) without
 * keeping them; starts paused when asked (a client that does not read).
 */
async function counter(port: number, clientId: string, filter: string, paused: boolean) {
  const c = await client(port, { clientId });
  expect(await subscribe(c, filter)).toBe(0);
  const state = { count: 0, outOfOrder: 0, socket: c.socket as Socket };
  // From here on the bytes are framed here, not by the test client.
  c.socket.removeAllListeners('data');
  const framer = new Framer(4);
  c.socket.on('data', (chunk: Buffer) =>
    framer.pushFrames(chunk, (raw) => {
      if (raw[0]! >> 4 !== 3) return true;
      const seq = raw.readUInt32BE(raw.length - PAYLOAD);
      if (seq !== state.count) state.outOfOrder++;
      state.count++;
      return true;
    }),
  );
  if (paused) c.socket.pause();
  return state;
}

/** Waits (20 s at most) until `sub` has counted all COUNT messages, and checks they came in order. */
async function everyMessage(sub: { count: number; outOfOrder: number }, name: string): Promise<void> {
  await until(() => sub.count === COUNT, 20_000, `all ${COUNT} messages to ${name} (got ${sub.count})`);
  expect(sub.outOfOrder).toBe(0);
}

/** A raw publisher (CONNECT done) that writes `bytes` at once. */
async function publisher(port: number, clientId: string, keepalive = 60) {
  const c = await client(port, { clientId, keepalive });
  return c;
}

describe.each([
  ['on TCP handles', {}],
  ["on node:net's sockets (the fallback)", { nodeStreams: true }],
])('backpressure %s', (_name, transport) => {
  test('a subscriber that reads late loses no QoS 0 message: its publisher is not read from meanwhile, then resumed', async () => {
    const b = await broker({ backpressureTimeoutMs: 60_000, ...transport });
    const sub = await counter(b.port, 'late', 'bp/#', true);
    const pub = await publisher(b.port, 'fast');
    const bytes = publishes('bp/x');
    pub.socket.write(bytes);
    // The broker stops reading the publisher while the subscriber takes nothing: the publisher's
    // bytes wait in its own socket (TCP pushes back), far short of the whole.
    const read = await readingStopped(b);
    expect(read).toBeLessThan(bytes.length / 2);
    expect(pub.socket.writableLength).toBeGreaterThan(0);
    expect(b.broker.stats.messagesDropped).toBe(0);
    // The subscriber reads: the publisher is read again, and every message arrives, in order.
    sub.socket.resume();
    await everyMessage(sub, 'late');
    expect(b.broker.stats.messagesDropped).toBe(0);
    await until(() => pub.socket.writableLength === 0, 5000, "the publisher's socket to drain");
  });

  test('without backpressure (--backpressure-timeout 0) the same subscriber loses messages', async () => {
    // The contrast that shows the test above can fail: the broker reads everything at once.
    const b = await broker({ backpressureTimeoutMs: 0, ...transport });
    const sub = await counter(b.port, 'late', 'bp/#', true);
    const pub = await publisher(b.port, 'fast');
    pub.socket.write(publishes('bp/x'));
    await b.waitForLog(/\[late\] dropped \d+ message\(s\): client not reading/, 10_000);
    sub.socket.resume();
    await readingStopped(b);
    expect(b.broker.stats.messagesDropped).toBeGreaterThan(0);
  });

  test('a subscriber stuck beyond --backpressure-timeout: publishers resume, its QoS 0 messages are dropped and counted in $SYS, the others get everything', async () => {
    const b = await broker({ backpressureTimeoutMs: 500, sysInterval: 1, ...transport });
    const stuck = await counter(b.port, 'stuck', 'bp/#', true);
    const healthy = await counter(b.port, 'healthy', 'bp/#', false);
    const pub = await publisher(b.port, 'fast');
    pub.socket.write(publishes('bp/x'));
    await b.waitForLog(/\[stuck\] not reading: .* not caught up within 0.5 s/, 10_000);
    await everyMessage(healthy, 'healthy');
    await b.waitForLog(/\[stuck\] dropped \d+ message\(s\): client not reading/, 5000);
    // $SYS/broker/publish/messages/dropped says so (retained, updated every --sys-interval).
    const sys = await client(b.port, { clientId: 'sys' });
    sys.send({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: [{ topicFilter: '$SYS/broker/publish/messages/dropped', qos: 0 }],
    });
    await sys.nextPacket('SUBACK');
    let dropped = 0;
    while (dropped === 0)
      dropped = Number(((await sys.nextPacket('PUBLISH', 3000)) as PublishPacket).payload);
    expect(dropped).toBeGreaterThan(0);
    expect(stuck.count).toBeLessThan(COUNT);
  });

  test('a subscriber that reads only a trickle holds no one up beyond the timeout either', async () => {
    const b = await broker({ backpressureTimeoutMs: 500, ...transport });
    const trickle = await counter(b.port, 'trickle', 'bp/#', true);
    const healthy = await counter(b.port, 'healthy', 'bp/#', false);
    // One read every 100 ms (up to 64 KiB): it always makes progress, and never catches up.
    trickle.socket.on('data', () => trickle.socket.pause());
    const timer = setInterval(() => trickle.socket.resume(), 100);
    try {
      const pub = await publisher(b.port, 'fast');
      pub.socket.write(publishes('bp/x'));
      await b.waitForLog(/\[trickle\] not reading: .* not caught up within 0.5 s/, 10_000);
      // At the trickle's pace the 96 MiB would take minutes.
      await everyMessage(healthy, 'healthy');
    } finally {
      clearInterval(timer);
    }
  });

  test('QoS 1 messages to a stuck subscriber are never dropped: they wait, and arrive once it reads', async () => {
    const b = await broker({ backpressureTimeoutMs: 500, ...transport });
    const sub = await client(b.port, { clientId: 'stuck' });
    expect(await subscribe(sub, 'q1/#', 1)).toBe(1);
    sub.socket.pause();
    // A QoS 0 flood makes it stuck (its QoS 0 messages are dropped), then 500 QoS 1 messages.
    const flood = publishes('q1/x');
    const ones = Array.from({ length: 500 }, (_, i) =>
      encode(
        {
          type: 'PUBLISH',
          dup: false,
          qos: 1,
          retain: false,
          topic: 'q1/one',
          packetId: i + 1,
          payload: Buffer.from(`m${i}`),
        },
        4,
      ),
    );
    const pub = await publisher(b.port, 'fast');
    pub.socket.write(Buffer.concat([flood, ...ones]));
    await b.waitForLog(/\[stuck\] not reading: .* not caught up within 0.5 s/, 10_000);
    await b.waitForLog(/\[stuck\] dropped \d+ message\(s\): client not reading/, 10_000);
    sub.socket.resume();
    const got: string[] = [];
    while (got.length < 500) {
      const p = (await sub.nextPacket('PUBLISH', 10_000)) as PublishPacket;
      if (p.qos === 1) {
        sub.send({ type: 'PUBACK', packetId: p.packetId! });
        got.push(p.payload.toString());
      }
    }
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`));
  });
});

describe('backpressure: clients that do not read', () => {
  test('a client that publishes to its own subscription and never reads does not stall itself or anyone', async () => {
    // A long timeout: pausing the client for its own backlog would hold it up for all of it.
    const b = await broker({ backpressureTimeoutMs: 60_000 });
    const self = await counter(b.port, 'self', 'loop/#', true);
    const healthy = await counter(b.port, 'healthy', 'loop/#', false);
    const bytes = publishes('loop/x');
    self.socket.write(bytes);
    // Every byte it sends is read (it is never paused for its own backlog) and reaches the other.
    await everyMessage(healthy, 'healthy');
    await until(() => self.socket.writableLength === 0, 5000, "the self-publisher's socket to drain");
  });

  test('two clients that each wait for the other to read: both are read again after the timeout', async () => {
    const b = await broker({ backpressureTimeoutMs: 500 });
    const a = await counter(b.port, 'a', 'to/a', true);
    const c = await counter(b.port, 'c', 'to/c', true);
    const total = 2 * publishes('to/a').length;
    a.socket.write(publishes('to/c'));
    c.socket.write(publishes('to/a'));
    await b.waitForLog(/\[a\] not reading/, 10_000);
    await b.waitForLog(/\[c\] not reading/, 10_000);
    // Both are read to the end: nothing waits forever.
    await until(
      () => b.broker.stats.bytesReceived >= total,
      20_000,
      `every byte read (${b.broker.stats.bytesReceived} of ${total})`,
    );
    const other = await counter(b.port, 'other', 'ok', false);
    const p = await publisher(b.port, 'p');
    p.socket.write(publishes('ok', 10));
    await until(() => other.count === 10, 5000, 'the others are served');
  });

  test('a publisher paused longer than 1.5x its keepalive is not disconnected for it', async () => {
    const b = await broker({ backpressureTimeoutMs: 60_000 });
    const sub = await counter(b.port, 'late', 'bp/#', true);
    const pub = await publisher(b.port, 'fast', 1);
    pub.socket.write(publishes('bp/x'));
    await readingStopped(b);
    // Paused for 2.5 s: its keepalive (1 s) would have closed it after 1.5 s of silence.
    await new Promise((r) => setTimeout(r, 2500));
    expect(pub.closedNow).toBe(false);
    sub.socket.resume();
    await everyMessage(sub, 'late');
    expect(b.logs.some((l) => /keepalive timeout/.test(l))).toBe(false);
  });
});
