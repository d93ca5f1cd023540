/**
 * Opens the byte stream under an MQTT connection: TCP, TLS, WebSocket (ws/wss) or a Unix socket.
 * Every transport comes back as a Duplex of bytes; WebSocket messages are treated as a byte stream
 * (a peer may split one MQTT packet across frames). `node:tls` and `ws` load only when used, so a
 * plain `mq pub` starts fast.
 */
import type { NetConnectOpts } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { type ErrorContext, explainConnectError } from './errors.js';

export type TransportKind = 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'unix';

export interface TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure?: boolean;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  alpn?: string[];
  servername?: string;
  /** File names, for error messages. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface TransportOptions {
  transport: TransportKind;
  host: string;
  port: number;
  /** ws path (default /mqtt) or unix socket path. */
  path?: string;
  wsHeaders?: Record<string, string>;
  tls?: TlsOptions;
}

/** How the target is named in messages: `localhost:1883`, `unix socket /tmp/s`, `ws://h:80/mqtt`. */
export function describeTarget(o: TransportOptions): string {
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  switch (o.transport) {
    case 'unix':
      return `unix socket ${o.path ?? '(no path)'}`;
    case 'ws':
    case 'wss':
      return `${o.transport}://${host}:${o.port}${o.path ?? '/mqtt'}`;
    case 'mqtt':
    case 'mqtts':
      return `${host}:${o.port}`;
    default: {
      const never: never = o.transport;
      return String(never);
    }
  }
}

export function errorContext(o: TransportOptions): ErrorContext {
  const ctx: ErrorContext = {
    target: describeTarget(o),
    host: o.host,
    secure: o.transport === 'mqtts' || o.transport === 'wss',
  };
  if (o.tls) ctx.tls = { caFile: o.tls.caFile, servername: o.tls.servername, insecure: o.tls.insecure };
  return ctx;
}

/**
 * Socket buffer before write() asks the client to wait for 'drain'. Node's 16 KiB default makes a
 * streaming publisher (mq pub -l) stop every ~500 small messages; 256 KiB measured ~15% faster.
 */
export const HIGH_WATER_MARK = 256 * 1024;
type Buffering = { highWaterMark: number };

const isIp = (host: string) => /^[\d.]+$/.test(host) || host.includes(':');

/** The node:tls options for `o` (also used by mq bench, which dials TLS itself to time the handshake). */
export function tlsSettings(o: TransportOptions) {
  const t = o.tls ?? {};
  return {
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    rejectUnauthorized: t.insecure !== true,
    ...(t.minVersion ? { minVersion: t.minVersion } : {}),
    ...(t.alpn ? { ALPNProtocols: t.alpn } : {}),
    // SNI must be a name, never an IP address (RFC 6066); identity is still checked against the host.
    ...(t.servername !== undefined
      ? { servername: t.servername }
      : isIp(o.host)
        ? {}
        : { servername: o.host }),
  };
}

/**
 * Connects and resolves with the open stream (TLS handshake done, WebSocket upgraded). Rejects with
 * a ConnectError saying what failed in plain words. `signal` aborts the attempt (connect timeout).
 */
export async function openTransport(o: TransportOptions, signal?: AbortSignal): Promise<Duplex> {
  const ctx = errorContext(o);
  try {
    switch (o.transport) {
      case 'mqtt':
      case 'unix': {
        const net = await import('node:net');
        // (@types/node 20 lacks the highWaterMark socket option Node 20 accepts.)
        const where: NetConnectOpts & Buffering =
          o.transport === 'unix'
            ? { path: o.path ?? '', highWaterMark: HIGH_WATER_MARK }
            : { host: o.host, port: o.port, noDelay: true, highWaterMark: HIGH_WATER_MARK };
        const socket = net.connect(where);
        await settle(socket, 'connect', signal);
        return socket;
      }
      case 'mqtts': {
        const tls = await import('node:tls');
        const settings: ConnectionOptions & Buffering = {
          host: o.host,
          port: o.port,
          highWaterMark: HIGH_WATER_MARK,
          ...tlsSettings(o),
        };
        const socket = tls.connect(settings);
        socket.setNoDelay(true);
        await settle(socket, 'secureConnect', signal);
        return socket;
      }
      case 'ws':
      case 'wss':
        return await openWebSocket(o, signal);
      default: {
        const never: never = o.transport;
        throw new Error(`unknown transport ${String(never)}`);
      }
    }
  } catch (err) {
    throw explainConnectError(err, ctx);
  }
}

/** Resolves on `event`, rejects on 'error' or abort (destroying the socket). */
function settle(socket: Duplex, event: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cleanup();
      socket.destroy();
      reject(signal?.reason);
    };
    const onError = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onOk = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      socket.off(event, onOk);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    socket.once(event, onOk);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function openWebSocket(o: TransportOptions, signal?: AbortSignal): Promise<Duplex> {
  const { WebSocket, createWebSocketStream } = await import('ws');
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const path = o.path ?? '/mqtt';
  const url = `${o.transport}://${host}:${o.port}${path.startsWith('/') ? path : `/${path}`}`;
  const ws = new WebSocket(url, ['mqtt'], {
    headers: o.wsHeaders ?? {},
    perMessageDeflate: false,
    ...(o.transport === 'wss' ? tlsSettings(o) : {}),
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => {
      cleanup();
      // terminate() emits one more 'error' ("closed before the connection was established").
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    const onAbort = () => fail(signal?.reason);
    const onError = (err: Error) => fail(err);
    const onResponse = (_req: unknown, res: { statusCode?: number; statusMessage?: string }) =>
      fail(
        new Error(
          `the WebSocket upgrade was refused: HTTP ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trim() +
            ' (check --ws-path)',
        ),
      );
    const onOpen = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      ws.off('open', onOpen);
      ws.off('error', onError);
      ws.off('unexpected-response', onResponse);
      signal?.removeEventListener('abort', onAbort);
    };
    ws.once('open', onOpen);
    ws.once('error', onError);
    ws.once('unexpected-response', onResponse);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  if (ws.protocol !== 'mqtt') {
    ws.terminate();
    throw new Error(`the server at ${url} did not accept the 'mqtt' WebSocket subprotocol`);
  }
  return createWebSocketStream(ws);
}

/**
 * The target a Server Reference points to: `host`, `host:port`, `[v6]:port`, or a URL
 * (`mqtt://host:port`); several references separated by spaces: the first one is used.
 */
export function redirectTarget(current: TransportOptions, reference: string): TransportOptions {
  const first = reference.trim().split(/\s+/)[0] ?? '';
  const next: TransportOptions = { ...current };
  let rest = first;
  const scheme = /^([a-z]+):\/\//i.exec(first);
  if (scheme) {
    const kind = scheme[1]!.toLowerCase();
    if (kind === 'mqtt' || kind === 'mqtts' || kind === 'ws' || kind === 'wss') next.transport = kind;
    rest = first.slice(scheme[0].length);
  } else if (next.transport === 'unix') {
    next.transport = 'mqtt';
  }
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    if (next.transport === 'ws' || next.transport === 'wss') next.path = rest.slice(slash);
    rest = rest.slice(0, slash);
  }
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest) ?? /^([^:]+)(?::(\d+))?$/.exec(rest);
  if (m) {
    next.host = m[1]!;
    if (m[2] !== undefined) next.port = Number(m[2]);
  }
  if (next.tls?.servername !== undefined) next.tls = { ...next.tls, servername: next.host };
  return next;
}
