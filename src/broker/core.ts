/**
 * The state the connections of one broker share (sessions, subscriptions, retained messages,
 * counters, limits, --persist) and the services every part uses (log, trace, the per-tick flush,
 * the clock). A Connection sees it only through ConnectionContext; the packet handlers, routing
 * and session lifecycle work on it; Broker (the public class) wraps it.
 */
import { escapeForTerminal } from '../cli/escape.js';
import {
  type DecodeOptions,
  formatReasonCode,
  type Packet,
  type QoS,
  ReasonCode,
} from '../protocol/index.js';
import { AccessControl, Authenticator } from './auth.js';
import { Backpressure } from './backpressure.js';
import { Connection, type ConnectionContext, ConnState, type ListenerKind } from './connection.js';
import { ScramUsers } from './enhanced-auth.js';
import { errorText } from './error-text.js';
import { handlePacket } from './handlers/index.js';
import type { Message } from './message.js';
import type { BrokerOptions, BrokerStats } from './options.js';
import type { Persistence } from './persist.js';
import type { KeptWill } from './persist-records.js';
import { DEFAULT_RESPONSE_INFORMATION, responseTemplateProblem } from './response-info.js';
import { DropLog } from './routing.js';
import type { Session } from './session.js';
import { detach, restoreSession, restoreWill } from './session-end.js';
import { Tracer } from './trace.js';
import type { Transport } from './transport.js';
import { SubscriptionTrie } from './trie.js';

const DEFAULT_MAX_INFLIGHT = 256;
/** --backpressure-timeout: how long a subscriber that does not catch up may hold up its publishers. */
const DEFAULT_BACKPRESSURE_TIMEOUT_MS = 5000;
const DEFAULT_MAX_QUEUED = 10_000;
/** Like Mosquitto: each alias holds a topic string in memory for the life of the connection. */
const DEFAULT_TOPIC_ALIAS_MAX = 10;
/**
 * Levels of a topic name or filter: EMQX's default. Mosquitto accepts 201 (TOPIC_HIERARCHY_LIMIT),
 * AWS IoT 8. Each level of a filter is a trie node (~85 bytes), so the limit bounds what one
 * filter costs; real topic trees are a few levels deep.
 */
export const DEFAULT_MAX_TOPIC_LEVELS = 128;
/**
 * User properties per packet: applications send a handful; each costs ~70 bytes of heap for 5
 * bytes on the wire when empty (200,000 of them once held ~19 MB per retained message).
 */
export const DEFAULT_MAX_USER_PROPERTIES = 1024;
/**
 * Subscriptions per session, and topic filters per SUBSCRIBE. A subscription costs ~300 bytes of
 * heap for as few as 4 bytes on the wire (a 7 MB SUBSCRIBE of a million filters held ~700 MB, and
 * ~45 MB would have reached the heap limit and ended the process); 10,000 bound that to ~3 MB per
 * session (more with long filters, which the client pays for in bytes sent).
 */
export const DEFAULT_MAX_SUBSCRIPTIONS = 10_000;
/**
 * A CONNECT's size before it is accepted: 128 KiB, the smallest power of two that takes any one
 * of its strings at the protocol's maximum (a 65,535-byte client id, user name, password or will
 * payload) beside short other fields; a CONNECT with two of them needs the flag. Without it, a
 * connection could make the broker hold 256 MB before saying who it is.
 */
