/**
 * Plain-TCP connections on libuv's handles (src/broker/tcp-transport.ts): how they end. The rest of
 * the broker's tests run over them too (the default); backpressure.test.ts also runs on the
 * node:net fallback.
 */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { TcpTransport } from '../../src/broker/tcp-transport.js';
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

  test('a client that shuts its sending side: what it sent is handled, then the broker closes too', async () => {
    const b = await broker();
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
    const b = await broker();
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
    const b = await broker();
    const first = await client(b.port, { version: 5, clientId: 'same' });
    await client(b.port, { version: 5, clientId: 'same' });
    const d = await first.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x8e);
    await first.closed(3000);
    await until(() => brokerCore(b.broker).connections.size === 1, 3000, 'the old connection forgotten');
  });
});
