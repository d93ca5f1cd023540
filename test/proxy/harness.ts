/**
 * What the proxy tests share: an in-process mq broker, an MqttProxy in front of it recording its
 * events (with a bounded wait for the one expected), a raw TCP "broker" that records what it
 * receives and sends what a test tells it, and raw TCP clients. Everything on 127.0.0.1, port 0.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach } from 'vitest';
import { Broker, type BrokerOptions } from '../../src/broker/index.js';
import type { ClientOptions } from '../../src/client/index.js';
import { MqttClient } from '../../src/client/index.js';
import {
  type ConnectionInfo,
  type Direction,
  MqttProxy,
  type PacketEvent,
  type ProxyAddresses,
  type ProxyOptions,
} from '../../src/proxy/index.js';

export type ProxyEvent =
  | { kind: 'open' | 'connected'; conn: ConnectionInfo }
  | ({ kind: 'packet' } & PacketEvent)
  | { kind: 'notice'; conn: ConnectionInfo; direction: Direction | undefined; message: string }
  | { kind: 'close'; conn: ConnectionInfo; reason: string; failure: boolean }
  | { kind: 'warning'; message: string };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Run after the current test (last added first). */
export function onCleanup(fn: () => Promise<unknown> | unknown): void {
  cleanups.push(fn);
}

export async function startBroker(
  options: BrokerOptions = {},
): Promise<{ broker: Broker; port: number; wsPort?: number; tlsPort?: number }> {
  const broker = new Broker({ port: 0, sysInterval: 0, log: () => {}, ...options });
  const a = await broker.listen();
  onCleanup(() => broker.close());
  return {
    broker,
    port: a.tcp?.port ?? 0,
    ...(a.ws ? { wsPort: a.ws.port } : {}),
    ...(a.tls ? { tlsPort: a.tls.port } : {}),
  };
}

export interface TestProxy {
  proxy: MqttProxy;
  port: number;
  wsPort?: number;
  events: ProxyEvent[];
  /** Resolves with the first event (past or future) matching `pred`; rejects after timeoutMs. */
  waitFor(pred: (e: ProxyEvent) => boolean, timeoutMs?: number): Promise<ProxyEvent>;
  packets(direction?: Direction): PacketEvent[];
}

/** An MqttProxy on port 0 forwarding to 127.0.0.1:upstreamPort (TCP) unless options.upstream says otherwise. */
export async function startProxy(
  upstreamPort: number,
  options: Partial<ProxyOptions> = {},
): Promise<TestProxy> {
  const events: ProxyEvent[] = [];
  const waiters = new Set<() => void>();
  const push = (e: ProxyEvent) => {
    events.push(e);
    for (const w of [...waiters]) w();
  };
  const proxy = new MqttProxy({
    port: 0,
    upstream: { transport: 'mqtt', host: '127.0.0.1', port: upstreamPort },
    observe: true,
    connectTimeoutMs: 3000,
    ...options,
    events: {
      open: (conn) => push({ kind: 'open', conn }),
      connected: (conn) => push({ kind: 'connected', conn }),
      packet: (e) => push({ kind: 'packet', ...e }),
      notice: (conn, direction, message) => push({ kind: 'notice', conn, direction, message }),
      close: (conn, reason, failure) => push({ kind: 'close', conn, reason, failure }),
      warning: (message) => push({ kind: 'warning', message }),
    },
  });
  const a: ProxyAddresses = await proxy.listen();
  onCleanup(() => proxy.close());
  const waitFor = (pred: (e: ProxyEvent) => boolean, timeoutMs = 5000) =>
    new Promise<ProxyEvent>((resolve, reject) => {
      const check = () => {
        const found = events.find(pred);
        if (found === undefined) return false;
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(found);
        return true;
      };
      const waiter = () => void check();
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no such proxy event within ${timeoutMs} ms; events: ${describe(events)}`));
      }, timeoutMs);
      if (!check()) waiters.add(waiter);
    });
  return {
    proxy,
    port: a.tcp?.port ?? 0,
    ...(a.ws ? { wsPort: a.ws.port } : {}),
    events,
    waitFor,
    packets: (direction) =>
      events.filter(
        (e): e is { kind: 'packet' } & PacketEvent =>
          e.kind === 'packet' && (direction === undefined || e.direction === direction),
      ),
  };
}

function describe(events: ProxyEvent[]): string {
  return events
    .map((e) =>
      e.kind === 'packet'
        ? `${e.conn.id} ${e.direction} ${e.packet?.type ?? e.typeCode}`
        : `${e.kind === 'warning' ? '' : e.conn.id} ${e.kind} ${'reason' in e ? e.reason : 'message' in e ? e.message : ''}`,
    )
    .join(' | ');
}

/** A connected MqttClient (destroyed after the test). */
export async function connectClient(port: number, extra: Partial<ClientOptions> = {}): Promise<MqttClient> {
  const c = await MqttClient.connect({
    transport: 'mqtt',
    host: '127.0.0.1',
    port,
    version: 5,
    clientId: `px-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
    keepalive: 60,
    clean: true,
    connectTimeoutMs: 3000,
    ...extra,
  });
  onCleanup(() => c.destroy());
  return c;
}

/** A raw TCP peer: every byte it receives, and a bounded wait for a given count of them. */
export interface RawPeer {
  socket: net.Socket;
  received(): Buffer;
  waitForBytes(n: number, timeoutMs?: number): Promise<Buffer>;
  closed: Promise<void>;
}

function rawPeer(socket: net.Socket): RawPeer {
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters = new Set<() => void>();
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    total += d.length;
    for (const w of [...waiters]) w();
  });
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => {
    for (const w of [...waiters]) w();
  });
  return {
    socket,
    received: () => Buffer.concat(chunks),
    closed,
    waitForBytes: (n, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (total < n && !socket.destroyed) return false;
          clearTimeout(timer);
          waiters.delete(w);
          if (total >= n) resolve(Buffer.concat(chunks));
          else reject(new Error(`socket closed after ${total} of ${n} bytes`));
          return true;
        };
        const w = () => void check();
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${total} of ${n} bytes within ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) waiters.add(w);
      }),
  };
}

/** A raw TCP server standing in for a broker: resolves each accepted connection as a RawPeer. */
export async function rawServer(): Promise<{ port: number; next(): Promise<RawPeer> }> {
  const server = net.createServer({ allowHalfOpen: false });
  const pending: RawPeer[] = [];
  const waiting: ((p: RawPeer) => void)[] = [];
  server.on('connection', (s) => {
    onCleanup(() => s.destroy());
    const peer = rawPeer(s);
    const w = waiting.shift();
    if (w) w(peer);
    else pending.push(peer);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    next: () => {
      const p = pending.shift();
      if (p) return Promise.resolve(p);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('no connection reached the raw server within 5 s')),
          5000,
        );
        waiting.push((peer) => {
          clearTimeout(timer);
          resolve(peer);
        });
      });
    },
  };
}

/** A raw TCP client of 127.0.0.1:port. */
export async function rawClient(port: number): Promise<RawPeer> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const peer = rawPeer(socket);
  await once(socket, 'connect');
  onCleanup(() => socket.destroy());
  return peer;
}

/** A port nothing listens on (bound, read, closed). */
export async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
