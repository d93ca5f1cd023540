/**
 * MqttProxy forwarding, on real sockets: packets both ways reported with their direction and the
 * CONNECT's version, many connections at once, each side's close closing the other, an unreachable
 * broker, garbage from either side forwarded unchanged, --strict, backpressure.
 */
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { MqttProxy, NO_FAULTS, type ProxyOptions } from '../../src/proxy/index.js';
import {
  connectClient,
  deadPort,
  onCleanup,
  type ProxyEvent,
  rawClient,
  rawServer,
  startBroker,
  startProxy,
} from './harness.js';

const CONNECT = encode(
  { type: 'CONNECT', protocolVersion: 4, clientId: 'raw', clean: true, keepalive: 0 },
  4,
);
const CONNACK = encode({ type: 'CONNACK', sessionPresent: false, reasonCode: 0 }, 4);
const publish = (topic: string, payload: string) =>
  encode({ type: 'PUBLISH', dup: false, qos: 0, retain: false, topic, payload: Buffer.from(payload) }, 4);
/** A PUBLISH whose topic holds a wildcard [MQTT-3.3.2-2]: well framed, malformed. */
const WILDCARD_PUBLISH = Buffer.from('30060003612f2b78', 'hex');

const isClose = (e: ProxyEvent) => e.kind === 'close';

