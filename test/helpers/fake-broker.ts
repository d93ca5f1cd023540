/**
 * Test helpers for the client: a scripted fake broker (raw TCP, mq's own codec) that lets a test
 * answer each packet as it likes, and a TCP proxy that can watch, drop or cut traffic between a
 * client and a real broker.
 */
import net from 'node:net';
import {
  type ConnackPacket,
  encode,
  Framer,
  type Packet,
  type ProtocolVersion,
} from '../../src/protocol/index.js';

export interface FakeSession {
  /** 0 for the first connection this broker accepted, 1 for the next... */
  index: number;
  socket: net.Socket;
  /** Every packet received on this connection, in order. */
  received: Packet[];
  version: ProtocolVersion;
  send(packet: Packet): void;
  close(): void;
}

export interface FakeBroker {
  port: number;
  /** Every connection so far, in order. */
  sessions: FakeSession[];
  /** Resolves with the next packet of `type` received on any connection (one already received counts once). */
  waitFor(type: Packet['type'], timeoutMs?: number): Promise<{ packet: Packet; session: FakeSession }>;
  stop(): Promise<void>;
}

/** What the fake broker's CONNACK says beyond success without a session: fixed, or by CONNECT number. */
export type ConnackAnswer =
  | Partial<Omit<ConnackPacket, 'type'>>
  | ((connectNumber: number) => Partial<Omit<ConnackPacket, 'type'>>);

export interface FakeBrokerOptions {
  /** false: no CONNACK at all (answer CONNECT yourself in onPacket, or not). Default true. */
  autoConnack?: boolean;
  /**
   * The CONNACK every CONNECT gets (merged into `{ sessionPresent: false, reasonCode: 0 }`), or a
   * function of the CONNECT's number (1 for the first this broker received, on any connection).
   */
  connack?: ConnackAnswer;
}

/**
 * `onPacket` is called for every packet received, after a CONNECT was answered with the CONNACK
 * of `options.connack` (a plain success by default).
 */
export async function startFakeBroker(
  onPacket: (packet: Packet, session: FakeSession) => void = () => {},
  options: FakeBrokerOptions = {},
): Promise<FakeBroker> {
  const sessions: FakeSession[] = [];
  let connects = 0;
  const seen: { packet: Packet; session: FakeSession; consumed: boolean }[] = [];
  const waiters = new Set<() => void>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const framer = new Framer(5);
    const session: FakeSession = {
      index: sessions.length,
      socket,
      received: [],
      version: 5,
      send: (packet) => {
        if (!socket.destroyed) socket.write(encode(packet, session.version));
      },
      close: () => socket.destroy(),
    };
    sessions.push(session);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      try {
        framer.push(chunk, (packet) => {
          if (packet.type === 'CONNECT') {
            session.version = packet.protocolVersion;
            framer.version = packet.protocolVersion;
          }
          session.received.push(packet);
          seen.push({ packet, session, consumed: false });
          if (packet.type === 'CONNECT' && options.autoConnack !== false) {
            connects++;
            const answer = options.connack;
            const custom = typeof answer === 'function' ? answer(connects) : answer;
            session.send({ type: 'CONNACK', sessionPresent: false, reasonCode: 0, ...custom });
          }
          onPacket(packet, session);
          for (const w of [...waiters]) w();
        });
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sessions,
    waitFor: (type, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = seen.find((s) => !s.consumed && s.packet.type === type);
          if (!hit) return false;
          hit.consumed = true;
          waiters.delete(check);
          clearTimeout(timer);
          resolve({ packet: hit.packet, session: hit.session });
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`fake broker: no ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      }),
    stop: () =>
      new Promise((resolve) => {
        for (const s of sessions) s.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface ProxyHooks {
  /** Client -> broker packet. Return 'drop' to swallow it, 'cut' to drop it and close both sides. */
  up?: (packet: Packet, link: ProxyLink) => 'pass' | 'drop' | 'cut' | undefined;
  /** Broker -> client packet. 'cut-after' forwards it, then closes both sides. */
  down?: (packet: Packet, link: ProxyLink) => 'pass' | 'drop' | 'cut' | 'cut-after' | undefined;
}

export interface ProxyLink {
  index: number;
  cut(): void;
}

export interface Proxy {
  port: number;
  links: number;
  /** Cuts every open link (both sides), keeps listening. */
  cutAll(): void;
  stop(): Promise<void>;
}

/** A packet-aware TCP proxy to 127.0.0.1:targetPort (MQTT `version` for framing). */
export async function startProxy(
  targetPort: number,
  version: ProtocolVersion,
  hooks: ProxyHooks = {},
): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  let links = 0;
  const server = net.createServer((client) => {
    const index = links++;
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    client.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    let dead = false;
    const link: ProxyLink = {
      index,
      cut: () => {
        dead = true;
        client.destroy();
        upstream.destroy();
      },
    };
    client.on('error', () => link.cut());
    upstream.on('error', () => link.cut());
    client.on('close', () => link.cut());
    upstream.on('close', () => link.cut());
    const relay = (from: net.Socket, to: net.Socket, hook: ProxyHooks['down']) => {
      const framer = new Framer(version);
      from.on('data', (chunk) => {
        framer.push(chunk, (packet, raw) => {
          if (dead) return;
          const verdict = hook?.(packet, link) ?? 'pass';
          if (verdict === 'cut') link.cut();
          else if (verdict === 'pass') to.write(Buffer.from(raw));
          else if (verdict === 'cut-after') {
            dead = true;
            to.end(Buffer.from(raw), () => link.cut());
            from.destroy();
          }
        });
      });
    };
    relay(client, upstream, hooks.up);
    relay(upstream, client, hooks.down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get links() {
      return links;
    },
    cutAll: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A proxy for a client that gets cut off once and reconnects through it: its first link is cut
 * right after the broker's first packet of type `cutAfter` has passed to the client (without
 * `cutAfter`, cut it by hand with cutAll()). `sentAfterCut` lists, in order, the packets the client
 * sends on the links after the first.
 */
export async function startCuttingProxy(
  targetPort: number,
  version: ProtocolVersion,
  cutAfter?: Packet['type'],
): Promise<Proxy & { sentAfterCut: Packet['type'][] }> {
  let cut = false;
  const sentAfterCut: Packet['type'][] = [];
  const proxy = await startProxy(targetPort, version, {
    down: (p) => {
      if (p.type !== cutAfter || cut) return 'pass';
      cut = true;
      return 'cut-after';
    },
    up: (p, link) => {
      if (link.index > 0) sentAfterCut.push(p.type);
      return 'pass';
    },
  });
  return Object.assign(proxy, { sentAfterCut });
}

/** Resolves when `emitter` emits `event` (with its arguments); rejects after timeoutMs. */
export function once<T extends unknown[] = unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const handler = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, handler);
  });
}
