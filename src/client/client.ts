/**
 * MqttClient: one MQTT 3.1 / 3.1.1 / 5.0 client session over any transport. Owns the QoS 1/2 flows,
 * the in-flight limit, keepalive, topic aliases, redirects, reconnect and resubscribe. The socket is
 * replaceable (a reconnect opens a new one); the session (packet ids, un-acked messages, incoming
 * QoS 2 ids, subscriptions) lives as long as the client.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  type ConnackPacket,
  type ConnectPacket,
  type DisconnectPacket,
  encode,
  encodeInto,
  Framer,
  formatReasonCode,
  MalformedPacketError,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  packetSize,
  type QoS,
  type SubackPacket,
  type SubscribePacket,
  type Subscription,
  type UnsubackPacket,
  type UnsubscribePacket,
  type Will,
} from '../protocol/index.js';
import { backoffDelay } from './backoff.js';
import {
  ClientClosedError,
  ConnectError,
  connackRefusal,
  DisconnectError,
  explainConnectError,
} from './errors.js';
import { type Deferred, OutgoingPublishes, type PublishResult, refusalBeforeSending } from './inflight.js';

export type { PublishResult };

import { Keepalive } from './keepalive.js';
import { IncomingQos2, PacketIdAllocator } from './session.js';
import { IncomingAliases, OutgoingAliases } from './topic-alias.js';
import {
  describeTarget,
  errorContext,
  openTransport,
  redirectTarget,
  type TransportOptions,
} from './transport.js';

export interface ClientOptions extends TransportOptions {
  /** 3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0. */
  version: ProtocolVersion;
  /** '' lets the broker assign one (v5 reports it in CONNACK; 3.1.1 needs clean = true). */
  clientId: string;
  /** Seconds; 0 turns keepalive off. */
  keepalive: number;
  /** Clean Session (3.1/3.1.1) / Clean Start (5.0). */
  clean: boolean;
  /** v5 Session Expiry Interval in seconds (0xFFFFFFFF = never). */
  sessionExpiry?: number;
  username?: string;
  password?: Buffer;
  will?: Will;
  /** Extra CONNECT properties (-D connect ...). */
  connectProperties?: Properties;
  /** -M: at most this many QoS 1/2 PUBLISH un-acked at once; the broker's Receive Maximum caps it too. */
  maxInflight?: number;
  /** Reconnect after a lost connection, with exponential backoff and jitter between minMs and maxMs. */
  reconnect?: false | { minMs: number; maxMs: number };
  /** Socket connect + CONNACK. Default 10 s. */
  connectTimeoutMs?: number;
  /** Called for every packet sent ('out') and received ('in'), with its bytes. */
  trace?: (direction: 'in' | 'out', packet: Packet, raw: Buffer) => void;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
}

type PendingRequest =
  | ({ packet: SubscribePacket } & Deferred<SubackPacket>)
  | ({ packet: UnsubscribePacket } & Deferred<UnsubackPacket>);

export interface EndOptions {
  /** Resolve once DISCONNECT is handed to the operating system, not when the broker closes. */
  flushOnly?: boolean;
}

/** One network connection (a new one on every reconnect). */
interface Connection {
  socket: Duplex;
  framer: Framer;
  target: TransportOptions;
  connected: boolean;
  done: boolean;
  /** A write of the packets sent this turn of the event loop is scheduled (see send). */
  corked: boolean;
  /** Packets are encoded into this buffer; [batchStart, batchEnd) is not written yet. */
  batch: Buffer | undefined;
  batchStart: number;
  batchEnd: number;
  lastSent: number;
  lastReceived: number;
  pingOutstanding: boolean;
  error?: Error;
  disconnect?: DisconnectPacket;
  /** Why the client itself dropped it (malformed input, bad alias, keepalive). */
  lostReason?: DisconnectError;
  awaitingConnack?: Deferred<ConnackPacket>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Size of the buffers outgoing packets are encoded into (see send). */
const BATCH_BYTES = 64 * 1024;
/** CONNACK reason codes worth retrying after (transient); others end a reconnect loop. */
const TRANSIENT_REFUSALS = new Set([0x88, 0x89, 0x9c, 0x9d, 0x9f]);
const TRANSIENT_REFUSALS_V4 = new Set([3]);

export declare interface MqttClient {
  on(event: 'message', listener: (packet: PublishPacket) => void): this;
  on(event: 'offline', listener: (error: Error) => void): this;
  on(event: 'reconnect', listener: (attempt: number, delayMs: number, lastError?: Error) => void): this;
  on(event: 'connect', listener: (connack: ConnackPacket, resumed: boolean) => void): this;
  on(event: 'resubscribed', listener: (suback: SubackPacket, subscriptions: Subscription[]) => void): this;
  on(event: 'close', listener: (error?: Error) => void): this;
  once(event: 'message', listener: (packet: PublishPacket) => void): this;
  once(event: 'offline', listener: (error: Error) => void): this;
  once(event: 'reconnect', listener: (attempt: number, delayMs: number, lastError?: Error) => void): this;
  once(event: 'connect', listener: (connack: ConnackPacket, resumed: boolean) => void): this;
  once(event: 'close', listener: (error?: Error) => void): this;
}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: typed events for an EventEmitter
export class MqttClient extends EventEmitter {
  readonly options: ClientOptions;
  /** The latest CONNACK (server limits, assigned client id...). */
  connack!: ConnackPacket;

