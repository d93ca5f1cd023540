/**
 * Garbage from either side never crashes the proxy and never changes the bytes: random valid
 * packets, randomly corrupted and cut into random chunks, go through a real MqttProxy both ways;
 * each side receives exactly what the other sent, and every event is rendered (trace line, full
 * block, JSON) without an exception and without a raw control or bidi character.
 */
import { once } from 'node:events';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyOutput, type TraceMode } from '../../src/cli/proxy-output.js';
import { encode, type Packet } from '../../src/protocol/index.js';
import { MqttProxy, type ProxyEvents } from '../../src/proxy/index.js';
import { anyPacket } from '../fixtures/arbitraries.js';
import { PLAIN_PAINT } from '../helpers/paint.js';

let rendered = '';
let upstreamPort = 0;
let server: net.Server;
let proxy: MqttProxy;
let proxyPort = 0;
/** The raw broker side of the next connection. */
const accepted: net.Socket[] = [];
const acceptWaiters: ((s: net.Socket) => void)[] = [];

function renderers(): ProxyEvents[] {
  return (['line', 'full'] as TraceMode[])
    .map((trace) => ({ trace, json: false }))
    .concat([{ trace: 'line', json: true }])
    .map((o) =>
      proxyOutput({
        ...o,
        quiet: false,
        stdout: (t) => {
          rendered += t;
        },
        stderr: (t) => {
          rendered += t;
        },
        colors: PLAIN_PAINT,
      }),
    );
}

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on('error', () => {});
    const w = acceptWaiters.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  upstreamPort = (server.address() as net.AddressInfo).port;
  const all = renderers();
  const each =
    <K extends keyof ProxyEvents>(key: K) =>
    (...args: Parameters<NonNullable<ProxyEvents[K]>>) => {
      for (const r of all) (r[key] as (...a: typeof args) => void)(...args);
    };
  proxy = new MqttProxy({
    port: 0,
    upstream: { transport: 'mqtt', host: '127.0.0.1', port: upstreamPort },
    observe: true,
    events: {
      connected: each('connected'),
      packet: each('packet'),
      notice: each('notice'),
      close: each('close'),
      warning: each('warning'),
    },
  });
  proxyPort = (await proxy.listen()).tcp!.port;
});

afterAll(async () => {
  await proxy.close();
  server.close();
});

function nextUpstream(): Promise<net.Socket> {
  const s = accepted.shift();
  if (s) return Promise.resolve(s);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no upstream connection within 5 s')), 5000);
    acceptWaiters.push((sock) => {
      clearTimeout(timer);
      resolve(sock);
    });
  });
}

/** Resolves with `n` bytes read from `socket` (rejects after 5 s or on close). */
function read(socket: net.Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${got} of ${n} bytes within 5 s`)), 5000);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(Buffer.concat(chunks));
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) done();
    };
    socket.on('data', onData);
    if (n === 0) done();
  });
}

/** Writes `bytes` cut at `cuts` (fractions of its length). */
function writeCut(socket: net.Socket, bytes: Buffer, cuts: number[]): void {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) socket.write(bytes.subarray(from, p));
    from = p;
  }
}

const stream = (version: 3 | 4 | 5) =>
  fc.record({
    packets: fc.array(anyPacket(version), { maxLength: 6 }),
    corrupt: fc.array(
      fc.tuple(fc.double({ min: 0, max: 0.9999, noNaN: true }), fc.integer({ min: 0, max: 255 })),
      {
        maxLength: 3,
      },
    ),
    cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }),
  });

function bytesOf(
  version: 3 | 4 | 5,
  packets: Packet[],
  corrupt: [number, number][],
  connect: boolean,
): Buffer {
  const all = connect
    ? [
        { type: 'CONNECT', protocolVersion: version, clientId: 'fuzz', clean: true, keepalive: 0 } as Packet,
        ...packets,
      ]
    : packets;
  const bytes = Buffer.concat(all.map((p) => encode(p, version)));
  for (const [at, value] of corrupt) if (bytes.length > 0) bytes[Math.floor(at * bytes.length)] = value;
  return bytes;
}

describe('the proxy under random and corrupted traffic', () => {
  it.each([3, 4, 5] as const)(
    'MQTT %s: bytes arrive unchanged both ways, every event renders safely',
    async (version) => {
      await fc.assert(
        fc.asyncProperty(stream(version), stream(version), async (up, down) => {
          rendered = '';
          const client = net.connect({ port: proxyPort, host: '127.0.0.1' });
          client.on('error', () => {});
          await once(client, 'connect');
          const broker = await nextUpstream();
          try {
            const upBytes = bytesOf(version, up.packets, up.corrupt, true);
            const downBytes = bytesOf(version, down.packets, down.corrupt, false);
            const gotUp = read(broker, upBytes.length);
            writeCut(client, upBytes, up.cuts);
            expect((await gotUp).equals(upBytes)).toBe(true);
            const gotDown = read(client, downBytes.length);
            writeCut(broker, downBytes, down.cuts);
            expect((await gotDown).equals(downBytes)).toBe(true);
          } finally {
            client.destroy();
            broker.destroy();
          }
          expect(rendered).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
        }),
        { numRuns: 40, endOnFailure: true },
      );
    },
    60_000,
  );
});
