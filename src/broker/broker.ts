/**
 * The broker: listeners, sessions, routing, retained messages, wills, $SYS, persistence hooks.
 * Packet parsing and per-connection rules live in connection.ts; this file owns the state shared
 * between clients.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  decode,
  formatReasonCode,
  matches,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type QoS,
  ReasonCode,
  type SubscribePacket,
  type UnsubscribePacket,
  validateTopicFilter,
  type Will,
} from '../protocol/index.js';
import { parseSharedSubscription } from '../protocol/topic.js';
import type { ConnectPacket } from '../protocol/types.js';
import { AccessControl, Authenticator } from './auth.js';
import { Connection, ConnState } from './connection.js';
import { Message, Outgoing } from './message.js';
import type { BrokerAddresses, BrokerOptions, BrokerStats } from './options.js';
import { Persistence } from './persist.js';
import { NEVER_EXPIRES, Session } from './session.js';
import { type Transport, WebSocketTransport } from './transport.js';
import { type MatchResult, type SubEntry, SubscriptionTrie, type Target } from './trie.js';

/** Formats a packet for --trace; the CLI passes render.ts's formatter, embedders may pass their own. */
export type TraceFormatter = (packet: Packet, version: ProtocolVersion, mode: 'line' | 'full') => string;

const DEFAULT_MAX_INFLIGHT = 256;
const DEFAULT_WS_PATH = '/mqtt';
/** WebSocket subprotocols accepted, preferred first: 'mqtt' (MQTT 3.1.1 and 5.0), 'mqttv3.1' (older clients). */
const WS_PROTOCOLS = ['mqtt', 'mqttv3.1'];
const DEFAULT_MAX_QUEUED = 10_000;
/** Like Mosquitto: each alias holds a topic string in memory for the life of the connection. */
const DEFAULT_TOPIC_ALIAS_MAX = 10;
const MAX_TIMER_MS = 2_147_483_647;
const SWEEP_MS = 250;
/** Writes pending to a client beyond this many bytes: further QoS 0 messages to it are dropped. */
const SLOW_CONSUMER_BYTES = 64 * 1024 * 1024;

const kConn = Symbol('mq.broker.connection');
type SocketWithConn = Socket & { [kConn]?: Connection };

function onSocketData(this: SocketWithConn, chunk: Buffer): void {
  this[kConn]!.onData(chunk);
}
function onSocketClose(this: SocketWithConn): void {
  this[kConn]!.onClose();
}
function ignore(): void {}

export class Broker {
  readonly opts: BrokerOptions;
  /** @internal the live counters (hot path); read them through `stats`. */
  readonly counters: BrokerStats = {
    clientsConnected: 0,
    clientsMaximum: 0,
    clientsTotal: 0,
    messagesReceived: 0,
    messagesSent: 0,
    packetsReceived: 0,
    packetsSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    messagesDropped: 0,
    retainedCount: 0,
    subscriptionCount: 0,
  };
  /** @internal */ readonly sessions = new Map<string, Session>();
  /** @internal */ readonly trie = new SubscriptionTrie();
  /** @internal */ readonly retained = new Map<string, Message>();
  /** @internal */ readonly connections = new Set<Connection>();
  /** @internal */ persist: Persistence | undefined = undefined;
  /** @internal */ readonly maxQoS: QoS;
  /** @internal */ readonly receiveMaximum: number;
  /** @internal */ readonly topicAliasMax: number;
  /** @internal trace or record is on. */ readonly tracing: boolean;

  private readonly auth: Authenticator;
  private readonly acl: AccessControl;
  /** --acl given: every delivery checks read access (off otherwise, so the fan-out path pays nothing). */
  private readonly aclReads: boolean;
  private readonly maxInflight: number;
  private readonly maxQueued: number;
  private readonly logLine: (line: string) => void;
  private readonly traceLine: (line: string) => void;
  private traceFormat: TraceFormatter = defaultTraceFormat;
  private record: WriteStream | undefined = undefined;
  private readonly dirtyConnections: Connection[] = [];
  private flushScheduled = false;
  private faultCounter = 0;
  private closing = false;
  private startedAt = Date.now();
  private sweepTimer: NodeJS.Timeout | undefined = undefined;
  private sysTimer: NodeJS.Timeout | undefined = undefined;
  private lastSys = new Map<string, string>();
  private lastDropLog = 0;
  private readonly droppedSessions = new Set<Session>();
  private readonly servers: (Server | TlsServer | HttpServer)[] = [];
  private wss: WebSocketServer | undefined = undefined;

  constructor(options: BrokerOptions = {}) {
    this.opts = options;
    this.auth = new Authenticator(options.users, options.passwdFile);
    this.acl = new AccessControl(options.aclFile, options.denySubscribe, options.denyPublish);
    this.aclReads = this.acl.checksReads;
    this.maxQoS = options.maxQoS ?? 2;
    this.receiveMaximum = options.receiveMaximum ?? 65_535;
    this.topicAliasMax = options.topicAliasMax ?? DEFAULT_TOPIC_ALIAS_MAX;
    this.maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.logLine = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.traceLine = options.traceOut ?? this.logLine;
    this.tracing = options.trace !== undefined || options.recordFile !== undefined;
  }

  /** Counters behind $SYS/broker/...: clients, messages, bytes, drops, retained, subscriptions. */
  get stats(): BrokerStats {
    const st = this.counters;
    st.clientsTotal = this.sessions.size;
    st.retainedCount = this.retained.size;
    st.subscriptionCount = this.trie.count;
    return { ...st };
  }

