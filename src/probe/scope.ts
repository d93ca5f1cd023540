/**
 * What one check runs in: its time limit (an AbortSignal every wait hangs off), its topics under
 * the probe's prefix, fresh client ids, the connections it opens (closed when it ends, whatever
 * happened) and the cleanup it leaves behind (retained messages cleared, sessions ended).
 */
import { setMaxListeners } from 'node:events';
import { type ClientOptions, MqttClient } from '../client/index.js';
import type { ConnackPacket, ConnectPacket, ProtocolVersion, PublishPacket } from '../protocol/index.js';
import { Inbox, SourceClosed, WaitTimeout } from './inbox.js';
import { describeClose, RawConnection, type RawOptions } from './raw.js';
import { code, quoted } from './text.js';
import type { CheckStatus, Outcome, ProbeOptions } from './types.js';

/** What every check shares: where, as whom, what was announced, the bounds. */
export interface ProbeContext {
  /** Base client options: target, TLS, credentials, keepalive, -D connect properties. */
  client: ClientOptions;
  /** The version the checks run in. */
  version: ProtocolVersion;
  /** The CONNACK of the first connection (v5: the announced properties). */
  connack: ConnackPacket;
  prefix: string;
  timeoutMs: number;
  maxProbe: number;
  newClientId(): string;
  trace?: ProbeOptions['trace'];
  /** Work several checks share (one TLS handshake for every TLS line), by key. */
  shared: Map<string, Promise<unknown>>;
}

/** Thrown inside a check to end it with this outcome (from helpers deep in a flow). */
export class Verdict extends Error {
  constructor(readonly outcome: Outcome) {
    super(outcome.detail);
  }
}

/** Outcome builders: `pass('detail', { value: 3 })`. */
const outcome =
  (status: CheckStatus) =>
  (detail: string, extra: Partial<Outcome> = {}): Outcome => ({ status, detail, ...extra });
export const pass = outcome('pass');
export const fail = outcome('fail');
export const unsupported = outcome('unsupported');
export const skipped = outcome('skipped');
export const info = outcome('info');

export class CheckScope {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly closers: (() => void)[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];
  private readonly retainedTopics = new Set<string>();
  private connections = 0;
  private closed = false;

  constructor(
    readonly ctx: ProbeContext,
    readonly id: string,
  ) {
    this.signal = this.controller.signal;
    // Every wait, inbox and connection of the check listens to it: dozens in a binary search.
    setMaxListeners(0, this.signal);
  }

  get v5(): boolean {
    return this.ctx.version === 5;
  }

  /** Ends the check's time: every wait rejects, every connection closes. */
  abort(reason: Error): void {
    this.controller.abort(reason);
  }

  /** `${prefix}/${check id}/${parts...}`: topics no one else uses. */
  topic(...parts: string[]): string {
    return [this.ctx.prefix, this.id, ...parts].join('/');
  }

  /** A topic (or filter) for a detail line, quoted: the check's own topic (or the prefix) as `…`. */
  shown(topic: string): string {
    for (const base of [this.topic(), this.ctx.prefix]) {
      const i = topic.indexOf(base);
      if (i >= 0) return quoted(`${topic.slice(0, i)}…${topic.slice(i + base.length)}`);
    }
    return quoted(topic);
  }

  clientId(): string {
    return this.ctx.newClientId();
  }

  /** Client options for one more connection of this check (clean, no will, no reconnect). */
  options(extra: Partial<ClientOptions> = {}): ClientOptions {
    const base: ClientOptions = {
      ...this.ctx.client,
      version: this.ctx.version,
      clientId: this.clientId(),
      clean: true,
      reconnect: false,
      connectTimeoutMs: this.ctx.timeoutMs,
    };
    delete base.will;
    delete base.sessionExpiry;
    delete base.trace;
    const trace = this.traceFor(this.ctx.version);
    if (trace !== undefined) base.trace = trace;
    return { ...base, ...extra };
  }

  /** A connected MqttClient, destroyed when the check ends. */
  async client(extra: Partial<ClientOptions> = {}): Promise<MqttClient> {
    const pending = MqttClient.connect(this.options(extra));
    // Closed with the check, even when it connects after the check's time ran out.
    pending.then(
      (client) => this.closeWithCheck(() => client.destroy()),
      () => {},
    );
    return this.wait(pending, 'CONNACK');
  }

  /** Every message `client` receives from now on; waits end when its connection is lost. */
  messages(client: MqttClient): Inbox<PublishPacket> {
    const inbox = new Inbox<PublishPacket>(this.signal);
    client.on('message', (p) => inbox.push({ ...p, payload: Buffer.from(p.payload) }));
    client.on('close', (err) => inbox.close(new SourceClosed(err?.message ?? 'the client was closed')));
    client.on('offline', (err) => inbox.close(new SourceClosed(err.message)));
    return inbox;
  }

  /** An open raw connection (no CONNECT sent yet), destroyed when the check ends. */
  async raw(version: ProtocolVersion = this.ctx.version, options: RawOptions = {}): Promise<RawConnection> {
    const trace = this.traceFor(version);
    const pending = RawConnection.open(this.ctx.client, version, this.signal, {
      ...options,
      ...(trace !== undefined ? { trace } : {}),
    });
    pending.then(
      (conn) => this.closeWithCheck(() => conn.destroy()),
      () => {},
    );
    return this.wait(pending, 'the connection to open');
  }

