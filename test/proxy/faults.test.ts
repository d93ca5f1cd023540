/**
 * The proxy's faults change what a client sees, as stated: --delay adds its delay to every byte
 * (in order, throughput kept), --drop-every loses exactly every Nth PUBLISH (or packet),
 * --throttle caps the byte rate, --disconnect-after cuts the connection. Real sockets, mq broker.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { type DirectionFaults, NO_FAULTS } from '../../src/proxy/index.js';
import { connectClient, rawClient, rawServer, startBroker, startProxy } from './harness.js';

const faults = (f: Partial<DirectionFaults>): DirectionFaults => ({ ...NO_FAULTS, ...f });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describe('--delay', () => {
  /** A publisher through a proxy with --delay up:40, a subscriber direct; latencies of `count` messages. */
  async function delayed(count: number, gapMs: number) {
    const { port } = await startBroker();
    const px = await startProxy(port, { observe: false, faults: { up: faults({ delayMs: 40 }) } });
    const sub = await connectClient(port);
    const pub = await connectClient(px.port);
    const latencies: number[] = [];
    const order: number[] = [];
    const all = new Promise<void>((resolve) =>
      sub.on('message', (p) => {
        const [i, sent] = String(p.payload).split(' ').map(Number) as [number, number];
        order.push(i);
        latencies.push(performance.now() - sent);
        if (order.length === count) resolve();
      }),
    );
    await sub.subscribe([{ topicFilter: 'delay/up', qos: 0 }]);
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      await pub.publish('delay/up', `${i} ${performance.now()}`, { qos: 0 });
      // Paced load, not synchronisation: one message every gapMs.
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    }
    await all;
    return { latencies, order, elapsed: performance.now() - start };
  }

  it('up:40 delays every message by 40 ms (never less), a few ms more at most', async () => {
    const { latencies } = await delayed(30, 5);
    expect(Math.min(...latencies)).toBeGreaterThanOrEqual(40);
    expect(median(latencies)).toBeLessThan(40 + 10);
  });

  it('up:40 keeps the order of a burst of 200 and does not serialise it', async () => {
    const { latencies, order, elapsed } = await delayed(200, 0);
    expect(order).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(Math.min(...latencies)).toBeGreaterThanOrEqual(40);
    // A burst of 200 takes about one delay, not 200 of them.
    expect(elapsed).toBeLessThan(40 * 5);
  });

  it('down:30 delays only what the broker sends: a QoS 1 round trip grows by 30 ms, not 60', async () => {
    const { port } = await startBroker();
    const direct = await connectClient(port);
    const px = await startProxy(port, { observe: false, faults: { down: faults({ delayMs: 30 }) } });
    const via = await connectClient(px.port);
    const rtt = async (c: typeof via) => {
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t = performance.now();
        await c.publish('delay/rtt', 'x', { qos: 1 });
        times.push(performance.now() - t);
      }
      return median(times);
    };
    const added = (await rtt(via)) - (await rtt(direct));
    expect(added).toBeGreaterThanOrEqual(29);
    expect(added).toBeLessThan(30 + 10);
  });
});