  /** Uses `format` for --trace lines (mq's CLI passes the same rendering as `mq decode`). */
  setTraceFormatter(format: TraceFormatter): void {
    this.traceFormat = format;
  }

  // ---- listeners ------------------------------------------------------------------------------

  /** Loads --persist state, opens every configured listener; resolves with the bound addresses. */
  async listen(): Promise<BrokerAddresses> {
    const o = this.opts;
    const host = o.host ?? '127.0.0.1';
    this.startedAt = Date.now();
    if (o.persistFile !== undefined) {
      const persist = new Persistence(o.persistFile, {
        log: (line) => this.log(line),
        pending: () => this.scheduleTick(),
      });
      this.persist = persist;
      const restored = persist.restore();
      for (const [topic, m] of restored.retained) this.retained.set(topic, m);
      for (const s of restored.sessions.values()) this.restoreSession(s);
      persist.compact(this.sessions, this.retained);
    }
    if (o.recordFile !== undefined) {
      this.record = createWriteStream(o.recordFile, { flags: 'a' });
      this.record.on('error', (err) => this.log(`--record ${o.recordFile}: ${err.message}`));
    }
    const addresses: BrokerAddresses = {};
    try {
      if (o.port !== null) {
        const server = createServer({ noDelay: true }, (socket) => this.acceptSocket(socket, 'tcp'));
        addresses.tcp = await this.bind(server, host, o.port ?? 1883);
      }
      if (o.tlsPort !== undefined) {
        if (o.cert === undefined || o.key === undefined) throw new Error('a TLS listener needs cert and key');
        const server = createTlsServer({ cert: o.cert, key: o.key }, (socket) =>
          this.acceptSocket(socket, 'tls'),
        );
        server.on('tlsClientError', ignore);
        addresses.tls = await this.bind(server, host, o.tlsPort);
      }
      if (o.wsPort !== undefined) {
        const wsPath = o.wsPath ?? DEFAULT_WS_PATH;
        const http = createHttpServer((req, res) => {
          const found = pathOf(req.url) === wsPath;
          res.writeHead(found ? 426 : 404, { 'content-type': 'text/plain', connection: 'close' });
          res.end(
            found
              ? `MQTT over WebSocket: connect with a WebSocket client (subprotocol ${WS_PROTOCOLS[0]})\n`
              : `Not found: MQTT over WebSocket is at ${wsPath}\n`,
          );
        });
        const wss = new WebSocketServer({
          noServer: true,
          handleProtocols: (protocols) => pickWsProtocol([...protocols]) ?? false,
        });
        this.wss = wss;
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
          wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
        });
        wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
          const transport = new WebSocketTransport(ws, req.socket.remoteAddress, req.socket.remotePort);
          const conn = this.accept(transport, 'ws');
          ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
            conn.onData(
              Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data),
            );
          });
          ws.on('close', () => conn.onClose());
          ws.on('error', ignore);
        });
        addresses.ws = await this.bind(http, host, o.wsPort);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    const sys = o.sysInterval ?? 10;
    if (sys > 0) {
      this.publishSys();
      this.sysTimer = setInterval(() => this.publishSys(), sys * 1000);
      this.sysTimer.unref();
    }
    return addresses;
  }

  private bind(
    server: Server | TlsServer | HttpServer,
    host: string,
    port: number,
  ): Promise<{ host: string; port: number }> {
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log(`listener error: ${err.message}`));
        const a = server.address();
        if (a === null || typeof a === 'string') resolve({ host, port });
        else resolve({ host: a.address, port: a.port });
      });
    });
  }

  private acceptSocket(socket: Socket, listener: 'tcp' | 'tls'): void {
    socket.setNoDelay(true);
    const conn = this.accept(socket, listener);
    const s = socket as SocketWithConn;
    s[kConn] = conn;
    socket.on('data', onSocketData);
    socket.on('close', onSocketClose);
    socket.on('error', ignore);
  }

  private accept(transport: Transport, listener: 'tcp' | 'ws' | 'tls'): Connection {
    const conn = new Connection(this, transport, listener, Date.now());
    const max = this.opts.maxConnections;
    if (this.closing || (max !== undefined && this.connections.size >= max)) conn.overLimit = true;
    this.connections.add(conn);
    return conn;
  }

  /**
   * Graceful stop: no new connections, v5 clients get DISCONNECT 0x8B, --persist flushed.
   *
   * Wills are not published on this path (detach() skips them while `closing`): the spec's "closed
   * for any reason other than a normal DISCONNECT" [MQTT-3.1.2-8] is about the client's connection
   * failing, and here the broker ends every connection itself; nobody connected would receive them
   * anyway. Wills waiting out a Will Delay Interval are dropped with their timers. --persist does
   * not record wills (Persistence has no will record), so a restarted broker holds none: a resumed
   * session gets a will again when its client reconnects with one. (Mosquitto differs: as it exits
   * it routes every connected client's will internally, so retained wills and persistent sessions'
   * queues see them.)
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.sweepTimer);
    clearInterval(this.sysTimer);
    const closed = this.servers.map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (const conn of [...this.connections]) {
      if (conn.state === ConnState.Connected) conn.disconnect(ReasonCode.ServerShuttingDown);
      else conn.closeNow();
    }
    this.wss?.close();
    for (const session of this.sessions.values()) {
      clearTimeout(session.expiryTimer);
      clearTimeout(session.willTimer);
    }
    await this.waitForConnections(2000);
    for (const conn of this.connections) conn.transport.destroy();
    await Promise.all(closed);
    this.persist?.close(this.sessions, this.retained);
    if (this.record !== undefined) {
      const record = this.record;
      await new Promise<void>((resolve) => record.end(() => resolve()));
    }
  }

  private waitForConnections(ms: number): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = Date.now() + ms;
      const check = () => {
        if (this.connections.size === 0 || Date.now() >= deadline) resolve();
        else setTimeout(check, 10);
      };
      check();
    });
  }

  /** @internal the transport of `conn` closed. */
  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  // ---- ticks ----------------------------------------------------------------------------------

  /** @internal `conn` has output: one write per connection per tick, after --persist is synced. */
  scheduleFlush(conn: Connection): void {
    conn.dirty = true;
    this.dirtyConnections.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** @internal end-of-tick work is pending (--persist records with no output to flush). */
  scheduleTick(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** @internal makes the --persist records of this tick durable (and compacts a grown log). */
  syncPersist(): void {
    const persist = this.persist;
    if (persist === undefined) return;
    persist.sync();
    if (persist.compactionDue) persist.compact(this.sessions, this.retained);
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    // Write-ahead: what the acks below acknowledge is on disk first.
    this.syncPersist();
    const list = this.dirtyConnections;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  };

  private sweep(): void {
    const now = Date.now();
    const connectTimeout = this.opts.connectTimeoutMs ?? 10_000;
    for (const conn of this.connections) {
      if (conn.state === ConnState.AwaitingConnect) {
        if (now - conn.acceptedAt > connectTimeout) {
          this.log(`[${conn.label}] no CONNECT within ${connectTimeout / 1000} s: closing`);
          conn.closeNow();
        }
        continue;
      }
      if (conn.state !== ConnState.Connected) continue;
      if (conn.rxSeen) {
        conn.rxSeen = false;
        conn.lastRx = now;
      } else if (conn.keepaliveMs > 0 && now - conn.lastRx > conn.keepaliveMs * 1.5) {
        // [MQTT-3.1.2-22] nothing within 1.5 times the keepalive: the client is gone.
        this.log(`[${conn.label}] keepalive timeout (${conn.keepaliveMs / 1000} s): closing`);
        conn.disconnect(ReasonCode.KeepAliveTimeout);
        continue;
      }
      if (conn.disconnectAt !== 0 && now >= conn.disconnectAt) {
        const reason = this.opts.disconnectReason ?? ReasonCode.AdministrativeAction;
        this.log(
          `[${conn.label}] --disconnect-after: disconnecting with ${formatReasonCode(reason, 'DISCONNECT')}`,
        );
        conn.disconnect(reason, '--disconnect-after fault injection');
      }
    }
    if (this.droppedSessions.size > 0 && now - this.lastDropLog >= 1000) this.logDrops(now);
  }

  /** @internal */
  now(): number {
    return Date.now();
  }

  /** @internal --drop-every: true when this outgoing packet is to be lost. */
  faultDrop(): boolean {
    const n = this.opts.dropEvery;
    if (n === undefined || n <= 0) return false;
    return ++this.faultCounter % n === 0;
  }

  // ---- logging and tracing --------------------------------------------------------------------

  /** @internal */
  log(line: string): void {
    this.logLine(line);
  }

  /** @internal */
  traceIn(conn: Connection, packet: Packet, raw: Buffer): void {
    const mode = this.opts.trace;
    const version = packet.type === 'CONNECT' ? packet.protocolVersion : conn.version;
    const who = packet.type === 'CONNECT' ? packet.clientId || conn.label : conn.label;
    if (mode !== undefined) this.traceLine(`[${who}] -> ${this.traceFormat(packet, version, mode)}`);
    if (this.record !== undefined) this.writeRecord(who, 'in', raw);
  }

  /** @internal */
  traceOut(conn: Connection, bytes: Buffer): void {
    const mode = this.opts.trace;
    if (mode !== undefined) {
      let text: string;
      try {
        text = this.traceFormat(decode(bytes, conn.version), conn.version, mode);
      } catch (err) {
        text = `(undecodable: ${err instanceof Error ? err.message : String(err)}) ${bytes.toString('hex')}`;
      }
      this.traceLine(`[${conn.label}] <- ${text}`);
    }
    if (this.record !== undefined) this.writeRecord(conn.label, 'out', bytes);
  }

  private writeRecord(client: string, direction: 'in' | 'out', bytes: Buffer): void {
    const line = JSON.stringify({
      time: new Date().toISOString(),
      client,
      direction,
      hex: bytes.toString('hex'),
    });
    this.record!.write(`${line}\n`);
  }

  // ---- CONNECT --------------------------------------------------------------------------------

  /** @internal */
  handleConnect(c: Connection, p: ConnectPacket): void {
    const o = this.opts;
    const v = p.protocolVersion;
    const v5 = v === 5;
    const props = p.properties;
    if (o.refuseConnect !== undefined) {
      this.refuse(c, o.refuseConnect, '--refuse-connect');
      return;
    }
    if (c.overLimit) {
      this.refuse(
        c,
        ReasonCode.ServerBusy,
        this.closing ? 'shutting down' : `--max-connections ${o.maxConnections} reached`,
      );
      return;
    }
    if (v5 && props?.authenticationMethod !== undefined) {
      this.refuse(
        c,
        ReasonCode.BadAuthenticationMethod,
        `authentication method '${props.authenticationMethod}' not supported`,
      );
      return;
    }
    let id = p.clientId;
    let assigned = false;
    if (id === '') {
      // [MQTT-3.1.3-8] 3.1.1: an empty id needs clean session; 3.1 requires an id.
      if (v === 3 || (v === 4 && !p.clean)) {
        this.refuse(c, ReasonCode.ClientIdentifierNotValid, 'empty client id without clean session');
        return;
      }
      id = `mq-${randomBytes(8).toString('hex')}`;
      assigned = true;
    }
    if (!this.auth.check(p.username, p.password)) {
      this.refuse(
        c,
        ReasonCode.BadUserNameOrPassword,
        `bad user name or password (user ${p.username ?? '(none)'})`,
      );
      return;
    }
    let keepalive = p.keepalive;
    let serverKeepAlive: number | undefined;
    const maxKa = o.maxKeepalive;
    if (maxKa !== undefined && (keepalive === 0 || keepalive > maxKa)) {
      if (!v5) {
        // Like Mosquitto: 3.1.1 cannot be told another keepalive, so it is refused.
        this.refuse(
          c,
          ReasonCode.ClientIdentifierNotValid,
          `keepalive ${keepalive} s above --max-keepalive ${maxKa}`,
        );
        return;
      }
      keepalive = maxKa;
      serverKeepAlive = maxKa;
    }
    const will = p.will;
    if (will !== undefined) {
      if (will.qos > this.maxQoS) {
        this.refuse(
          c,
          ReasonCode.QoSNotSupported,
          `will QoS ${will.qos} above the maximum QoS ${this.maxQoS}`,
        );
        return;
      }
      if (will.retain && o.noRetain === true) {
        this.refuse(c, ReasonCode.RetainNotSupported, 'retained will but retain is not available');
        return;
      }
      // [MQTT-3.1.2.11.3] a will that says UTF-8 (Payload Format Indicator 1) must be: else 0x99.
      if (will.properties?.payloadFormatIndicator === 1 && !isUtf8(will.payload)) {
        this.refuse(
          c,
          ReasonCode.PayloadFormatInvalid,
          'will payload is not UTF-8 (Payload Format Indicator 1)',
        );
        return;
      }
      if (!this.acl.open && !this.acl.canPublish(will.topic, p.username, id)) {
        this.refuse(c, ReasonCode.NotAuthorized, `not authorized to publish the will to '${will.topic}'`);
        return;
      }
      const wp = will.properties;
      c.will = {
        ...will,
        payload: Buffer.from(will.payload),
        ...(wp !== undefined
          ? {
              properties: {
                ...wp,
                ...(wp.correlationData !== undefined
                  ? { correlationData: Buffer.from(wp.correlationData) }
                  : {}),
              },
            }
          : {}),
      };
    }
    c.clientId = id;
    c.username = p.username;
    c.keepaliveMs = keepalive * 1000;
    c.lastRx = Date.now();
    if (v5) {
      c.inflightLimit = Math.min(props?.receiveMaximum ?? 65_535, this.maxInflight);
      c.maxOut = props?.maximumPacketSize ?? c.maxOut;
      c.aliasOutMax = props?.topicAliasMaximum ?? 0;
      if (o.topicAliasOut === true && c.aliasOutMax > 0) c.aliasesOut = new Map();
    } else c.inflightLimit = this.maxInflight;
    const expiry = v5 ? (props?.sessionExpiryInterval ?? 0) : p.clean ? 0 : NEVER_EXPIRES;

    // Session takeover [MQTT-3.1.4-3]: the old connection goes, v5 with DISCONNECT 0x8E.
    let session = this.sessions.get(id);
    const old = session?.conn;
    if (old !== undefined) {
      this.log(`[${id}] session taken over by a new connection`);
      old.takenOver = true;
      old.disconnect(ReasonCode.SessionTakenOver, 'another connection with the same client id');
    }
    let present = false;
    if (session !== undefined && !p.clean) {
      present = true;
      clearTimeout(session.expiryTimer);
      session.expiryTimer = undefined;
      // [MQTT-3.1.3-9] reconnecting before the Will Delay Interval cancels the pending will.
      clearTimeout(session.willTimer);
      session.willTimer = undefined;
      session.pendingWill = undefined;
      if (session.version !== v) {
        session.version = v;
        this.trie.invalidate();
      }
    } else {
      if (session !== undefined) this.endSession(session);
      session = new Session(id, v);
      this.sessions.set(id, session);
    }
    session.expiryInterval = expiry;
    const userChanged = present && session.username !== p.username;
    session.username = p.username;
    // Like Mosquitto: a session resumed under another user keeps only what that user may read.
    if (userChanged && this.aclReads) this.dropUnreadable(session);
    session.conn = c;
    c.session = session;
    c.state = ConnState.Connected;
    if (++this.counters.clientsConnected > this.counters.clientsMaximum)
      this.counters.clientsMaximum = this.counters.clientsConnected;
    if (o.disconnectAfterS !== undefined) c.disconnectAt = Date.now() + o.disconnectAfterS * 1000;

    const ack: Packet = { type: 'CONNACK', sessionPresent: present && v !== 3, reasonCode: 0 };
    if (v5) {
      const cp: Properties = {};
      if (assigned) cp.assignedClientIdentifier = id;
      if (serverKeepAlive !== undefined) cp.serverKeepAlive = serverKeepAlive;
      if (this.receiveMaximum < 65_535) cp.receiveMaximum = this.receiveMaximum;
      if (o.maxPacketSize !== undefined) cp.maximumPacketSize = o.maxPacketSize;
      if (this.topicAliasMax > 0) cp.topicAliasMaximum = this.topicAliasMax;
      if (this.maxQoS < 2) cp.maximumQoS = this.maxQoS;
      if (o.noRetain === true) cp.retainAvailable = 0;
      if (Object.keys(cp).length > 0) ack.properties = cp;
    }
    c.writePacket(ack, true);
    const how = `${v === 5 ? 'MQTT 5.0' : v === 4 ? 'MQTT 3.1.1' : 'MQTT 3.1'}, ${p.clean ? 'clean' : present ? 'session resumed' : 'new session'}, keepalive ${keepalive}`;
    this.log(
      `[${id}] connected from ${c.transport.remoteAddress ?? '?'} over ${c.listener} (${how}${p.username !== undefined ? `, user ${p.username}` : ''})`,
    );
    this.persist?.session(session);

    // Resume: in-flight messages again (PUBLISH with DUP, PUBREL) in their order, then the queue.
    if (session.inflightSize > 0) for (const out of session.inflight.values()) c.resend(out);
    this.pump(session);
  }

  private refuse(c: Connection, code: number, why: string): void {
    const v5 = c.version === 5;
    const rc = v5 ? toV5ConnackCode(code) : toV4ReturnCode(code);
    c.writePacket({ type: 'CONNACK', sessionPresent: false, reasonCode: rc }, true);
    this.log(`[${c.label}] connection refused: ${formatReasonCode(rc, 'CONNACK', v5 ? 5 : 4)} (${why})`);
    c.closeNow();
  }

  /** @internal the connection of a session ended (close, error, takeover). */
  detach(conn: Connection): void {
    const s = conn.session;
    if (s === undefined || s.conn !== conn) return;
    s.conn = undefined;
    this.counters.clientsConnected--;
    if (!this.closing) this.log(`[${conn.clientId}] ${conn.graceful ? 'disconnected' : 'connection lost'}`);
    const will = conn.will;
    conn.will = undefined;
    if (will !== undefined && !this.closing) {
      const delay = conn.version === 5 ? (will.properties?.willDelayInterval ?? 0) : 0;
      if (delay > 0 && (conn.takenOver || s.expiryInterval > 0)) {
        s.pendingWill = will;
        if (delay * 1000 <= MAX_TIMER_MS) {
          s.willTimer = setTimeout(firePendingWill, delay * 1000, this, s);
          s.willTimer.unref();
        }
      } else this.publishWill(will);
    }
    if (conn.takenOver || this.closing) return;
    if (s.expiryInterval === 0) {
      this.endSession(s);
      return;
    }
    this.persist?.session(s);
    if (s.expiryInterval !== NEVER_EXPIRES) this.scheduleExpiry(s);
  }

  /** @internal */
  scheduleExpiry(s: Session): void {
    const ms = s.expiryInterval * 1000;
    if (ms > MAX_TIMER_MS) return;
    s.expiryTimer = setTimeout(expireSession, ms, this, s);
    s.expiryTimer.unref();
  }

  /** @internal */
  publishWill(will: Will): void {
    let props = will.properties;
    if (props?.willDelayInterval !== undefined) {
      props = { ...props };
      delete props.willDelayInterval;
      if (Object.keys(props).length === 0) props = undefined;
    }
    const msg = this.newMessage(will.topic, will.payload, will.qos, will.retain, props, undefined);
    msg.owned = true;
    this.publish(msg);
  }

  /** @internal the session is over: its subscriptions and messages go, a pending will is published. */
  endSession(s: Session): void {
    clearTimeout(s.expiryTimer);
    clearTimeout(s.willTimer);
    s.expiryTimer = undefined;
    s.willTimer = undefined;
    const will = s.pendingWill;
    s.pendingWill = undefined;
    if (s.subCount > 0) {
      for (const sub of s.subs.values()) this.trie.remove(sub);
      s.subs.clear();
    }
    if (s.inflightSize > 0) s.inflight.clear();
    if (s.queueLength > 0) s.queue.length = 0;
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
    this.persist?.sessionDeleted(s);
    if (will !== undefined) this.publishWill(will);
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------------------------

  /** @internal */
  handleSubscribe(c: Connection, p: SubscribePacket): void {
    const s = c.session!;
    const v5 = c.version === 5;
    const subId = v5 ? p.properties?.subscriptionIdentifiers?.[0] : undefined;
    if (subId === 0) {
      c.disconnect(ReasonCode.ProtocolError, 'Subscription Identifier 0 (3.8.2.1.2)');
      return;
    }
    const codes: number[] = [];
    const fresh: { entry: SubEntry; isNew: boolean }[] = [];
    const failure = (code: number) => codes.push(v5 ? code : 0x80);
    for (const sub of p.subscriptions) {
      const filter = sub.topicFilter;
      const problem = validateTopicFilter(filter, 5);
      if (problem !== undefined) {
        this.log(`[${c.clientId}] invalid subscription: ${problem.message}`);
        failure(ReasonCode.TopicFilterInvalid);
        continue;
      }
      const shared = parseSharedSubscription(filter);
      if (shared !== undefined && v5 && sub.noLocal === true) {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
        c.disconnect(ReasonCode.ProtocolError, 'No Local set on a shared subscription [MQTT-3.8.3-4]');
        return;
      }
      // A shared subscription is checked on the filter it shares ('$share/g/#' reads what '#' reads).
      if (!this.acl.open && !this.acl.canSubscribe(shared?.filter ?? filter, c.username, c.clientId)) {
        this.log(`[${c.clientId}] not authorized to subscribe to '${filter}'`);
        failure(ReasonCode.NotAuthorized);
        continue;
      }
      const qos = Math.min(sub.qos, this.maxQoS) as QoS;
      const existing = s.subs.get(filter);
      const entry: SubEntry = {
        session: s,
        filter,
        topicFilter: shared?.filter ?? filter,
        group: shared?.group,
        qos,
        noLocal: v5 && sub.noLocal === true,
        retainAsPublished: v5 && sub.retainAsPublished === true,
        retainHandling: v5 ? (sub.retainHandling ?? 0) : 0,
        subscriptionId: subId,
      };
      s.subs.set(filter, entry);
      this.trie.add(entry);
      codes.push(qos);
      fresh.push({ entry, isNew: existing === undefined });
    }
    c.writePacket({ type: 'SUBACK', packetId: p.packetId, reasonCodes: codes });
    this.persist?.session(s);
    // Retained messages after the SUBACK [MQTT-3.3.1-6], per Retain Handling [MQTT-3.3.1-9..11];
    // none for shared subscriptions (4.8.2).
    const now = Date.now();
    for (const { entry, isNew } of fresh) {
      if (entry.group !== undefined || this.retained.size === 0) continue;
      if (entry.retainHandling === 2 || (entry.retainHandling === 1 && !isNew)) continue;
      const subIds = entry.subscriptionId !== undefined ? [entry.subscriptionId] : undefined;
      const wild = entry.topicFilter.includes('+') || entry.topicFilter.includes('#');
      const candidates = wild ? this.retained.values() : [this.retained.get(entry.topicFilter)];
      for (const msg of candidates) {
        if (msg === undefined || (wild && !matches(entry.topicFilter, msg.topic))) continue;
        if (msg.expired(now)) {
          this.retained.delete(msg.topic);
          continue;
        }
        if (this.aclReads && !this.mayRead(s, msg.topic)) continue;
        this.deliver(s, msg, Math.min(msg.qos, entry.qos) as QoS, true, subIds);
      }
    }
  }

  /** @internal */
  handleUnsubscribe(c: Connection, p: UnsubscribePacket): void {
    const s = c.session!;
    const codes: number[] = [];
    for (const filter of p.topicFilters) {
      const entry = s.subs.get(filter);
      if (entry !== undefined) {
        s.subs.delete(filter);
        this.trie.remove(entry);
        codes.push(0);
      } else if (validateTopicFilter(filter, 5) !== undefined) {
        codes.push(ReasonCode.TopicFilterInvalid);
      } else codes.push(ReasonCode.NoSubscriptionExisted);
    }
    c.writePacket({ type: 'UNSUBACK', packetId: p.packetId, reasonCodes: c.version === 5 ? codes : [] });
    this.persist?.session(s);
  }

  // ---- routing --------------------------------------------------------------------------------

  /** @internal */
  newMessage(
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    props: Properties | undefined,
    sender: Session | undefined,
  ): Message {
    return new Message(
      topic,
      payload,
      qos,
      retain,
      props,
      sender,
      props?.messageExpiryInterval !== undefined ? Date.now() : 0,
    );
  }

  /** @internal may `conn` publish to `topic`? ($SYS is the broker's.) */
  canPublish(topic: string, conn: Connection): boolean {
    if (topic.charCodeAt(0) === 0x24 && topic.startsWith('$SYS')) return false;
    return this.acl.open || this.acl.canPublish(topic, conn.username, conn.clientId);
  }

  /**
   * Routes a message to every matching subscription (and stores it when retained). Returns how
   * many subscriptions it matched.
   */
  publish(msg: Message): number {
    if (msg.retain) this.storeRetained(msg);
    const r = this.trie.match(msg.topic);
    const targets = r.targets ?? (r.targets = computeTargets(r));
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      const s = t.session;
      if (t.noLocal && s === msg.sender) continue;
      if (this.aclReads && !this.mayRead(s, msg.topic)) continue;
      // [MQTT-3.3.1-12] Retain As Published, else the RETAIN flag is cleared on live delivery.
      this.deliver(s, msg, Math.min(msg.qos, t.qos) as QoS, t.retainAsPublished && msg.retain, t.subIds);
    }
    const shared = r.shared;
    for (let i = 0; i < shared.length; i++) {
      const g = shared[i]!;
      const n = g.members.length;
      if (n === 0) continue;
      // Round-robin, skipping members whose client is offline while an online one exists, and
      // (with --acl) members that may not read the topic.
      let pick = -1;
      let fallback = -1;
      for (let k = 0; k < n; k++) {
        const idx = (g.next + k) % n;
        const member = g.members[idx]!.session;
        if (this.aclReads && !this.mayRead(member, msg.topic)) continue;
        if (fallback < 0) fallback = idx;
        if (member.conn !== undefined) {
          pick = idx;
          break;
        }
      }
      if (pick < 0) pick = fallback;
      if (pick < 0) continue;
      g.next = (pick + 1) % n;
      const m = g.members[pick]!;
      this.deliver(
        m.session,
        msg,
        Math.min(msg.qos, m.qos) as QoS,
        m.retainAsPublished && msg.retain,
        m.subscriptionId !== undefined ? [m.subscriptionId] : undefined,
      );
    }
    // Routing is done: a kept copy (retained, queued) must not keep the publisher's session alive.
    if (msg.owned) msg.sender = undefined;
    return targets.length + shared.length;
  }

  /** Drops queued and in-flight messages the session's (new) user may not read. */
  private dropUnreadable(s: Session): void {
    if (s.inflightSize > 0) {
      for (const o of [...s.inflight.values()]) {
        if (this.mayRead(s, o.msg.topic)) continue;
        s.inflight.delete(o.packetId);
        this.persist?.completed(s, o);
      }
    }
    if (s.queueLength > 0) {
      const keep: Outgoing[] = [];
      for (const o of s.queue) {
        if (this.mayRead(s, o.msg.topic)) keep.push(o);
        else this.persist?.completed(s, o);
      }
      s.queue.length = 0;
      for (const o of keep) s.queue.push(o);
    }
  }

  /** --acl read access for one delivery (mosquitto checks each message, not only the SUBSCRIBE). */
  private mayRead(s: Session, topic: string): boolean {
    return this.acl.canRead(topic, s.username, s.clientId);
  }

  private storeRetained(msg: Message): void {
    const topic = msg.topic;
    const sys = topic.startsWith('$SYS/');
    if (msg.payload.length === 0) {
      // [MQTT-3.3.1-10] an empty retained message deletes the one stored.
      if (this.retained.delete(topic) && !sys) this.persist?.retained(topic, undefined);
      return;
    }
    msg.own();
    this.retained.set(topic, msg);
    if (!sys) this.persist?.retained(topic, msg);
  }

  /** @internal one copy of `msg` for session `s`. */
  deliver(s: Session, msg: Message, qos: QoS, retain: boolean, subIds: number[] | undefined): void {
    const c = s.conn;
    if (qos === 0) {
      if (c === undefined) return;
      if (c.transport.writableLength > SLOW_CONSUMER_BYTES) {
        this.dropped(s, 'client not reading (QoS 0 dropped)');
        return;
      }
      if (!c.sendPublish(msg, 0, retain, 0, false, subIds))
        this.dropped(s, 'larger than its Maximum Packet Size');
      return;
    }
    msg.own();
    const o = new Outgoing(msg, qos, retain, subIds);
    if (c !== undefined && s.queueLength === 0 && s.inflightSize < c.inflightLimit) {
      this.persist?.queued(s, o);
      this.send(s, c, o);
      return;
    }
    // Drop policy: a full queue refuses the newest message (counted in $SYS, logged).
    if (s.queueLength >= this.maxQueued) {
      this.dropped(s, `queue full (--max-queued ${this.maxQueued})`);
      return;
    }
    this.persist?.queued(s, o);
    s.queue.push(o);
  }

  private send(s: Session, c: Connection, o: Outgoing): void {
    const id = s.allocatePacketId();
    o.packetId = id;
    s.inflight.set(id, o);
    this.persist?.sent(s, o);
    o.sent = true;
    if (!c.sendPublish(o.msg, o.qos, o.retain, id, false, o.subIds)) {
      // [MQTT-3.1.2-25] too large for the client: discarded as if delivered.
      this.dropped(s, 'larger than its Maximum Packet Size');
      s.inflight.delete(id);
      this.persist?.completed(s, o);
    }
  }

  /** @internal an outgoing QoS>0 message is done (acknowledged, refused or dropped). */
  complete(s: Session, o: Outgoing): void {
    s.inflight.delete(o.packetId);
    this.persist?.completed(s, o);
    if (s.queueLength > 0) this.pump(s);
  }

  /** @internal moves queued messages into flight while the client has room. */
  pump(s: Session): void {
    const c = s.conn;
    if (c === undefined || c.state !== ConnState.Connected) return;
    if (s.queueLength === 0) return;
    const q = s.queue;
    let now = 0;
    while (q.length > 0 && s.inflightSize < c.inflightLimit) {
      const o = q.shift()!;
      if (o.msg.expiresAt !== 0) {
        now ||= Date.now();
        // Message Expiry: a queued copy whose time ran out is never sent [MQTT-3.3.2-5].
        if (o.msg.expired(now)) {
          this.persist?.completed(s, o);
          continue;
        }
      }
      this.send(s, c, o);
    }
  }

  private dropped(s: Session, why: string): void {
    this.counters.messagesDropped++;
    s.droppedSinceLog++;
    s.dropReason = why;
    this.droppedSessions.add(s);
    // Never silent, never a flood: the first drop is logged at once, then one summary a second.
    const now = Date.now();
    if (now - this.lastDropLog >= 1000) this.logDrops(now);
  }

  private logDrops(now: number): void {
    this.lastDropLog = now;
    for (const s of this.droppedSessions) {
      if (s.droppedSinceLog > 0) {
        this.log(`[${s.clientId}] dropped ${s.droppedSinceLog} message(s): ${s.dropReason}`);
        s.droppedSinceLog = 0;
      }
    }
    this.droppedSessions.clear();
  }

  // ---- $SYS -----------------------------------------------------------------------------------

  private publishSys(): void {
    const st = this.stats;
    const values: [string, string][] = [
      ['uptime', `${Math.floor((Date.now() - this.startedAt) / 1000)} seconds`],
      ['clients/connected', String(st.clientsConnected)],
      ['clients/disconnected', String(this.sessions.size - st.clientsConnected)],
      ['clients/maximum', String(st.clientsMaximum)],
      ['clients/total', String(this.sessions.size)],
      // Like Mosquitto: messages/* counts packets of every type, publish/messages/* PUBLISH only.
      ['messages/received', String(st.packetsReceived)],
      ['messages/sent', String(st.packetsSent)],
      ['publish/messages/received', String(st.messagesReceived)],
      ['publish/messages/sent', String(st.messagesSent)],
      ['bytes/received', String(st.bytesReceived)],
      ['bytes/sent', String(st.bytesSent)],
      ['publish/messages/dropped', String(st.messagesDropped)],
      ['retained messages/count', String(st.retainedCount)],
      ['subscriptions/count', String(st.subscriptionCount)],
      ['version', 'mq broker'],
    ];
    for (const [name, value] of values) {
      const topic = `$SYS/broker/${name}`;
      // Like Mosquitto: retained, and only when the value changed.
      if (this.lastSys.get(topic) === value) continue;
      this.lastSys.set(topic, value);
      const msg = this.newMessage(topic, Buffer.from(value), 0, true, undefined, undefined);
      msg.owned = true;
      this.publish(msg);
    }
  }

  /** @internal restores a session from --persist (offline, expiry timer running). */
  restoreSession(s: Session): void {
    this.sessions.set(s.clientId, s);
    if (s.subCount > 0) for (const sub of s.subs.values()) this.trie.add(sub);
    if (s.expiryInterval !== NEVER_EXPIRES) this.scheduleExpiry(s);
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

function firePendingWill(broker: Broker, s: Session): void {
  s.willTimer = undefined;
  const will = s.pendingWill;
  s.pendingWill = undefined;
  if (will !== undefined) broker.publishWill(will);
}

function expireSession(broker: Broker, s: Session): void {
  s.expiryTimer = undefined;
  if (s.conn === undefined) broker.endSession(s);
}

/** 3.1.1 sessions: one copy per session at the highest matching QoS; v5: one per subscription. */
function computeTargets(r: MatchResult): Target[] {
  const targets: Target[] = [];
  let merged: Map<Session, Target> | undefined;
  for (const sub of r.subs) {
    const s = sub.session;
    if (s.version === 5) {
      targets.push({
        session: s,
        qos: sub.qos,
        noLocal: sub.noLocal,
        retainAsPublished: sub.retainAsPublished,
        subIds: sub.subscriptionId !== undefined ? [sub.subscriptionId] : undefined,
      });
      continue;
    }
    merged ??= new Map();
    const t = merged.get(s);
    if (t !== undefined) {
      if (sub.qos > t.qos) t.qos = sub.qos;
      continue;
    }
    const nt: Target = {
      session: s,
      qos: sub.qos,
      noLocal: false,
      retainAsPublished: false,
      subIds: undefined,
    };
    merged.set(s, nt);
    targets.push(nt);
  }
  return targets;
}

/** 3.1.1 CONNACK return code for a v5 reason code (codes 1-5 pass through). */
function toV4ReturnCode(code: number): number {
  if (code <= 5) return code;
  switch (code) {
    case ReasonCode.UnsupportedProtocolVersion:
      return 1;
    case ReasonCode.ClientIdentifierNotValid:
      return 2;
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
      return 4;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return 5;
    default:
      return 3;
  }
}

/** v5 CONNACK reason code for a 3.1.1 return code (codes >= 0x80 pass through). */
function toV5ConnackCode(code: number): number {
  const map = [0, 0x84, 0x85, 0x88, 0x86, 0x87];
  return code < map.length ? map[code]! : code;
}

function defaultTraceFormat(packet: Packet, _version: ProtocolVersion, mode: 'line' | 'full'): string {
  if (mode === 'full') {
    return `${packet.type} ${JSON.stringify(packet, (_k, v: unknown) => (isBufferJson(v) ? Buffer.from(v.data).toString('hex') : v))}`;
  }
  switch (packet.type) {
    case 'PUBLISH':
      return `PUBLISH q${packet.qos}${packet.retain ? ' retain' : ''}${packet.dup ? ' dup' : ''}${packet.packetId !== undefined ? ` id=${packet.packetId}` : ''} '${packet.topic}' (${packet.payload.length} bytes)`;
    case 'CONNECT':
      return `CONNECT ${packet.clientId === '' ? "''" : packet.clientId} v${packet.protocolVersion} ka=${packet.keepalive}${packet.clean ? ' clean' : ''}`;
    case 'CONNACK':
      return `CONNACK ${packet.reasonCode}${packet.sessionPresent ? ' session-present' : ''}`;
    case 'SUBSCRIBE':
      return `SUBSCRIBE id=${packet.packetId} ${packet.subscriptions.map((s) => `${s.topicFilter} q${s.qos}`).join(', ')}`;
    case 'SUBACK':
    case 'UNSUBACK':
      return `${packet.type} id=${packet.packetId} [${packet.reasonCodes.join(', ')}]`;
    case 'UNSUBSCRIBE':
      return `UNSUBSCRIBE id=${packet.packetId} ${packet.topicFilters.join(', ')}`;
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return `${packet.type} id=${packet.packetId}${packet.reasonCode ? ` rc=${packet.reasonCode}` : ''}`;
    case 'DISCONNECT':
    case 'AUTH':
      return `${packet.type}${packet.reasonCode ? ` rc=${packet.reasonCode}` : ''}`;
    case 'PINGREQ':
    case 'PINGRESP':
      return packet.type;
    default: {
      const unreachable: never = packet;
      return String(unreachable);
    }
  }
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  );
}