  private conn: Connection | undefined;
  private target: TransportOptions;
  private readonly ids = new PacketIdAllocator();
  private readonly incomingQos2 = new IncomingQos2();
  private readonly outgoing = new OutgoingPublishes(this.ids);
  private readonly requests = new Map<number, PendingRequest>();
  private readonly subscriptions = new Map<string, { sub: Subscription; properties?: Properties }>();
  private aliasesOut = new OutgoingAliases(0);
  private readonly aliasProps: (Properties | undefined)[] = [];
  private readonly aliasesIn: IncomingAliases;
  private keepaliveMs = 0;
  private readonly keepalive = new Keepalive();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private redirected = false;
  private closing = false;
  private finished = false;
  private everConnected = false;
  private assignedId: string | undefined;
  private waitingDrain = false;
  /** Messages received before connect() returned the client (see connect). */
  private early: PublishPacket[] | undefined = [];

  private constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.target = pickTransport(options);
    this.aliasesIn = new IncomingAliases(options.connectProperties?.topicAliasMaximum ?? 0);
  }

  /** Connects; resolves after a successful CONNACK. Rejects with ConnectError. */
  static async connect(options: ClientOptions): Promise<MqttClient> {
    const client = new MqttClient(options);
    await client.establish();
    // Messages that came with the CONNACK (a resumed session) wait until the caller, now holding
    // the client, has had a chance to listen for them.
    setImmediate(() => {
      const early = client.early ?? [];
      client.early = undefined;
      for (const packet of early) client.emit('message', packet);
    });
    return client;
  }

  /** The client id in use: the one the broker assigned, when it did. */
  get clientId(): string {
    return this.assignedId ?? this.options.clientId;
  }

  get version(): ProtocolVersion {
    return this.options.version;
  }

  /** True while a connection is up (CONNACK received, not lost). */
  get connected(): boolean {
    return this.conn?.connected === true;
  }

  /** QoS 1/2 PUBLISH packets sent and not yet fully acknowledged. */
  get inflight(): number {
    return this.outgoing.inflight;
  }

  /**
   * QoS 0 resolves once written to the socket; QoS 1/2 on PUBACK / PUBCOMP. A v5 reason code >= 0x80
   * rejects with PublishRefusedError. Beyond the in-flight limit, messages wait their turn.
   */
  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<PublishResult> {
    return new Promise((resolve, reject) => this.publishWith(topic, payload, options, resolve, reject));
  }

  /**
   * publish() with callbacks instead of a promise: `resolve` or `reject` is called when publish()'s
   * promise would settle; `resolve` may be called before publishWith returns (QoS 0 is done once
   * written). For streams of messages (`mq pub -l`): with the same two functions for every message,
   * nothing is allocated per message but the packet.
   */
  publishWith(
    topic: string,
    payload: Buffer | string,
    options: PublishOptions,
    resolve: (result: PublishResult) => void,
    reject: (err: Error) => void,
  ): void {
    if (this.finished || this.closing) {
      queueMicrotask(() => reject(new ClientClosedError('the client is closed')));
      return;
    }
    const qos = options.qos ?? 0;
    const packet: PublishPacket = {
      type: 'PUBLISH',
      dup: false,
      qos,
      retain: options.retain ?? false,
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    };
    if (options.properties !== undefined && this.version === 5) packet.properties = options.properties;
    const refusal = refusalBeforeSending(packet, this.version, this.connack?.properties);
    if (refusal) {
      queueMicrotask(() => reject(refusal));
      return;
    }
    this.outgoing.enqueue({ packet, resolve, reject });
    this.flush();
  }

