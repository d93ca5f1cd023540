/**
 * The listeners: MQTT over TCP, TLS, WebSocket and WebSocket over TLS (with its HTTP path and
 * subprotocol checks). Each accepted socket becomes a Connection through `accept`; its bytes and
 * its close go to it. The TLS listeners share one certificate and the client-certificate options
 * (client-cert.ts).
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import { certificateUser, tlsServerOptions } from './client-cert.js';
import type { Connection, ListenerKind } from './connection.js';
import { DEFAULT_MAX_CONNECT_SIZE } from './core.js';
import type { BrokerAddresses, BrokerOptions } from './options.js';
import { acceptOnHandles } from './tcp-transport.js';
import { type Transport, WebSocketTransport } from './transport.js';

const DEFAULT_WS_PATH = '/mqtt';
/** The largest MQTT packet (remaining length 268,435,455 + 5 header bytes). */
const WIRE_MAX = 268_435_460;
/** WebSocket subprotocols accepted, preferred first: 'mqtt' (MQTT 3.1.1 and 5.0), 'mqttv3.1' (older clients). */
const WS_PROTOCOLS = ['mqtt', 'mqttv3.1'];

const kConn = Symbol('mq.broker.connection');
type SocketWithConn = Socket & { [kConn]?: Connection };

// One listener function for every socket (no closure per connection: memory per idle connection).
function onSocketData(this: SocketWithConn, chunk: Buffer): void {
  this[kConn]!.onData(chunk);
}
function onSocketClose(this: SocketWithConn): void {
  this[kConn]!.onClose();
}
function onSocketDrain(this: SocketWithConn): void {
  this[kConn]!.onDrain();
}
function ignore(): void {}
function terminate(this: WebSocket): void {
  this.terminate();
}

type Accept = (transport: Transport, listener: ListenerKind) => Connection;
type AnyServer = Server | TlsServer | HttpServer;

/**
 * Listens on host:port; resolves with the address bound (port 0: the one the OS chose), rejects
 * with the error of a failed bind (EADDRINUSE...). Errors after that go to `onLaterError`.
 * The broker's listeners and mq proxy's both bind this way.
 */
export function listenOn(
  server: AnyServer,
  host: string,
  port: number,
  onLaterError: (err: Error) => void,
): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', onLaterError);
      const a = server.address();
      if (a === null || typeof a === 'string') resolve({ host, port });
      else resolve({ host: a.address, port: a.port });
    });
  });
}

export class Listeners {
  private readonly servers: AnyServer[] = [];
  private wss: WebSocketServer | undefined = undefined;
  private readonly accept: Accept;
  private readonly log: (line: string) => void;

  constructor(accept: Accept, log: (line: string) => void) {
    this.accept = accept;
    this.log = log;
  }

  /** Opens every listener `o` configures; resolves with the bound addresses. */
  async open(o: BrokerOptions): Promise<BrokerAddresses> {
    const host = o.host ?? '127.0.0.1';
    const addresses: BrokerAddresses = {};
    if (o.port !== null) {
      const server = createServer({ noDelay: true }, (socket) => this.acceptSocket(socket, 'tcp'));
      addresses.tcp = await this.bind(server, host, o.port ?? 1883);
      // Connections on the TCP handle itself, without net.Socket's streams (tcp-transport.ts).
      if (o.nodeStreams !== true) acceptOnHandles(server, (t) => this.accept(t, 'tcp'), this.log);
    }
    const identity = o.useIdentityAsUsername === true;
    if (o.tlsPort !== undefined) {
      const server = createTlsServer(tlsServerOptions(o), (socket) => {
        if (identity) (socket as Transport).certUser = certificateUser(socket);
        this.acceptSocket(socket, 'tls');
      });
      this.onTlsClientError(server, o);
      addresses.tls = await this.bind(server, host, o.tlsPort);
    }
    const wsPath = o.wsPath ?? DEFAULT_WS_PATH;
    if (o.wsPort !== undefined)
      addresses.ws = await this.bind(
        this.webSocket(wsPath, createHttpServer(), 'ws', false, o),
        host,
        o.wsPort,
      );
    if (o.wssPort !== undefined) {
      const https = createHttpsServer(tlsServerOptions(o));
      this.onTlsClientError(https, o);
      addresses.wss = await this.bind(this.webSocket(wsPath, https, 'wss', identity, o), host, o.wssPort);
    }
    return addresses;
  }

