/**
 * The state the connections of one broker share (sessions, subscriptions, retained messages,
 * counters, limits, --persist) and the services every part uses (log, trace, the per-tick flush,
 * the clock). A Connection sees it only through ConnectionContext; the packet handlers, routing
 * and session lifecycle work on it; Broker (the public class) wraps it.
 */
import { escapeForTerminal } from '../cli/escape.js';
import { formatReasonCode, type Packet, type QoS, ReasonCode } from '../protocol/index.js';
import { AccessControl, Authenticator } from './auth.js';
import { Connection, type ConnectionContext, ConnState, type ListenerKind } from './connection.js';
import { ScramUsers } from './enhanced-auth.js';
import { handlePacket } from './handlers/index.js';
import type { Message } from './message.js';
import type { BrokerOptions, BrokerStats } from './options.js';
import type { Persistence } from './persist.js';
import { DropLog } from './routing.js';
import type { Session } from './session.js';
import { detach, restoreSession } from './session-end.js';
import { Tracer } from './trace.js';
import type { Transport } from './transport.js';
import { SubscriptionTrie } from './trie.js';

const DEFAULT_MAX_INFLIGHT = 256;
const DEFAULT_MAX_QUEUED = 10_000;
/** Like Mosquitto: each alias holds a topic string in memory for the life of the connection. */
const DEFAULT_TOPIC_ALIAS_MAX = 10;

export class BrokerCore implements ConnectionContext {
  readonly opts: BrokerOptions;
  /** The live counters (hot path); Broker.stats copies them. */
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
  readonly sessions = new Map<string, Session>();
  readonly trie = new SubscriptionTrie();
  readonly retained = new Map<string, Message>();
  readonly connections = new Set<Connection>();
  persist: Persistence | undefined = undefined;
  readonly auth: Authenticator;
  /** SCRAM credentials for enhanced authentication (--auth users). */
  readonly scramUsers: ScramUsers;
  readonly acl: AccessControl;
  /** --acl given: every delivery checks read access (off otherwise, so the fan-out path pays nothing). */
  readonly aclReads: boolean;
  readonly drops: DropLog;
  readonly tracer: Tracer;

  // Limits, resolved from the options once.
  readonly maxPacketSize: number | undefined;
  readonly delayMs: number;
  readonly maxQoS: QoS;
  readonly receiveMaximum: number;
  readonly topicAliasMax: number;
  readonly maxInflight: number;
  readonly maxQueued: number;
  readonly noRetain: boolean;
  /** --drop-every (0: off). */
  readonly dropEvery: number;
  /** --trace or --record is on. */
  readonly tracing: boolean;

  /** Broker.close() has begun: new connections are refused, wills are not published. */
  closing = false;
  /** The time behind keepalive, connect timeout and Message Expiry (ms); tests may move it. */
  clock: () => number = Date.now;

  private readonly logLine: (line: string) => void;
  private readonly dirtyConnections: Connection[] = [];
  private flushScheduled = false;
  private faultCounter = 0;

  constructor(options: BrokerOptions) {
    this.opts = options;
    this.auth = new Authenticator(options.users, options.passwdFile, options.maxAuthPending);
    this.scramUsers = new ScramUsers(options.users, options.scramIterations, this.auth.scram);
    this.acl = new AccessControl(options.aclFile, options.denySubscribe, options.denyPublish);
    this.aclReads = this.acl.checksReads;
    this.maxPacketSize = options.maxPacketSize;
    this.delayMs = options.delayMs ?? 0;
    this.maxQoS = options.maxQoS ?? 2;
    this.receiveMaximum = options.receiveMaximum ?? 65_535;
    this.topicAliasMax = options.topicAliasMax ?? DEFAULT_TOPIC_ALIAS_MAX;
    this.maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.noRetain = options.noRetain === true;
    this.dropEvery = options.dropEvery ?? 0;
    this.logLine = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.tracing = options.trace !== undefined || options.recordFile !== undefined;
    this.tracer = new Tracer(options.trace, options.traceOut ?? this.logLine);
    this.drops = new DropLog(this);
  }

  // ---- ConnectionContext ----------------------------------------------------------------------

  /**
   * One log line, escaped for a terminal: client ids, user names, topics, filters, reasons and
   * header values in it come from the network (before authentication too), and a client must not
   * set the terminal's title, clear it, or forge a line with a newline (cli/escape.ts, the rule
   * every human output of mq follows). Embedders' `log` gets the escaped line.
   */
  log(line: string): void {
    this.logLine(escapeForTerminal(line));
  }

  now(): number {
    return this.clock();
  }

  traceIn(conn: Connection, packet: Packet, raw: Buffer): void {
    this.tracer.in(conn, packet, raw);
  }

  traceOut(conn: Connection, bytes: Buffer): void {
    this.tracer.out(conn, bytes);
  }

  /** --drop-every: true when this outgoing packet is to be lost. */
  faultDrop(): boolean {
    return this.dropEvery > 0 && ++this.faultCounter % this.dropEvery === 0;
  }

  /** `conn` has output: one write per connection per tick, after --persist is synced. */
  scheduleFlush(conn: Connection): void {
    conn.dirty = true;
    this.dirtyConnections.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** Makes the --persist records of this tick durable (and compacts a grown log). */
  syncPersist(): void {
    const persist = this.persist;
    if (persist === undefined) return;
    persist.sync();
    if (persist.compactionDue) persist.compact(this.sessions, this.retained);
  }

  handlePacket(conn: Connection, packet: Packet, raw: Buffer): void {
    handlePacket(this, conn, packet, raw);
  }

  connectionEnded(conn: Connection): void {
    detach(this, conn);
  }

  connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
  }

  // ---- connections and ticks ------------------------------------------------------------------

  /** A new connection on `transport`; over --max-connections (or closing) its CONNECT is refused. */
  accept(transport: Transport, listener: ListenerKind): Connection {
    const conn = new Connection(this, transport, listener, this.now());
    const max = this.opts.maxConnections;
    if (this.closing || (max !== undefined && this.connections.size >= max)) conn.overLimit = true;
    this.connections.add(conn);
    return conn;
  }

  /** End-of-tick work is pending (--persist records with no output to flush). */
  scheduleTick(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    // Write-ahead: what the acks below acknowledge is on disk first.
    this.syncPersist();
    const list = this.dirtyConnections;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  };

  /** The periodic check of every connection: CONNECT timeout, keepalive, --disconnect-after. */
  sweep(): void {
    const now = this.now();
    const connectTimeout = this.opts.connectTimeoutMs ?? 10_000;
    for (const conn of this.connections) {
      if (conn.state === ConnState.AwaitingConnect) {
        if (now - conn.acceptedAt > connectTimeout) {
          // The timeout covers an enhanced authentication exchange too.
          const what = conn.authExchange === undefined ? 'no CONNECT' : 'authentication not done';
          this.log(`[${conn.label}] ${what} within ${connectTimeout / 1000} s: closing`);
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
    this.drops.tick(now);
  }

  // ---- --persist ------------------------------------------------------------------------------

  /** Loads what the --persist log holds (sessions offline, retained messages), then compacts it. */
  restore(persist: Persistence): void {
    this.persist = persist;
    const restored = persist.restore();
    for (const [topic, m] of restored.retained) this.retained.set(topic, m);
    for (const s of restored.sessions.values()) restoreSession(this, s);
    persist.compact(this.sessions, this.retained);
  }
}