  subscribe(subscriptions: Subscription[], properties?: Properties): Promise<SubackPacket> {
    if (this.finished || this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    const packetId = this.ids.allocate();
    if (packetId === undefined) return Promise.reject(new Error('all 65,535 packet identifiers are in use'));
    const packet: SubscribePacket = { type: 'SUBSCRIBE', packetId, subscriptions };
    if (properties !== undefined && this.version === 5) packet.properties = properties;
    return new Promise<SubackPacket>((resolve, reject) => {
      this.requests.set(packetId, {
        packet,
        resolve: (suback: SubackPacket) => {
          suback.reasonCodes.forEach((code: number, i: number) => {
            const sub = subscriptions[i];
            if (sub !== undefined && code < 0x80) {
              const entry: { sub: Subscription; properties?: Properties } = { sub };
              if (properties !== undefined) entry.properties = properties;
              this.subscriptions.set(sub.topicFilter, entry);
            }
          });
          resolve(suback);
        },
        reject,
      });
      this.sendRequest(packetId, reject);
    });
  }

  unsubscribe(topicFilters: string[], properties?: Properties): Promise<UnsubackPacket> {
    if (this.finished || this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    const packetId = this.ids.allocate();
    if (packetId === undefined) return Promise.reject(new Error('all 65,535 packet identifiers are in use'));
    const packet: UnsubscribePacket = { type: 'UNSUBSCRIBE', packetId, topicFilters };
    if (properties !== undefined && this.version === 5) packet.properties = properties;
    for (const f of topicFilters) this.subscriptions.delete(f);
    return new Promise<UnsubackPacket>((resolve, reject) => {
      this.requests.set(packetId, { packet, resolve, reject });
      this.sendRequest(packetId, reject);
    });
  }

  /** Sends a registered SUBSCRIBE/UNSUBSCRIBE now when connected (else on connect). */
  private sendRequest(packetId: number, reject: (err: Error) => void): void {
    const req = this.requests.get(packetId);
    if (req === undefined || !this.conn?.connected) return;
    try {
      this.send(this.conn, req.packet);
    } catch (err) {
      // Not encodable: nothing was written.
      this.requests.delete(packetId);
      this.ids.release(packetId);
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * Sends DISCONNECT (0x04 = publish my will) and waits for the socket to close, or with `flushOnly`
   * only until DISCONNECT has been handed to the operating system (a one-shot that exits next: the
   * broker's own close is one more round trip nobody waits for; mosquitto_pub does the same).
   */
  async end(reasonCode = 0, properties?: Properties, options: EndOptions = {}): Promise<void> {
    if (this.finished) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const conn = this.conn;
    if (conn && !conn.done) {
      let flushed: Promise<void> | undefined;
      if (conn.connected) {
        const packet: DisconnectPacket = { type: 'DISCONNECT' };
        if (this.version === 5) {
          packet.reasonCode = reasonCode;
          if (properties !== undefined) packet.properties = properties;
        }
        this.send(conn, packet);
        this.uncork(conn);
        conn.socket.end();
        if (options.flushOnly === true)
          flushed = new Promise((resolve) => conn.socket.once('finish', resolve));
      } else {
        conn.socket.destroy();
      }
      await new Promise<void>((resolve) => {
        if (conn.done) return resolve();
        const timer = setTimeout(() => conn.socket.destroy(), 2000);
        timer.unref();
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        conn.socket.once('close', done);
        flushed?.then(done);
      });
    }
    this.finish(new ClientClosedError('the client was closed'));
  }

  /** Closes the socket without DISCONNECT: the broker then publishes the will. */
  destroy(): void {
    if (this.finished) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.conn?.socket.destroy();
    this.finish(new ClientClosedError('the client was destroyed'));
  }

  // --- connecting ---------------------------------------------------------------------------

  /** Connects to this.target (following one redirect), and brings the session up. */
  private async establish(): Promise<void> {
    for (;;) {
      let connack: ConnackPacket;
      let conn: Connection;
      try {
        ({ connack, conn } = await this.connectOnce(this.target));
      } catch (err) {
        const ref = err instanceof RedirectSignal ? err : undefined;
        if (ref && !this.redirected) {
          this.redirected = true;
          this.target = redirectTarget(this.target, ref.serverReference);
          continue;
        }
        if (ref) throw ref.error;
        throw err;
      }
      this.onConnected(conn, connack);
      return;
    }
  }

  private async connectOnce(target: TransportOptions): Promise<{ connack: ConnackPacket; conn: Connection }> {
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const where = describeTarget(target);
    const secs = `${timeoutMs / 1000} s`;
    const abort = new AbortController();
    const timer = setTimeout(
      () =>
        abort.abort(new ConnectError(`could not connect to ${where} within ${secs}`, { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    try {
      const socket = await openTransport(target, abort.signal);
      const now = Date.now();
      const conn: Connection = {
        socket,
        framer: new Framer(this.version),
        target,
        connected: false,
        done: false,
        corked: false,
        batch: undefined,
        batchStart: 0,
        batchEnd: 0,
        lastSent: now,
        lastReceived: now,
        pingOutstanding: false,
      };
      const connack = new Promise<ConnackPacket>((resolve, reject) => {
        conn.awaitingConnack = { resolve, reject };
      });
      this.attach(conn);
      this.send(conn, this.connectPacket());
      this.uncork(conn); // now: the broker's answer is all we wait for
      const onAbort = () => {
        conn.awaitingConnack?.reject(new ConnectError(`no CONNACK within ${secs} from ${where}`));
        conn.socket.destroy();
      };
      abort.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const packet = await connack;
        return { connack: packet, conn };
      } finally {
        abort.signal.removeEventListener('abort', onAbort);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private connectPacket(): ConnectPacket {
    const o = this.options;
    const packet: ConnectPacket = {
      type: 'CONNECT',
      protocolVersion: o.version,
      clean: o.clean,
      keepalive: o.keepalive,
      clientId: o.clientId,
    };
    if (o.will) packet.will = o.will;
    if (o.username !== undefined) packet.username = o.username;
    if (o.password !== undefined) packet.password = o.password;
    if (o.version === 5) {
      const props: Properties = { ...o.connectProperties };
      if (o.sessionExpiry !== undefined && o.sessionExpiry > 0) props.sessionExpiryInterval = o.sessionExpiry;
      if (Object.keys(props).length > 0) packet.properties = props;
    }
    return packet;
  }

  private attach(conn: Connection): void {
    const { socket } = conn;
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err: Error) => {
      conn.error ??= err;
    });
    // A WebSocket stream may end without 'close' until destroyed.
    socket.on('end', () => socket.destroy());
    socket.on('close', () => this.onClose(conn));
    socket.on('drain', () => {
      if (this.waitingDrain && conn === this.conn) {
        this.waitingDrain = false;
        this.flush();
      }
    });
  }

  private onConnected(conn: Connection, connack: ConnackPacket): void {
    const resumed = connack.sessionPresent;
    const first = !this.everConnected;
    this.everConnected = true;
    this.conn = conn;
    conn.connected = true;
    this.connack = connack;
    this.attempt = 0;
    const props = connack.properties ?? {};
    if (props.assignedClientIdentifier !== undefined) this.assignedId = props.assignedClientIdentifier;
    this.keepaliveMs = (props.serverKeepAlive ?? this.options.keepalive) * 1000;
    this.outgoing.limit = Math.max(
      1,
      Math.min(this.options.maxInflight ?? 65535, props.receiveMaximum ?? 65535),
    );
    this.aliasesOut = new OutgoingAliases(this.version === 5 ? (props.topicAliasMaximum ?? 0) : 0);
    this.aliasesIn.reset();
    this.startKeepalive(conn);

    if (!resumed) this.incomingQos2.clear();
    // SUBSCRIBE / UNSUBSCRIBE still waiting for their ack go out again (taken before resubscribe
    // adds its own requests).
    const unanswered = [...this.requests.values()];
    if (!first && !resumed) this.resubscribe(conn);
    // [MQTT-4.4.0-1] resend un-acknowledged PUBLISH (DUP=1) and PUBREL, in their original order.
    for (const r of this.outgoing.resend()) {
      if (r.kind === 'publish') this.sendPublish(conn, r.packet);
      else this.send(conn, { type: 'PUBREL', packetId: r.packetId });
    }
    for (const req of unanswered) this.send(conn, req.packet);
    this.flush();
    this.emit('connect', connack, resumed);
  }

  private resubscribe(conn: Connection): void {
    const groups = new Map<Properties | undefined, Subscription[]>();
    for (const { sub, properties } of this.subscriptions.values()) {
      const list = groups.get(properties) ?? [];
      list.push(sub);
      groups.set(properties, list);
    }
    for (const [properties, subs] of groups) {
      const packetId = this.ids.allocate();
      if (packetId === undefined) return;
      const packet: SubscribePacket = { type: 'SUBSCRIBE', packetId, subscriptions: subs };
      if (properties !== undefined && this.version === 5) packet.properties = properties;
      this.requests.set(packetId, {
        packet,
        resolve: (suback: SubackPacket) => this.emit('resubscribed', suback, subs),
        reject: () => {},
      });
      this.send(conn, packet);
    }
  }

  // --- sending ------------------------------------------------------------------------------

  /**
   * Encodes `packet` into the connection's batch buffer; everything sent in one turn of the event
   * loop goes out in one write (uncork), or every BATCH_BYTES. No Buffer and no stream write per
   * packet: `mq pub -l` sends 100k+ messages a second this way. False when the socket asks to wait
   * for 'drain'. Throws EncodeError (nothing written) when the packet cannot be encoded.
   */
  private send(conn: Connection, packet: Packet): boolean {
    const version = this.version;
    const size = packetSize(packet, version);
    let ok = true;
    let batch = conn.batch;
    if (batch === undefined || conn.batchEnd + size > batch.length) {
      ok = this.writeBatch(conn);
      if (size > BATCH_BYTES / 4) {
        // Big packets get their own buffer (and keep the batch buffer small).
        const raw = encode(packet, version);
        this.options.trace?.('out', packet, raw);
        conn.lastSent = Date.now();
        return this.writeRaw(conn, raw) && ok;
      }
      batch = Buffer.allocUnsafe(BATCH_BYTES);
      conn.batch = batch;
      conn.batchStart = 0;
      conn.batchEnd = 0;
    }
    const start = conn.batchEnd;
    encodeInto(packet, version, batch, start);
    conn.batchEnd = start + size;
    // The bytes stay as they are once encoded (the buffer is only ever appended to): safe to show.
    this.options.trace?.('out', packet, batch.subarray(start, start + size));
    conn.lastSent = Date.now();
    if (!conn.corked) {
      conn.corked = true;
      setImmediate(() => this.uncork(conn));
    }
    return ok;
  }

  /** Writes what send() batched; called once per turn of the event loop, and before ending. */
  private uncork(conn: Connection): void {
    if (!conn.corked) return;
    conn.corked = false;
    this.writeBatch(conn);
  }

  private writeBatch(conn: Connection): boolean {
    const batch = conn.batch;
    if (batch === undefined || conn.batchEnd === conn.batchStart) return true;
    const chunk = batch.subarray(conn.batchStart, conn.batchEnd);
    conn.batchStart = conn.batchEnd;
    return this.writeRaw(conn, chunk);
  }

  private writeRaw(conn: Connection, bytes: Buffer): boolean {
    const socket = conn.socket;
    if (socket.destroyed || socket.writableEnded) return true; // lost: onClose deals with it
    return socket.write(bytes);
  }

  private sendPublish(conn: Connection, packet: PublishPacket): boolean {
    if (this.version !== 5) return this.send(conn, packet);
    const props = packet.properties;
    const userAlias = props?.topicAlias;
    if (userAlias !== undefined) {
      if (packet.topic !== '') this.aliasesOut.remember(packet.topic, userAlias);
      return this.send(conn, packet);
    }
    const alias = this.aliasesOut.aliasFor(packet.topic);
    if (alias === 0) return this.send(conn, packet);
    // The stored packet keeps its topic (a resend after reconnect needs it); the wire copy gets the alias.
    const n = Math.abs(alias);
    const wire: PublishPacket = {
      type: 'PUBLISH',
      dup: packet.dup,
      qos: packet.qos,
      retain: packet.retain,
      topic: alias > 0 ? '' : packet.topic,
      payload: packet.payload,
      properties: props === undefined ? this.aliasProperties(n) : { ...props, topicAlias: n },
    };
    if (packet.packetId !== undefined) wire.packetId = packet.packetId;
    return this.send(conn, wire);
  }

  /** `{ topicAlias: n }`, one shared object per alias (messages without other properties). */
  private aliasProperties(n: number): Properties {
    let p = this.aliasProps[n];
    if (p === undefined) {
      p = { topicAlias: n };
      this.aliasProps[n] = p;
    }
    return p;
  }

  /** Moves queued publishes onto the wire while the in-flight limit and the socket allow. */
  private flush(): void {
    const conn = this.conn;
    if (!conn?.connected || this.waitingDrain) return;
    for (let item = this.outgoing.next(); item !== undefined; item = this.outgoing.next()) {
      let ok: boolean;
      try {
        ok = this.sendPublish(conn, item.packet);
      } catch (err) {
        // Not encodable (a string too long...): nothing was written; refuse this one message.
        this.outgoing.failed(item, err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      this.outgoing.sent(item);
      if (!ok) {
        this.waitingDrain = true;
        return;
      }
    }
  }

  // --- receiving ----------------------------------------------------------------------------

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.done) return;
    conn.lastReceived = Date.now();
    conn.pingOutstanding = false;
    // An old broker answers a v5 CONNECT with a 3.1.1 CONNACK (remaining length 2; a v5 one is >= 3).
    if (
      !conn.connected &&
      this.version === 5 &&
      chunk.length >= 4 &&
      chunk[0] === 0x20 &&
      chunk[1] === 0x02
    ) {
      const rc = chunk[3] ?? 0;
      conn.awaitingConnack?.reject(
        new ConnectError(
          `connection refused by ${describeTarget(conn.target)}: it answered in MQTT 3.1.1 (${formatReasonCode(rc, 'CONNACK', 4)}): the broker does not speak MQTT 5; try -V 3.1.1`,
          { reasonCode: rc },
        ),
      );
      conn.socket.destroy();
      return;
    }
    try {
      conn.framer.push(chunk, (packet, raw) => {
        if (conn.done) return;
        this.options.trace?.('in', packet, raw);
        this.onPacket(conn, packet);
      });
    } catch (err) {
      if (!(err instanceof MalformedPacketError)) throw err;
      this.protocolFailure(conn, err.reasonCode, `the broker sent a malformed packet: ${err.message}`);
    }
  }

  /** The broker broke the protocol: DISCONNECT with `reasonCode` (v5) and drop the connection. */
  private protocolFailure(conn: Connection, reasonCode: number, message: string): void {
    if (conn.done) return;
    if (!conn.connected) {
      conn.awaitingConnack?.reject(new ConnectError(`${describeTarget(conn.target)}: ${message}`));
    } else {
      conn.lostReason = new DisconnectError(message);
      if (this.version === 5) this.send(conn, { type: 'DISCONNECT', reasonCode });
      this.uncork(conn);
    }
    conn.socket.end();
    conn.socket.destroy();
  }

  private onPacket(conn: Connection, packet: Packet): void {
    switch (packet.type) {
      case 'CONNACK':
        this.onConnack(conn, packet);
        return;
      case 'PUBLISH':
        this.onPublish(conn, packet);
        return;
      case 'PUBACK':
        if (this.outgoing.onPuback(packet.packetId, packet.reasonCode ?? 0)) this.flush();
        return;
      case 'PUBREC':
        switch (this.outgoing.onPubrec(packet.packetId, packet.reasonCode ?? 0)) {
          case 'pubrel':
            this.send(conn, { type: 'PUBREL', packetId: packet.packetId });
            return;
          case 'done':
            this.flush();
            return;
          case 'unknown':
            this.send(
              conn,
              this.version === 5
                ? { type: 'PUBREL', packetId: packet.packetId, reasonCode: 0x92 }
                : { type: 'PUBREL', packetId: packet.packetId },
            );
            return;
        }
        return;
      case 'PUBCOMP':
        if (this.outgoing.onPubcomp(packet.packetId)) this.flush();
        return;
      case 'PUBREL':
        this.incomingQos2.release(packet.packetId);
        this.send(conn, { type: 'PUBCOMP', packetId: packet.packetId });
        return;
      case 'SUBACK':
      case 'UNSUBACK': {
        const req = this.requests.get(packet.packetId);
        if (req === undefined) return;
        this.requests.delete(packet.packetId);
        this.ids.release(packet.packetId);
        if (req.packet.type === 'SUBSCRIBE' && packet.type === 'SUBACK') {
          (req as Deferred<SubackPacket>).resolve(packet);
        } else if (req.packet.type === 'UNSUBSCRIBE' && packet.type === 'UNSUBACK') {
          (req as Deferred<UnsubackPacket>).resolve(packet);
        } else {
          req.reject(new Error(`the broker answered packet ${packet.packetId} with a ${packet.type}`));
        }
        return;
      }
      case 'PINGRESP':
        return;
      case 'DISCONNECT':
        conn.disconnect = packet;
        conn.socket.destroy();
        return;
      case 'AUTH':
        this.protocolFailure(
          conn,
          0x82,
          'the broker sent AUTH, but mq does not support enhanced authentication',
        );
        return;
      case 'CONNECT':
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE':
      case 'PINGREQ':
        this.protocolFailure(conn, 0x82, `the broker sent a ${packet.type}, which only clients send`);
        return;
      default: {
        const never: never = packet;
        throw new Error(`unhandled packet ${(never as Packet).type}`);
      }
    }
  }

  private onConnack(conn: Connection, packet: ConnackPacket): void {
    const waiting = conn.awaitingConnack;
    if (conn.connected || waiting === undefined) {
      this.protocolFailure(conn, 0x82, 'the broker sent a second CONNACK');
      return;
    }
    conn.awaitingConnack = undefined;
    if (packet.reasonCode === 0) {
      waiting.resolve(packet);
      return;
    }
    const ref = packet.properties?.serverReference;
    const refusal = connackRefusal(
      packet.reasonCode,
      this.version,
      describeTarget(conn.target),
      packet.properties?.reasonString,
    );
    if (
      (packet.reasonCode === 0x9c || packet.reasonCode === 0x9d) &&
      ref !== undefined &&
      this.version === 5
    ) {
      refusal.message += ` (it points to ${ref})`;
      waiting.reject(new RedirectSignal(ref, refusal));
    } else {
      waiting.reject(refusal);
    }
    conn.socket.destroy();
  }

  private onPublish(conn: Connection, packet: PublishPacket): void {
    if (this.version === 5) {
      const resolved = this.aliasesIn.resolve(packet.topic, packet.properties?.topicAlias);
      if ('error' in resolved) {
        this.protocolFailure(conn, 0x94, `the broker sent a bad topic alias: ${resolved.error}`);
        return;
      }
      packet.topic = resolved.topic;
    }
    switch (packet.qos) {
      case 0:
        this.deliver(packet);
        return;
      case 1:
        this.deliver(packet);
        this.send(conn, { type: 'PUBACK', packetId: packet.packetId ?? 0 });
        return;
      case 2: {
        const id = packet.packetId ?? 0;
        if (this.incomingQos2.receive(id)) this.deliver(packet);
        this.send(conn, { type: 'PUBREC', packetId: id });
        return;
      }
      default: {
        const never: never = packet.qos;
        throw new Error(`bad QoS ${String(never)}`);
      }
    }
  }

  private deliver(packet: PublishPacket): void {
    if (this.early !== undefined) {
      // The payload is a view into the read buffer: keep a copy.
      this.early.push({ ...packet, payload: Buffer.from(packet.payload) });
      return;
    }
    this.emit('message', packet);
  }

  // --- keepalive ----------------------------------------------------------------------------

  private startKeepalive(conn: Connection): void {
    this.keepalive.start(
      this.keepaliveMs,
      conn,
      () => this.send(conn, { type: 'PINGREQ' }),
      (silentMs) => {
        conn.lostReason = new DisconnectError(
          `no answer from ${describeTarget(conn.target)} for ${(silentMs / 1000).toFixed(1)} s (keepalive ${this.keepaliveMs / 1000} s): connection lost`,
        );
        conn.socket.destroy();
      },
    );
  }

  // --- losing the connection ----------------------------------------------------------------

  private onClose(conn: Connection): void {
    if (conn.done) return;
    conn.done = true;
    if (conn === this.conn) this.keepalive.stop();
    if (!conn.connected) {
      const waiting = conn.awaitingConnack;
      if (waiting === undefined) return;
      conn.awaitingConnack = undefined;
      const where = describeTarget(conn.target);
      if (conn.disconnect) {
        const rc = conn.disconnect.reasonCode ?? 0;
        waiting.reject(
          new ConnectError(
            `${where} sent DISCONNECT ${formatReasonCode(rc, 'DISCONNECT')} instead of CONNACK`,
          ),
        );
      } else if (conn.error) {
        waiting.reject(explainConnectError(conn.error, errorContext(conn.target)));
      } else if (this.version === 5) {
        waiting.reject(
          new ConnectError(
            `${where} closed the connection without answering CONNECT: the broker may not speak MQTT 5; try -V 3.1.1`,
          ),
        );
      } else {
        waiting.reject(new ConnectError(`${where} closed the connection without answering CONNECT`));
      }
      return;
    }
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.waitingDrain = false;
    const error = this.lossError(conn);
    if (this.closing) return;
    this.emit('offline', error);
    const ref = conn.disconnect?.properties?.serverReference;
    const rc = conn.disconnect?.reasonCode;
    if (ref !== undefined && (rc === 0x9c || rc === 0x9d) && !this.redirected) {
      this.redirected = true;
      this.target = redirectTarget(this.target, ref);
      this.retry(0, error);
      return;
    }
    // Taken over by a client with the same id: reconnecting would only take it back, and so on.
    if (this.options.reconnect && rc !== 0x8e) {
      this.scheduleReconnect(error);
    } else {
      this.finish(error);
    }
  }

  private lossError(conn: Connection): DisconnectError {
    if (conn.lostReason) return conn.lostReason;
    const where = describeTarget(conn.target);
    if (conn.disconnect) {
      const rc = conn.disconnect.reasonCode ?? 0;
      const reason = conn.disconnect.properties?.reasonString;
      const ref = conn.disconnect.properties?.serverReference;
      const hint = rc === 0x8e ? ': another client connected with the same client id (-i)' : '';
      return new DisconnectError(
        `${where} disconnected: ${formatReasonCode(rc, 'DISCONNECT')}${reason ? ` (${reason})` : ''}${ref ? ` (use ${ref})` : ''}${hint}`,
        rc,
      );
    }
    const why = conn.error ? `: ${conn.error.message}` : '';
    return new DisconnectError(`the connection to ${where} was lost${why}`);
  }

  private scheduleReconnect(lastError?: Error): void {
    const range = this.options.reconnect;
    if (!range) return;
    this.attempt++;
    const delay = backoffDelay(this.attempt, range);
    this.emit('reconnect', this.attempt, delay, lastError);
    this.retry(delay, lastError);
  }

  private retry(delayMs: number, _lastError?: Error): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.establish().catch((err: unknown) => {
        if (this.closing || this.finished) return;
        const error = err instanceof Error ? err : new Error(String(err));
        if (this.options.reconnect && !this.isFatal(error)) this.scheduleReconnect(error);
        else this.finish(error);
      });
    }, delayMs);
  }

  /** CONNACK refusals that no retry will fix (bad credentials, not authorized, wrong version...). */
  private isFatal(err: Error): boolean {
    if (!(err instanceof ConnectError) || err.reasonCode === undefined) return false;
    return this.version === 5
      ? !TRANSIENT_REFUSALS.has(err.reasonCode)
      : !TRANSIENT_REFUSALS_V4.has(err.reasonCode);
  }

  /** The client is done: fail whatever still waits, emit 'close'. */
  private finish(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.keepalive.stop();
    this.outgoing.failAll(error);
    for (const req of this.requests.values()) req.reject(error);
    this.requests.clear();
    this.ids.clear();
    this.emit('close', error instanceof ClientClosedError ? undefined : error);
  }
}

/** Raised inside connect when a CONNACK says "use another server". */
class RedirectSignal extends Error {
  constructor(
    readonly serverReference: string,
    readonly error: ConnectError,
  ) {
    super(error.message);
  }
}

function pickTransport(o: ClientOptions): TransportOptions {
  const t: TransportOptions = { transport: o.transport, host: o.host, port: o.port };
  if (o.path !== undefined) t.path = o.path;
  if (o.wsHeaders !== undefined) t.wsHeaders = o.wsHeaders;
  if (o.tls !== undefined) t.tls = o.tls;
  return t;
}
