/**
 * MqttClient: one MQTT 3.1 / 3.1.1 / 5.0 client session over any transport. The socket is
 * replaceable (a reconnect opens a new one); the session (packet ids, un-acked messages, incoming
 * QoS 2 ids, subscriptions) lives as long as the client. This file is the session's life: the public
 * API, bringing a connection up (and resuming the session on it), keepalive, losing it, reconnect
 * and redirects. The parts live beside it:
 *
 *   connection.ts      one socket: framing, batched writes, protocol failures
 *   handshake.ts       CONNECT -> CONNACK, and every way it fails, in plain words
 *   publish-flows.ts   QoS 0/1/2 both ways, in-flight limit, topic aliases, resend
 *   subscriptions.ts   SUBSCRIBE / UNSUBSCRIBE, and resubscribing a new session
 */
import { EventEmitter } from 'node:events';
import type {
  ConnackPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  SubackPacket,
  Subscription,
  UnsubackPacket,
} from '../protocol/index.js';
import { backoffDelay } from './backoff.js';
import type { Connection, ConnectionEvents } from './connection.js';
import { handleAuthPacket, reauthenticate } from './enhanced-auth.js';
import { ClientClosedError, DisconnectError } from './errors.js';
import {
  closedBeforeConnack,
  isFatalRefusal,
  openConnection,
  RedirectSignal,
  settleConnack,
} from './handshake.js';
import { type PublishResult, refusalBeforeSending } from './inflight.js';
import { Keepalive } from './keepalive.js';
import type { ClientOptions, EndOptions, PublishOptions } from './options.js';
import { PublishFlows } from './publish-flows.js';
import { PacketIdAllocator } from './session.js';
import { Subscriptions } from './subscriptions.js';
import { redirectTarget, type TransportOptions } from './transport.js';