  /** A failed TLS handshake: logged when client certificates are required (the refusal users look for). */
  private onTlsClientError(server: TlsServer, o: BrokerOptions): void {
    if (o.requireCertificate !== true) {
      server.on('tlsClientError', ignore);
      return;
    }
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      this.log(
        `${from}: TLS handshake refused: ${err.code ?? err.message} (a client certificate signed by the CA is required)`,
      );
    });
  }

  /** Stops accepting; resolves when every listener has closed (after its connections ended). */
  stopAccepting(): Promise<void> {
    const closed = this.servers.map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    return Promise.all(closed).then(ignore);
  }

  closeWebSockets(): void {
    this.wss?.close();
  }

  private bind(server: AnyServer, host: string, port: number): Promise<{ host: string; port: number }> {
    this.servers.push(server);
    return listenOn(server, host, port, (err) => this.log(`listener error: ${err.message}`));
  }

  private acceptSocket(socket: Socket, listener: 'tcp' | 'tls'): void {
    socket.setNoDelay(true);
    const conn = this.accept(socket, listener);
    const s = socket as SocketWithConn;
    s[kConn] = conn;
    socket.on('data', onSocketData);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
    socket.on('error', ignore);
  }

  /**
   * `http` (an HTTP or HTTPS server) upgrades `wsPath` to MQTT over WebSocket and explains
   * everything else. `identity`: the client certificate's CN becomes the connection's user name.
   * `ws` buffers each message whole: until the CONNECT is accepted a message may be at most
   * --max-connect-size, after it the largest packet accepted (one WebSocket message usually
   * carries one packet; several small ones fit too).
   */
  private webSocket(
    wsPath: string,
    http: HttpServer,
    kind: 'ws' | 'wss',
    identity: boolean,
    o: BrokerOptions,
  ): HttpServer {
    const maxMessage = o.maxPacketSize ?? WIRE_MAX;
    const beforeConnect = Math.min(o.maxConnectSize ?? DEFAULT_MAX_CONNECT_SIZE, maxMessage);
    http.on('request', (req: IncomingMessage, res) => {
      const found = pathOf(req.url) === wsPath;
      res.writeHead(found ? 426 : 404, { 'content-type': 'text/plain', connection: 'close' });
      res.end(
        found
          ? `MQTT over WebSocket: connect with a WebSocket client (subprotocol ${WS_PROTOCOLS[0]})\n`
          : `Not found: MQTT over WebSocket is at ${wsPath}\n`,
      );
    });
    this.wss ??= new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => pickWsProtocol([...protocols]) ?? false,
      maxPayload: beforeConnect,
    });
    const wss = this.wss;
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', ignore);
      const path = pathOf(req.url);
      if (path !== wsPath) {
        this.log(`WebSocket upgrade for '${path}' refused: MQTT is at ${wsPath} (HTTP 404)`);
        refuseUpgrade(socket, '404 Not Found', `MQTT over WebSocket is at ${wsPath}`);
        return;
      }
      // The subprotocol names the payload format: MQTT ('mqtt'; 'mqttv3.1' from older clients).
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      if (pickWsProtocol(offered) === undefined) {
        this.log(
          `WebSocket upgrade refused: subprotocol ${offered.join(',') === '' ? '(none)' : `'${offered.join(',')}'`} is not ${WS_PROTOCOLS.join(' or ')} (HTTP 400)`,
        );
        refuseUpgrade(
          socket,
          '400 Bad Request',
          `Sec-WebSocket-Protocol must offer ${WS_PROTOCOLS.join(' or ')}`,
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.acceptWebSocket(ws, req, kind, identity, maxMessage));
    });
    return http;
  }

  private acceptWebSocket(
    ws: WebSocket,
    req: IncomingMessage,
    kind: 'ws' | 'wss',
    identity: boolean,
    maxMessage: number,
  ): void {
    const transport = new WebSocketTransport(ws, req.socket.remoteAddress, req.socket.remotePort, maxMessage);
    if (identity) transport.certUser = certificateUser(req.socket as TLSSocket);
    const conn = this.accept(transport, kind);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      conn.onData(
        Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data),
      );
    });
    ws.on('close', () => conn.onClose());
    // ws writes to the upgraded socket: its 'drain' says the client took what waited (backpressure).
    req.socket.on('drain', () => conn.onDrain());
    // A message over maxPayload, a bad frame: ws sends its close frame and would go on reading
    // (and dropping) whatever the peer still sends until the peer answers it. Done at once.
    ws.on('error', terminate);
  }
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? u : u.slice(0, q);
}

function pickWsProtocol(offered: string[]): string | undefined {
  for (const p of WS_PROTOCOLS) if (offered.includes(p)) return p;
  return undefined;
}

/** Answers a refused WebSocket upgrade with a plain HTTP response and closes. */
function refuseUpgrade(socket: Duplex, status: string, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
