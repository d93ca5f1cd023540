/**
 * The MQTT proxy: TCP and WebSocket listeners, each accepted connection forwarded to one upstream
 * broker (mqtt, mqtts, ws, wss, unix), every packet observable, faults per direction.
 *
 *   const proxy = new MqttProxy({ port: 0, upstream: { transport: 'mqtt', host: '127.0.0.1', port: 1883 },
 *                                 observe: true, events: { packet: (e) => ... } });
 *   const { tcp } = await proxy.listen();
 *   ...
 *   await proxy.close();
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { listenOn } from '../broker/listeners.js';
import { Recorder } from '../cli/record.js';
import type { TransportOptions } from '../client/index.js';
import {
  type ConnectionFaults,
  type ConnectionSettings,
  guardEvents,
  NO_FAULTS,
  ProxyConnection,
  type ProxyEvents,
} from './connection.js';

export interface ProxyOptions {
  /** Address the listeners bind (default 127.0.0.1). */
  host?: string;
  /** MQTT over TCP listener port (0 = any free port); undefined = no TCP listener. */
  port?: number;
  /** MQTT over WebSocket listener port (any path, subprotocol mqtt or mqttv3.1). */
  wsPort?: number;
  /** Where every connection is forwarded. */
  upstream: TransportOptions;
  /** Give up dialling the upstream after this long (default 10 s): the client is then closed. */
  connectTimeoutMs?: number;
  faults?: Partial<ConnectionFaults>;
  /** Decode every packet for events.packet. */
  observe?: boolean;
  /** Close a connection on a malformed packet instead of forwarding it. */
  strict?: boolean;
  /** Append every packet as NDJSON (mq broker --record's format), secrets masked, mode 0600. */
  recordFile?: string;
  /** Packets up to this size are decoded (default 1 MiB); larger ones are forwarded undecoded. */
  decodeLimit?: number;
  events?: ProxyEvents;
}

export interface ProxyAddress {
  host: string;
  port: number;
}

export interface ProxyAddresses {
  tcp?: ProxyAddress;
  ws?: ProxyAddress;
}

const WS_PROTOCOLS = ['mqtt', 'mqttv3.1'];

export class MqttProxy {
  private readonly options: ProxyOptions;
  private readonly settings: ConnectionSettings;
  private readonly servers: (Server | HttpServer)[] = [];
  private readonly connections = new Set<ProxyConnection>();
  private count = 0;
  private closing = false;

  constructor(options: ProxyOptions) {
    this.options = options;
    this.settings = {
      upstream: options.upstream,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      faults: { up: NO_FAULTS, down: NO_FAULTS, ...options.faults },
      observe: options.observe === true,
      strict: options.strict === true,
      recorder: undefined,
      events: guardEvents(options.events ?? {}),
    };
    if (options.decodeLimit !== undefined) this.settings.decodeLimit = options.decodeLimit;
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Opens the recording file and every listener; resolves with the bound addresses. */
  async listen(): Promise<ProxyAddresses> {
    const o = this.options;
    const host = o.host ?? '127.0.0.1';
    if (o.recordFile !== undefined) {
      this.settings.recorder = new Recorder(o.recordFile, (message) =>
        this.settings.events.warning?.(message),
      );
    }
    const addresses: ProxyAddresses = {};
    try {
      if (o.port !== undefined) {
        const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) =>
          this.acceptSocket(socket),
        );
        addresses.tcp = await this.bind(server, host, o.port);
      }
      if (o.wsPort !== undefined) addresses.ws = await this.bind(await this.wsServer(), host, o.wsPort);
    } catch (err) {
      await this.close();
      throw err;
    }
    return addresses;
  }

  /** Stops listening, closes every connection (ended, cut after a grace period), flushes the recording. */
  async close(reason = 'the proxy is stopping'): Promise<void> {
    this.closing = true;
    const closed = this.servers.map(
      (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
    );
    const drained = new Promise<void>((resolve) => {
      if (this.connections.size === 0) resolve();
      else this.whenEmpty = resolve;
    });
    for (const c of this.connections) c.close(reason);
    await Promise.all([...closed, drained]);
    await this.settings.recorder?.close();
  }

  private whenEmpty: (() => void) | undefined = undefined;

  private acceptSocket(socket: Socket): void {
    socket.on('error', () => {});
    this.accept(socket, 'tcp', peerOf(socket.remoteAddress, socket.remotePort));
  }

  private accept(stream: Duplex, via: 'tcp' | 'ws', peer: string): void {
    if (this.closing) {
      stream.destroy();
      return;
    }
    const conn = new ProxyConnection(stream, { id: `c${++this.count}`, peer, via }, this.settings, (c) => {
      this.connections.delete(c);
      if (this.connections.size === 0) this.whenEmpty?.();
    });
    this.connections.add(conn);
    conn.start();
  }

  /** An HTTP server that upgrades any path offering subprotocol mqtt (or mqttv3.1) to MQTT. */
  private async wsServer(): Promise<HttpServer> {
    const { WebSocketServer, createWebSocketStream } = await import('ws');
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => WS_PROTOCOLS.find((p) => protocols.has(p)) ?? false,
    });
    const http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`MQTT over WebSocket: connect with a WebSocket client (subprotocol ${WS_PROTOCOLS[0]})\n`);
    });
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => {});
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (!WS_PROTOCOLS.some((p) => offered.includes(p))) {
        const body = `Sec-WebSocket-Protocol must offer ${WS_PROTOCOLS.join(' or ')}\n`;
        socket.end(
          `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        (req.socket as Socket).setNoDelay(true);
        const stream = createWebSocketStream(ws);
        this.accept(stream, 'ws', peerOf(req.socket.remoteAddress, req.socket.remotePort));
      });
    });
    return http;
  }

  private bind(server: Server | HttpServer, host: string, port: number): Promise<ProxyAddress> {
    this.servers.push(server);
    return listenOn(server, host, port, () => {});
  }
}

function peerOf(address: string | undefined, port: number | undefined): string {
  const a = address ?? '?';
  return `${a.includes(':') ? `[${a}]` : a}:${port ?? '?'}`;
}