export type { ClientOptions, EndOptions, PublishOptions, PublishResult };

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
  private readonly flows: PublishFlows;
  private readonly subs: Subscriptions;
  private keepaliveMs = 0;
  private readonly keepalive = new Keepalive();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private redirected = false;
  private closing = false;
  private finished = false;
  private everConnected = false;
  private assignedId: string | undefined;
  /** Messages received before connect() returned the client (see connect). */
  private early: PublishPacket[] | undefined = [];
  /** What every connection of this client reports to. */
  private readonly events: ConnectionEvents = {
    packet: (conn, packet) => this.onPacket(conn, packet),
    close: (conn) => this.onClose(conn),
    drain: (conn) => {
      if (conn === this.conn) this.flows.drained(conn);
    },
  };

  private constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.target = pickTransport(options);
    this.flows = new PublishFlows(
      this.ids,
      options.version,
      options.connectProperties?.topicAliasMaximum ?? 0,
      (packet) => this.deliver(packet),
    );
    this.subs = new Subscriptions(this.ids, options.version);
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
    return this.flows.inflight;
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
    this.flows.publish({ packet, resolve, reject }, this.conn);
  }

  subscribe(subscriptions: Subscription[], properties?: Properties): Promise<SubackPacket> {
    if (this.finished || this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    return this.subs.subscribe(subscriptions, properties, this.conn);
  }

  unsubscribe(topicFilters: string[], properties?: Properties): Promise<UnsubackPacket> {
    if (this.finished || this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    return this.subs.unsubscribe(topicFilters, properties, this.conn);
  }

  /**
   * Re-authenticates the connection (v5 AUTH 0x19 with options.auth's method [MQTT-4.12.1-1]):
   * resolves once the broker accepted (AUTH 0x00) and proved itself; rejects when it refused (the
   * connection is then lost), or when no connection is up.
   */
  reauthenticate(): Promise<void> {
    const auth = this.options.auth;
    if (auth === undefined || this.version !== 5) {
      return Promise.reject(
        new Error('re-authentication needs enhanced authentication (the auth option, MQTT 5)'),
      );
    }
    const conn = this.conn;
    if (this.finished || this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    if (conn === undefined || !conn.connected) return Promise.reject(new DisconnectError('not connected'));
    return reauthenticate(conn, auth);
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
        conn.send(packet);
        conn.uncork();
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
        ({ connack, conn } = await openConnection(this.target, this.options, this.events));
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

  /** CONNACK accepted: the connection becomes the client's, and the session resumes on it. */
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
    this.flows.connected(connack, this.options.maxInflight);
    this.startKeepalive(conn);

    // SUBSCRIBE / UNSUBSCRIBE still waiting for their ack go out again (taken before resubscribe
    // adds its own requests).
    const unanswered = this.subs.unanswered();
    if (!first && !resumed) {
      this.subs.resubscribe(conn, (suback, subs) => this.emit('resubscribed', suback, subs));
    }
    this.flows.resend(conn);
    for (const packet of unanswered) conn.send(packet);
    this.flows.flush(conn);
    this.emit('connect', connack, resumed);
  }

  // --- receiving ----------------------------------------------------------------------------

  private onPacket(conn: Connection, packet: Packet): void {
    switch (packet.type) {
      case 'CONNACK':
        settleConnack(conn, packet, this.version, this.options.auth);
        return;
      case 'PUBLISH':
        this.flows.onPublish(conn, packet);
        return;
      case 'PUBACK':
      case 'PUBREC':
      case 'PUBCOMP':
      case 'PUBREL':
        this.flows.onAck(conn, packet);
        return;
      case 'SUBACK':
      case 'UNSUBACK':
        this.subs.onAck(packet);
        return;
      case 'PINGRESP':
        return;
      case 'DISCONNECT':
        conn.disconnect = packet;
        conn.socket.destroy();
        return;
      case 'AUTH':
        handleAuthPacket(conn, packet, this.options.auth);
        return;
      case 'CONNECT':
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE':
      case 'PINGREQ':
        conn.fail(0x82, `the broker sent a ${packet.type}, which only clients send`);
        return;
      default: {
        const never: never = packet;
        throw new Error(`unhandled packet ${(never as Packet).type}`);
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
      () => conn.send({ type: 'PINGREQ' }),
      (silentMs) => {
        conn.lostReason = new DisconnectError(
          `no answer from ${conn.where} for ${(silentMs / 1000).toFixed(1)} s (keepalive ${this.keepaliveMs / 1000} s): connection lost`,
        );
        conn.socket.destroy();
      },
    );
  }

  // --- losing the connection ----------------------------------------------------------------

  private onClose(conn: Connection): void {
    if (conn === this.conn) this.keepalive.stop();
    if (!conn.connected) {
      closedBeforeConnack(conn, this.version);
      return;
    }
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.flows.lost();
    const error = conn.lossError();
    conn.reauth?.reject(error);
    conn.reauth = undefined;
    if (this.closing) return;
    this.emit('offline', error);
    const ref = conn.disconnect?.properties?.serverReference;
    const rc = conn.disconnect?.reasonCode;
    if (ref !== undefined && (rc === 0x9c || rc === 0x9d) && !this.redirected) {
      this.redirected = true;
      this.target = redirectTarget(this.target, ref);
      this.retry(0);
      return;
    }
    // Taken over by a client with the same id: reconnecting would only take it back, and so on.
    if (this.options.reconnect && rc !== 0x8e) {
      this.scheduleReconnect(error);
    } else {
      this.finish(error);
    }
  }

  private scheduleReconnect(lastError?: Error): void {
    const range = this.options.reconnect;
    if (!range) return;
    this.attempt++;
    const delay = backoffDelay(this.attempt, range);
    this.emit('reconnect', this.attempt, delay, lastError);
    this.retry(delay);
  }

  private retry(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.establish().catch((err: unknown) => {
        if (this.closing || this.finished) return;
        const error = err instanceof Error ? err : new Error(String(err));
        if (this.options.reconnect && !isFatalRefusal(error, this.version)) this.scheduleReconnect(error);
        else this.finish(error);
      });
    }, delayMs);
  }

  /** The client is done: fail whatever still waits, emit 'close'. */
  private finish(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.keepalive.stop();
    this.flows.failAll(error);
    this.subs.failAll(error);
    this.ids.clear();
    this.emit('close', error instanceof ClientClosedError ? undefined : error);
  }
}

function pickTransport(o: ClientOptions): TransportOptions {
  const t: TransportOptions = { transport: o.transport, host: o.host, port: o.port };
  if (o.path !== undefined) t.path = o.path;
  if (o.wsHeaders !== undefined) t.wsHeaders = o.wsHeaders;
  if (o.tls !== undefined) t.tls = o.tls;
  return t;
}