  /** A CONNECT as the probe's base options make it, with `extra` on top. */
  connectPacket(version: ProtocolVersion, extra: Partial<ConnectPacket> = {}): ConnectPacket {
    const o = this.ctx.client;
    const packet: ConnectPacket = {
      type: 'CONNECT',
      protocolVersion: version,
      clean: true,
      keepalive: o.keepalive,
      clientId: version === 3 ? this.clientId().slice(0, 23) : this.clientId(),
    };
    if (o.username !== undefined) packet.username = o.username;
    if (o.password !== undefined) packet.password = o.password;
    if (version === 5 && o.connectProperties !== undefined) packet.properties = { ...o.connectProperties };
    return { ...packet, ...extra };
  }

  /**
   * A raw connection with a session: CONNECT (base options plus `extra`) and a CONNACK that
   * accepts it; anything else ends the check as failed.
   */
  async rawSession(
    extra: Partial<ConnectPacket> = {},
    options: RawOptions = {},
  ): Promise<{ conn: RawConnection; connack: ConnackPacket }> {
    const conn = await this.raw(this.ctx.version, options);
    const connack = await this.wait(conn.handshake(this.connectPacket(this.ctx.version, extra)), 'CONNACK');
    if (connack.reasonCode !== 0) {
      throw new Verdict({
        status: 'fail',
        detail: `the broker refused a connection: ${code(connack.reasonCode, 'CONNACK', this.ctx.version)}`,
      });
    }
    return { conn, connack };
  }

  /** `promise`, or a WaitTimeout when the check's time is up first. */
  wait<T>(promise: Promise<T>, what: string): Promise<T> {
    if (this.signal.aborted) return Promise.reject(new WaitTimeout(`timed out waiting for ${what}`));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new WaitTimeout(`timed out waiting for ${what}`));
      this.signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (v) => {
          this.signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (err: unknown) => {
          this.signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  /**
   * Waits `ms` on purpose (a will delay, an expiry interval running out): the thing measured is
   * time itself. Ends early when the check's time is up.
   */
  sleep(ms: number): Promise<void> {
    return this.wait(
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      }),
      `${ms} ms to pass`,
    );
  }

  /** `make()` once per probe for `key`; every check asking for the same key shares the result. */
  shared<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.ctx.shared.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = make();
      this.ctx.shared.set(key, p);
    }
    return p;
  }

  /** Why a raw connection closed, for a detail line. */
  describeClose = describeClose;

  /** Run after the check, whatever its outcome (bounded by the cleanup's own time limit). */
  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** This retained topic is cleared (empty retained message) after the check. */
  clearsRetained(topic: string): void {
    if (this.retainedTopics.size === 0) {
      this.onCleanup(async () => {
        const client = await MqttClient.connect(this.cleanupOptions());
        try {
          for (const t of this.retainedTopics) {
            await client.publish(t, Buffer.alloc(0), {
              qos: Math.min(1, this.maxQoS()) as 0 | 1,
              retain: true,
            });
          }
        } finally {
          await client.end();
        }
      });
    }
    this.retainedTopics.add(topic);
  }

  /** The session of `clientId` is ended after the check (clean start, session expiry 0). */
  endsSession(clientId: string): void {
    this.onCleanup(async () => {
      const client = await MqttClient.connect({ ...this.cleanupOptions(), clientId, clean: true });
      await client.end();
    });
  }

  /** The broker's Maximum QoS (2 when not announced). */
  maxQoS(): 0 | 1 | 2 {
    const m = this.ctx.connack.properties?.maximumQoS;
    return m === 0 || m === 1 ? m : 2;
  }

  /** Closes every connection the check opened (and, from now on, any that opens late). */
  closeAll(): void {
    this.closed = true;
    for (const close of this.closers.splice(0)) close();
  }

  private closeWithCheck(close: () => void): void {
    if (this.closed) close();
    else this.closers.push(close);
  }

  /** Runs the cleanups, each bounded by `timeoutMs`; the first failure's message, if any. */
  async cleanup(timeoutMs: number): Promise<string | undefined> {
    this.closeAll();
    let problem: string | undefined;
    for (const fn of this.cleanups.splice(0)) {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      });
      try {
        await Promise.race([fn(), limit]);
      } catch (err) {
        problem ??= err instanceof Error ? err.message : String(err);
      } finally {
        clearTimeout(timer);
      }
    }
    return problem;
  }

  private cleanupOptions(): ClientOptions {
    const o: ClientOptions = { ...this.ctx.client, version: this.ctx.version, clientId: this.clientId() };
    o.clean = true;
    o.reconnect = false;
    o.connectTimeoutMs = this.ctx.timeoutMs;
    delete o.will;
    delete o.sessionExpiry;
    delete o.trace;
    const trace = this.traceFor(this.ctx.version, 'cleanup');
    if (trace !== undefined) o.trace = trace;
    return o;
  }

  private traceFor(version: ProtocolVersion, suffix?: string): ClientOptions['trace'] {
    const trace = this.ctx.trace;
    if (trace === undefined) return undefined;
    const label = `${this.id}#${suffix ?? ++this.connections}`;
    return (direction, packet, raw) => trace(label, version, direction, packet, raw);
  }
}