export const DEFAULT_MAX_CONNECT_SIZE = 128 * 1024;

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
  /** --deny-subscribe given: each message's topic is checked once, at routing. */
  readonly denyReads: boolean;
  readonly drops: DropLog;
  readonly tracer: Tracer;
  readonly backpressure: Backpressure;
  /** The connection being read (ConnectionContext.reader). */
  reader: Connection | undefined = undefined;

  // Limits, resolved from the options once.
  readonly maxPacketSize: number | undefined;
  readonly delayMs: number;
  readonly maxQoS: QoS;
  readonly receiveMaximum: number;
  readonly topicAliasMax: number;
  readonly maxInflight: number;
  readonly maxQueued: number;
  readonly noRetain: boolean;
  readonly maxTopicLevels: number;
  readonly maxUserProperties: number;
  /** Per session, and topic filters per SUBSCRIBE / UNSUBSCRIBE. */
  readonly maxSubscriptions: number;
  /** Largest packet before CONNECT is accepted (never above maxPacketSize). */
  readonly maxConnectSize: number;
  readonly decodeOptions: DecodeOptions;
  /** --drop-every (0: off). */
  readonly dropEvery: number;
  /** The Response Information template (%c: the client id), or undefined: none is sent. */
  readonly responseTemplate: string | undefined;
  /** --trace or --record is on. */
  readonly tracing: boolean;
  /** Log lines are wanted (not --quiet): lines that cost something to make check it first. */
  readonly logging: boolean;

  /** Broker.close() has begun: new connections are refused, sessions are kept as they are. */
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
    this.denyReads = this.acl.deniesReads;
    this.maxPacketSize = options.maxPacketSize;
    this.delayMs = options.delayMs ?? 0;
    this.maxQoS = options.maxQoS ?? 2;
    this.receiveMaximum = options.receiveMaximum ?? 65_535;
    this.topicAliasMax = options.topicAliasMax ?? DEFAULT_TOPIC_ALIAS_MAX;
    this.maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.noRetain = options.noRetain === true;
    this.maxTopicLevels = options.maxTopicLevels ?? DEFAULT_MAX_TOPIC_LEVELS;
    this.maxUserProperties = options.maxUserProperties ?? DEFAULT_MAX_USER_PROPERTIES;
    this.maxSubscriptions = options.maxSubscriptions ?? DEFAULT_MAX_SUBSCRIPTIONS;
    this.maxConnectSize = Math.min(
      options.maxConnectSize ?? DEFAULT_MAX_CONNECT_SIZE,
      options.maxPacketSize ?? Number.POSITIVE_INFINITY,
    );
    this.decodeOptions = {
      maxUserProperties: this.maxUserProperties,
      maxTopicFilters: this.maxSubscriptions,
    };
    this.dropEvery = options.dropEvery ?? 0;
    const template = options.responseInformation;
    this.responseTemplate = template === false ? undefined : (template ?? DEFAULT_RESPONSE_INFORMATION);
    const problem =
      this.responseTemplate === undefined ? undefined : responseTemplateProblem(this.responseTemplate);
    if (problem !== undefined) throw new Error(`--response-information: ${problem}`);
    this.logLine = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.logging = options.quiet !== true;
    this.tracing = options.trace !== undefined || options.recordFile !== undefined;
    this.tracer = new Tracer(options.trace, options.traceOut ?? this.logLine);
    this.drops = new DropLog(this);
    this.backpressure = new Backpressure(
      this,
      options.backpressureTimeoutMs ?? DEFAULT_BACKPRESSURE_TIMEOUT_MS,
    );
  }

  // ---- ConnectionContext ----------------------------------------------------------------------

  /**
   * One log line, escaped for a terminal: client ids, user names, topics, filters, reasons and
   * header values in it come from the network (before authentication too), and a client must not
   * set the terminal's title, clear it, or forge a line with a newline (cli/escape.ts, the rule
   * every human output of mq follows). Embedders' `log` gets the escaped line.
   */
  log(line: string): void {
    if (this.logging) this.logLine(escapeForTerminal(line));
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

  /**
   * Makes the --persist records of this tick durable (and compacts a grown log). Never throws: when
   * the log cannot be written (disk full, a file size limit), what this tick's output would
   * acknowledge is not durable, so every connection with output pending is closed without it (its
   * client sends its QoS>0 messages again when it reconnects) and the broker carries on.
   */
  syncPersist(): void {
    const persist = this.persist;
    if (persist === undefined) return;
    try {
      persist.sync();
      if (persist.compactionDue) persist.compact(this.sessions, this.retained);
    } catch (err) {
      let closed = 0;
      for (const conn of this.dirtyConnections) {
        if (conn.state === ConnState.Closed) continue;
        conn.abort();
        closed++;
      }
      this.log(
        `--persist ${this.opts.persistFile ?? ''}: cannot write the log: ${errorText(err)}; what it would have acknowledged is not sent: ${closed} connection(s) closed`,
      );
    }
  }

  drained(conn: Connection): void {
    this.backpressure.drained(conn);
  }

  handlePacket(conn: Connection, packet: Packet, raw: Buffer): void {
    handlePacket(this, conn, packet, raw);
  }

  connectionEnded(conn: Connection): void {
    try {
      detach(this, conn);
    } catch (err) {
      this.internalError(undefined, `[${conn.label}]`, 'ending the connection', err);
    }
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
    for (let i = 0; i < list.length; i++) {
      const conn = list[i]!;
      try {
        conn.flush();
      } catch (err) {
        this.internalError(conn, `[${conn.label}]`, 'writing to the connection', err);
      }
    }
    list.length = 0;
  };

  /**
   * The periodic check of every connection: CONNECT timeout, keepalive, --disconnect-after. (A
   * timer calls it: whatever goes wrong with one connection closes that one, see internalError.)
   */
  sweep(): void {
    const now = this.now();
    const connectTimeout = this.opts.connectTimeoutMs ?? 10_000;
    for (const conn of this.connections) {
      try {
        this.sweepOne(conn, now, connectTimeout);
      } catch (err) {
        this.internalError(conn, `[${conn.label}]`, 'in the periodic check', err);
      }
    }
    try {
      this.drops.tick(now);
      this.backpressure.tick(now);
    } catch (err) {
      this.internalError(undefined, '', 'logging dropped messages', err);
    }
  }

  private sweepOne(conn: Connection, now: number, connectTimeout: number): void {
    if (conn.state === ConnState.AwaitingConnect) {
      if (now - conn.lastRx > connectTimeout) {
        // The timeout covers an enhanced authentication exchange too.
        const what = conn.authExchange === undefined ? 'no CONNECT' : 'authentication not done';
        this.log(`[${conn.label}] ${what} within ${connectTimeout / 1000} s: closing`);
        conn.closeNow();
      }
      return;
    }
    if (conn.state !== ConnState.Connected) return;
    // (A client not read from for backpressure may well have sent something.)
    if (conn.rxSeen || conn.blockers > 0) {
      conn.rxSeen = false;
      conn.lastRx = now;
    } else if (conn.keepaliveMs > 0 && now - conn.lastRx > conn.keepaliveMs * 1.5) {
      // [MQTT-3.1.2-22] nothing within 1.5 times the keepalive: the client is gone.
      this.log(`[${conn.label}] keepalive timeout (${conn.keepaliveMs / 1000} s): closing`);
      conn.disconnect(ReasonCode.KeepAliveTimeout);
      return;
    }
    if (conn.disconnectAt !== 0 && now >= conn.disconnectAt) {
      const reason = this.opts.disconnectReason ?? ReasonCode.AdministrativeAction;
      this.log(
        `[${conn.label}] --disconnect-after: disconnecting with ${formatReasonCode(reason, 'DISCONNECT')}`,
      );
      conn.disconnect(reason, '--disconnect-after fault injection');
    }
  }

  /**
   * An error nothing expected, in work a client's input led to, caught where the event loop
   * called in (a timer, a socket event, the end-of-tick flush, one delivery): a throw there would
   * end the process and every client with it. Logged (`who` says whose, `what` doing what), and
   * `conn`, when given, is closed at once without what it had queued.
   */
  internalError(conn: Connection | undefined, who: string, what: string, err: unknown): void {
    const prefix = who === '' ? '' : `${who} `;
    this.log(`${prefix}internal error ${what}: ${errorText(err)}${conn !== undefined ? ': closing' : ''}`);
    if (process.env.MQ_DEBUG === '1' && err instanceof Error) this.log(String(err.stack));
    conn?.abort();
  }

  // ---- --persist ------------------------------------------------------------------------------

  /**
   * Loads what the --persist log holds (sessions offline, retained messages, wills: those due
   * published now, into the restored sessions and retained messages), then compacts it.
   */
  restore(persist: Persistence): void {
    this.persist = persist;
    const restored = persist.restore();
    for (const [topic, m] of restored.retained) this.retained.set(topic, m);
    for (const s of restored.sessions.values()) restoreSession(this, s);
    this.restoreWills(restored.wills);
    persist.compact(this.sessions, this.retained);
  }

  private restoreWills(wills: ReadonlyMap<string, KeptWill>): void {
    if (wills.size === 0) return;
    const now = Date.now();
    let published = 0;
    for (const [clientId, w] of wills) if (restoreWill(this, clientId, w.will, w.dueAt, now)) published++;
    this.log(
      `--persist ${this.opts.persistFile ?? ''}: ${published} will(s) published at start (due while the broker was down, or their session ended with it), ${wills.size - published} waiting out their Will Delay Interval`,
    );
  }
}