describe('--drop-every', () => {
  it('up:3 loses every 3rd PUBLISH the client sends, nothing else', async () => {
    const { port } = await startBroker();
    const px = await startProxy(port, { faults: { up: faults({ dropEvery: 3 }) } });
    const sub = await connectClient(port);
    const got: string[] = [];
    const tenth = new Promise<void>((resolve) =>
      sub.on('message', (p) => {
        got.push(String(p.payload));
        if (String(p.payload) === '10') resolve();
      }),
    );
    await sub.subscribe([{ topicFilter: 'drop/#', qos: 0 }]);
    const pub = await connectClient(px.port);
    for (let i = 1; i <= 10; i++) await pub.publish('drop/a', String(i), { qos: 0 });
    await tenth;
    expect(got).toEqual(['1', '2', '4', '5', '7', '8', '10']);
    expect(
      px
        .packets('up')
        .filter((e) => e.dropped)
        .map((e) => String(e.packet?.type)),
    ).toEqual(['PUBLISH', 'PUBLISH', 'PUBLISH']);
  });

  it('with dropAny, every 2nd packet of any type but CONNECT/CONNACK is lost', async () => {
    const { port } = await startBroker();
    const px = await startProxy(port, { faults: { up: faults({ dropEvery: 2, dropAny: true }) } });
    const client = await rawClient(px.port);
    client.socket.write(
      encode({ type: 'CONNECT', protocolVersion: 4, clientId: 'dropany', clean: true, keepalive: 0 }, 4),
    );
    const subscribe = (id: number) =>
      encode({ type: 'SUBSCRIBE', packetId: id, subscriptions: [{ topicFilter: `d/${id}`, qos: 0 }] }, 4);
    client.socket.write(Buffer.concat([1, 2, 3, 4, 5].map(subscribe)));
    // CONNACK (4 B) + three SUBACKs (5 B each): those of packets 1, 3 and 5.
    const bytes = await client.waitForBytes(4 + 3 * 5);
    const ids = [0, 1, 2].map((i) => bytes.readUInt16BE(4 + i * 5 + 2));
    expect(ids).toEqual([1, 3, 5]);
  });

  it('a dropped QoS 1 PUBLISH is not acknowledged; the client resends it after a reconnect and it arrives', async () => {
    const { port } = await startBroker();
    // Each connection's 2nd PUBLISH is lost; each connection is cut after 0.5 s.
    const px = await startProxy(port, {
      faults: { up: faults({ dropEvery: 2 }), disconnectAfter: { seconds: 0.5, side: 'both' } },
    });
    const sub = await connectClient(port);
    const got: string[] = [];
    const second = new Promise<void>((resolve) =>
      sub.on('message', (p) => {
        got.push(`${p.payload}${p.dup ? ' dup' : ''}`);
        if (got.length === 2) resolve();
      }),
    );
    await sub.subscribe([{ topicFilter: 'drop/q1', qos: 1 }]);
    const pub = await connectClient(px.port, {
      clientId: `dropq1-${process.pid}`,
      clean: false,
      sessionExpiry: 60,
      reconnect: { minMs: 10, maxMs: 20 },
    });
    await pub.publish('drop/q1', 'first', { qos: 1 });
    const lost = pub.publish('drop/q1', 'second', { qos: 1 });
    await px.waitFor((e) => e.kind === 'packet' && e.dropped);
    await lost; // acknowledged only after the reconnect (a new connection: its 1st PUBLISH passes)
    await second;
    expect(got).toEqual(['first', 'second']);
    const resent = px.packets('up').filter((e) => e.packet?.type === 'PUBLISH' && e.conn.id === 'c2');
    expect(resent.map((e) => e.packet?.type === 'PUBLISH' && e.packet.dup)).toEqual([true]);
  });
});

describe('--throttle', () => {
  it('down:40k takes about 1.5 s for 60,000 bytes', async () => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port, {
      observe: false,
      faults: { down: faults({ bytesPerSecond: 40_000 }) },
    });
    const client = await rawClient(px.port);
    client.socket.write('x');
    const server = await upstream.next();
    const start = performance.now();
    server.socket.write(Buffer.alloc(60_000, 1));
    await client.waitForBytes(60_000, 5000);
    const seconds = (performance.now() - start) / 1000;
    expect(seconds).toBeGreaterThan(1.3);
    expect(seconds).toBeLessThan(2.2);
  });
});

describe('--disconnect-after', () => {
  it('cuts the connection after the time given: the client sees it closed, the broker publishes the will', async () => {
    const { port } = await startBroker();
    const sub = await connectClient(port);
    const will = new Promise<string>((resolve) => sub.on('message', (p) => resolve(String(p.payload))));
    await sub.subscribe([{ topicFilter: 'cut/will', qos: 0 }]);
    const px = await startProxy(port, { faults: { disconnectAfter: { seconds: 0.4, side: 'both' } } });
    const start = performance.now();
    const c = await connectClient(px.port, {
      will: { topic: 'cut/will', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    const closed = new Promise<void>((resolve) => c.on('close', () => resolve()));
    await closed;
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(1500);
    expect(await will).toBe('gone');
    expect(await px.waitFor((e) => e.kind === 'close')).toMatchObject({
      reason: '--disconnect-after 0.4 s: connection cut',
    });
  });

  it.each(['up', 'down'] as const)('%s:0.2 cuts one side first; both end closed', async (side) => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port, { faults: { disconnectAfter: { seconds: 0.2, side } } });
    const client = await rawClient(px.port);
    client.socket.write('x');
    const server = await upstream.next();
    await Promise.all([client.closed, server.closed]);
    const e = await px.waitFor((ev) => ev.kind === 'close');
    expect((e as { reason: string }).reason).toContain(side === 'up' ? '(broker side)' : '(client side)');
  });
});
