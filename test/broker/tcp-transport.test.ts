/**
 * Plain-TCP connections on libuv's handles (src/broker/tcp-transport.ts) and on node:net's sockets
 * (the fallback, BrokerOptions.nodeStreams, used where Node lacks the handle API): how they begin
 * and end, and the broker's key behaviours on each. The rest of the broker's tests run on handles
 * (the default); backpressure.test.ts also runs on both.
 */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { TcpTransport } from '../../src/broker/tcp-transport.js';
import type { PublishPacket } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, client, subscribe, pub } = brokerHarness();

/** Polls `cond` every 20 ms until it holds; fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('TCP connections on handles', () => {
  test('are used when Node has the handle API, and nodeStreams turns them off', async () => {
    const fast = await broker();
    await client(fast.port);
    expect([...brokerCore(fast.broker).connections].map((c) => c.transport instanceof TcpTransport)).toEqual([
      true,
    ]);
    const slow = await broker({ nodeStreams: true });
    await client(slow.port);
    expect([...brokerCore(slow.broker).connections].map((c) => c.transport instanceof TcpTransport)).toEqual([
      false,
    ]);
  });
});

describe.each([
  ['on TCP handles', {}],
  ["on node:net's sockets (the fallback)", { nodeStreams: true }],
])('TCP connections %s', (_name, transport) => {
  test('QoS 0, 1 and 2 round trips; a 1 MB message across many reads arrives whole', async () => {
    const b = await broker(transport);
    const sub = await client(b.port, { clientId: 'sub', version: 5 });
    expect(await subscribe(sub, 'rt/#', 2)).toBe(2);
    const p = await client(b.port, { clientId: 'pub', version: 5 });
    p.send(pub('rt/0', 'zero', 0));
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('zero');
    p.send(pub('rt/1', 'one', 1));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    const one = (await sub.nextPacket('PUBLISH')) as PublishPacket;
    expect([one.qos, one.payload.toString()]).toEqual([1, 'one']);
    sub.send({ type: 'PUBACK', packetId: one.packetId! });
    p.send(pub('rt/2', 'two', 2, { packetId: 7 }));
    await p.nextPacket('PUBREC');
    p.send({ type: 'PUBREL', packetId: 7 });
    await p.nextPacket('PUBCOMP');
    const two = (await sub.nextPacket('PUBLISH')) as PublishPacket;
    expect([two.qos, two.payload.toString()]).toEqual([2, 'two']);
    const big = Buffer.alloc(1024 * 1024, 0x61);
    big.write('end', big.length - 3);
    p.send(pub('rt/big', big, 0));
    const got = (await sub.nextPacket('PUBLISH', 5000)) as PublishPacket;
    expect(got.payload.equals(big)).toBe(true);
  });

  test('a retained message and a will outlive the reads that brought them', async () => {
    const b = await broker(transport);
    const p = await client(b.port, {
      clientId: 'w',
      will: { topic: 'keep/will', payload: Buffer.from('will payload'), qos: 1, retain: false },
    });
    p.send(pub('keep/r', 'retained payload', 1, true));
    await p.nextPacket('PUBACK');
    // Later reads (into the same buffer, on handles) must not change what was kept.
    for (let i = 0; i < 50; i++) p.send(pub('other', Buffer.alloc(4096, i), 0));
    const sub = await client(b.port, { clientId: 's' });
    expect(await subscribe(sub, 'keep/#', 1)).toBe(1);
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('retained payload');
    p.socket.destroy();
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('will payload');
  });

  test('a client that shuts its sending side: what it sent is handled, then the broker closes too', async () => {
    const b = await broker(transport);
    const sub = await client(b.port, { clientId: 'sub' });
    expect(await subscribe(sub, 'fin/#')).toBe(0);
    const c = await client(b.port, { clientId: 'fin' });
    c.send(pub('fin/x', 'last words'));
    c.socket.end();
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('last words');
    await c.closed(3000);
    await until(() => b.broker.stats.clientsConnected === 1, 3000, 'the connection forgotten');
    expect(brokerCore(b.broker).connections.size).toBe(1);
  });

  test('a client that resets its connection: forgotten, and its will published', async () => {
    const b = await broker(transport);
    const sub = await client(b.port, { clientId: 'sub' });
    expect(await subscribe(sub, 'will/#')).toBe(0);
    const c = await client(b.port, {
      clientId: 'rst',
      will: { topic: 'will/rst', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    c.socket.resetAndDestroy();
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('gone');
    await until(() => brokerCore(b.broker).connections.size === 1, 3000, 'the connection forgotten');
    expect(b.broker.stats.clientsConnected).toBe(1);
  });

  test('the broker closing a connection (DISCONNECT 0x8E on takeover) ends it on both sides', async () => {
    const b = await broker(transport);
    const first = await client(b.port, { version: 5, clientId: 'same' });
    await client(b.port, { version: 5, clientId: 'same' });
    const d = await first.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x8e);
    await first.closed(3000);
    await until(() => brokerCore(b.broker).connections.size === 1, 3000, 'the old connection forgotten');
  });

  test('close(): connected clients get the wills, then DISCONNECT 0x8B, then the connection ends', async () => {
    const b = await broker(transport);
    const sub = await client(b.port, { version: 5, clientId: 'sub' });
    expect(await subscribe(sub, 'bye/#')).toBe(0);
    await client(b.port, {
      version: 5,
      clientId: 'w',
      will: { topic: 'bye/w', payload: Buffer.from('shutdown will'), qos: 0, retain: false },
    });
    const closing = b.broker.close();
    expect((await sub.nextPacket('PUBLISH')).payload.toString()).toBe('shutdown will');
    expect((await sub.nextPacket('DISCONNECT')).reasonCode).toBe(0x8b);
    await sub.closed(3000);
    await closing;
  });
});