describe('forwarding', () => {
  it('forwards both ways and reports each packet with its direction, decoded with the CONNECT version', async () => {
    const { port } = await startBroker();
    const px = await startProxy(port);
    const c = await connectClient(px.port, { version: 4 });
    const got: string[] = [];
    c.on('message', (p) => got.push(`${p.topic}=${p.payload}`));
    await c.subscribe([{ topicFilter: 'fw/#', qos: 1 }]);
    await c.publish('fw/a', 'hello', { qos: 1 });
    await expect.poll(() => got).toEqual(['fw/a=hello']);
    const seen = px.packets().map((e) => `${e.direction} ${e.packet?.type} v${e.version}`);
    expect(seen.slice(0, 4)).toEqual([
      'up CONNECT v4',
      'down CONNACK v4',
      'up SUBSCRIBE v4',
      'down SUBACK v4',
    ]);
    expect(seen).toContain('up PUBLISH v4');
    expect(seen).toContain('down PUBLISH v4');
    expect(px.packets().every((e) => e.violations.length === 0)).toBe(true);
  });

  it('serves many connections at once, each to its own upstream connection', async () => {
    const { broker, port } = await startBroker();
    const px = await startProxy(port, { observe: false });
    const clients = await Promise.all(Array.from({ length: 40 }, () => connectClient(px.port)));
    expect(px.proxy.connectionCount).toBe(40);
    expect(broker.stats.clientsConnected).toBe(40);
    await Promise.all(
      clients.map(async (c, i) => {
        const got = new Promise<string>((resolve) => c.on('message', (p) => resolve(String(p.payload))));
        await c.subscribe([{ topicFilter: `many/${i}`, qos: 1 }]);
        await c.publish(`many/${i}`, `m${i}`, { qos: 1 });
        expect(await got).toBe(`m${i}`);
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
    await px.waitFor(() => px.events.filter(isClose).length === 40);
    expect(px.proxy.connectionCount).toBe(0);
    await expect.poll(() => broker.stats.clientsConnected).toBe(0);
  });

  it('a client closing closes its upstream connection', async () => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port);
    const client = await rawClient(px.port);
    const server = await upstream.next();
    client.socket.end(CONNECT);
    await server.closed;
    expect(server.received().equals(CONNECT)).toBe(true);
    const e = await px.waitFor(isClose);
    expect(e).toMatchObject({ reason: 'the client closed the connection', failure: false });
  });

  it('the broker closing closes the client connection, after what it sent', async () => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port);
    const client = await rawClient(px.port);
    client.socket.write(CONNECT);
    const server = await upstream.next();
    server.socket.end(CONNACK);
    await client.closed;
    expect(client.received().equals(CONNACK)).toBe(true);
    expect(await px.waitFor(isClose)).toMatchObject({ reason: 'the broker closed the connection' });
  });

  it('an unreachable broker: the client is closed, the close says why, the proxy keeps serving', async () => {
    const px = await startProxy(await deadPort());
    for (let i = 1; i <= 2; i++) {
      const client = await rawClient(px.port);
      client.socket.write(CONNECT);
      await client.closed;
      const e = await px.waitFor((ev) => ev.kind === 'close' && ev.conn.id === `c${i}`);
      expect(e).toMatchObject({ failure: true });
      expect((e as { reason: string }).reason).toMatch(/cannot reach the broker: .*connection refused/);
    }
  });

  it('garbage from either side is forwarded unchanged, reported with offsets, and never crashes the proxy', async () => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port);
    const client = await rawClient(px.port);
    // Client: a CONNECT, a PUBLISH with a wildcard topic, a packet of reserved type 0.
    const up = Buffer.concat([CONNECT, WILDCARD_PUBLISH, Buffer.from('0000', 'hex'), publish('ok', 'after')]);
    for (let i = 0; i < up.length; i += 3) client.socket.write(up.subarray(i, i + 3));
    const server = await upstream.next();
    expect((await server.waitForBytes(up.length)).equals(up)).toBe(true);
    // Broker: a CONNACK, then bytes that cannot be cut into packets (remaining length > 4 bytes).
    const down = Buffer.concat([
      CONNACK,
      Buffer.from('30ffffffff7f0102', 'hex'),
      Buffer.from('anything at all'),
    ]);
    server.socket.write(down);
    expect((await client.waitForBytes(down.length)).equals(down)).toBe(true);

    const bad = px.packets('up').filter((e) => e.violations.length > 0);
    expect(bad.map((e) => [e.offset, e.violations[0]?.rule])).toEqual([
      [CONNECT.length, 'MQTT-3.3.2-2'],
      [CONNECT.length + WILDCARD_PUBLISH.length, undefined],
    ]);
    expect(bad[0]!.violations[0]!.offset).toBe(6);
    const lost = await px.waitFor((e) => e.kind === 'notice' && e.direction === 'down');
    expect((lost as { message: string }).message).toMatch(
      new RegExp(`cannot cut the stream into packets at byte ${CONNACK.length}: .*forwarded undecoded`),
    );
    expect(px.events.filter((e) => e.kind === 'notice')).toHaveLength(1);
    // Still forwarding, both ways.
    client.socket.write(publish('still', 'here'));
    await server.waitForBytes(up.length + publish('still', 'here').length);
  });

  it('--strict closes the connection on a malformed packet, forwarding only what came before it', async () => {
    const upstream = await rawServer();
    const px = await startProxy(upstream.port, { strict: true });
    const client = await rawClient(px.port);
    const good = Buffer.concat([CONNECT, publish('a', 'before')]);
    client.socket.write(Buffer.concat([good, WILDCARD_PUBLISH, publish('a', 'after')]));
    const server = await upstream.next();
    await Promise.all([server.closed, client.closed]);
    expect(server.received().toString('hex')).toBe(good.toString('hex'));
    const e = await px.waitFor(isClose);
    expect(e).toMatchObject({ failure: true });
    expect((e as { reason: string }).reason).toMatch(/^--strict: PUBLISH at byte 6: .*\[MQTT-3\.3\.2-2\]/);
  });

  it.each([
    ['forwarding only', { observe: false }],
    ['observing', { observe: true }],
    ['delaying', { observe: false, faults: { down: { ...NO_FAULTS, delayMs: 5 } } }],
  ] as [string, Partial<ProxyOptions>][])(
    'backpressure (%s): a client that does not read stops the proxy reading from the broker',
    async (_name, options) => {
      const upstream = await rawServer();
      const px = await startProxy(upstream.port, options);
      const client = await rawClient(px.port);
      client.socket.pause();
      client.socket.write(CONNECT);
      const server = await upstream.next();
      const total = 256 * 1024 * 1024;
      const block = Buffer.alloc(1024 * 1024, 0x5a);
      let written = 0;
      // The broker writes as fast as the proxy takes it; when the proxy stops reading, it waits.
      const stalled = new Promise<number>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const more = () => {
          clearTimeout(timer);
          while (written < total) {
            written += block.length;
            if (!server.socket.write(block)) break;
          }
          // No 'drain' for 500 ms: the pipeline is full and nobody is reading.
          timer = setTimeout(() => resolve(written), 500);
        };
        server.socket.on('drain', more);
        more();
      });
      const blocked = await stalled;
      server.socket.removeAllListeners('drain');
      expect(blocked).toBeLessThan(total / 2);
      // Once the client reads again, every byte arrives, unchanged.
      let received = 0;
      let intact = true;
      const done = new Promise<void>((resolve) =>
        client.socket.on('data', (d: Buffer) => {
          received += d.length;
          if (d.some((b) => b !== 0x5a)) intact = false;
          if (received >= blocked) resolve();
        }),
      );
      client.socket.resume();
      await done;
      expect(received).toBe(blocked);
      expect(intact).toBe(true);
    },
    30_000,
  );

  it('an event handler that throws is reported once and does not stop the forwarding', async () => {
    const upstream = await rawServer();
    const warnings: string[] = [];
    const proxy = new MqttProxy({
      port: 0,
      upstream: { transport: 'mqtt', host: '127.0.0.1', port: upstream.port },
      observe: true,
      events: {
        packet: () => {
          throw new Error('renderer bug');
        },
        warning: (m) => warnings.push(m),
      },
    });
    const port = (await proxy.listen()).tcp!.port;
    onCleanup(() => proxy.close());
    const client = await rawClient(port);
    const bytes = Buffer.concat([CONNECT, publish('a', '1'), publish('a', '2')]);
    client.socket.write(bytes);
    const server = await upstream.next();
    expect((await server.waitForBytes(bytes.length)).equals(bytes)).toBe(true);
    expect(warnings).toEqual(['internal error while reporting traffic (forwarding goes on): renderer bug']);
  });

  it('a version 3.1 client: packets from the broker are decoded as 3.1', async () => {
    const { port } = await startBroker();
    const px = await startProxy(port);
    const c = await connectClient(px.port, { version: 3, clientId: 'v31' });
    await c.subscribe([{ topicFilter: 'v/31', qos: 0 }]);
    const types = px.packets('down').map((e): [string | undefined, number] => [e.packet?.type, e.version]);
    expect(types).toEqual([
      ['CONNACK', 3],
      ['SUBACK', 3],
    ]);
  });
});
