/**
 * One raw MQTT connection of the load generator, on mq's codec: CONNECT, SUBSCRIBE, PINGREQ and
 * DISCONNECT are encoded with encode(); incoming bytes are split by the codec's Framer. The hot
 * path stays raw: PUBLISH bytes come pre-encoded from the publisher (write()), a PUBLISH received
 * goes to the owner as its bytes (onPublish), acks come in as (type, packet id) and go out from
 * pre-encoded 4-byte templates, batched into one write per connection and event-loop turn.
 *
 * Plain TCP reads into one buffer per thread (socket `onread`), so a read allocates nothing; TLS
 * and WebSocket connections read through 'data' events. TCP and TLS are dialled here, to time the
 * TCP connect and the TLS handshake apart; WebSocket goes through the client's openTransport.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { type SaltedPasswords, ScramClient, ScramError } from '../auth/scram.js';
import { ConnectError, connackRefusal, explainConnectError } from '../client/errors.js';
import {
  describeTarget,
  errorContext,
  HIGH_WATER_MARK,
  openTransport,
  tlsSettings,
} from '../client/transport.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  decode,
  encode,
  Framer,
  formatReasonCode,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type QoS,
} from '../protocol/index.js';
import { nowMs } from './payload.js';
import type { BenchTarget } from './settings.js';

/** Every plain-TCP connection of a thread reads into this buffer (the framer copies what it keeps). */
const READ_BUFFER = Buffer.allocUnsafe(1 << 20);

export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;

/** Pre-encoded acks (4 bytes in every version: the v5 reason code Success may be left out). */
export function ackTemplate(
  type: 'PUBACK' | 'PUBREC' | 'PUBREL' | 'PUBCOMP',
  version: ProtocolVersion,
): Buffer {
  const t = encode({ type, packetId: 1 }, version);
  if (t.length !== 4) throw new Error(`${type} template is ${t.length} bytes, expected 4`);
  return t;
}

/** How long each step of a connection took, ms; tcp and tls are null where they do not apply. */
export interface ConnectTimes {
  tcpMs: number | null;
  tlsMs: number | null;
  connackMs: number;
  totalMs: number;
}

/** A connection that could not be opened: `reason` is the key it is counted under, `message` says why. */
export class ConnectFailure extends Error {
  override name = 'ConnectFailure';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a connection tells its owner. The hot ones get the time of the read that brought them. */
export interface ConnectionEvents {
  /** A PUBLISH: `buf[start, end)`, fixed header `headerLength` bytes; `buf` is valid during the call only. */
  onPublish(
    conn: BenchConnection,
    buf: Buffer,
    start: number,
    headerLength: number,
    end: number,
    now: number,
  ): void;
  onAck(conn: BenchConnection, type: number, packetId: number, reasonCode: number, now: number): void;
  /** After a read was framed (acks queued during it are flushed by the owner, once per turn). */
  onRead(conn: BenchConnection): void;
  onDrain(conn: BenchConnection): void;
  /** The connection ended without being asked to; `reason` is the key it is counted under. */
  onLost(conn: BenchConnection, reason: string): void;
}

export interface ConnectParams {
  target: BenchTarget;
  version: ProtocolVersion;
  clean: boolean;
  keepalive: number;
  sessionExpiry: number;
  timeoutMs: number;
  /** With target.authMethod: the run's SaltedPassword cache (PBKDF2 once per salt, not per connection). */
  salted?: SaltedPasswords | undefined;
}

/** Packet types a waiter takes, as bits (1 << type). */
const CONNACK_BIT = 1 << 2;
const SUBACK_BIT = 1 << 9;
const AUTH_BIT = 1 << 15;

type Waiter = { types: number; resolve: (raw: Buffer) => void; reject: (err: Error) => void };

export class BenchConnection {
  socket: Duplex | undefined;
  /** socket.write() asked to wait for 'drain'. */
  blocked = false;
  /** CONNACK received and the socket not closed. */
  open = false;
  /** end() or destroy() was called: a close is not a loss. */
  private ending = false;
  /** Something was written since the keepalive check last looked. */
  wrote = false;
  lastWriteMs = 0;
  /** The broker's Receive Maximum (v5 CONNACK), else 65535. */
  receiveMaximum = 65_535;
  /** The broker's Maximum Packet Size (v5 CONNACK), else unlimited. */
  maximumPacketSize = Number.POSITIVE_INFINITY;
  /** Owner's slot (index in its list). */
  slot = -1;
  /** Queued in the owner's list of connections with acks to flush this turn. */
  dirty = false;
  private readonly framer: Framer;
  private acks = Buffer.allocUnsafe(1024);
  private ackLength = 0;
  private waiter: Waiter | undefined;
  private lostReason: string | undefined;
  private packetId = 0;
  /** Time of the read being framed. */
  private readNow = 0;

  constructor(
    readonly clientId: string,
    readonly version: ProtocolVersion,
    private readonly events: ConnectionEvents,
  ) {
    this.framer = new Framer(version);
  }

  /** Dials, sends CONNECT and resolves on a successful CONNACK; throws ConnectFailure. */
  async connect(p: ConnectParams): Promise<ConnectTimes> {
    const t0 = nowMs();
    let tcpMs: number | null = null;
    let tlsMs: number | null = null;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), p.timeoutMs);
    try {
      const dialed = await this.dial(p.target, abort.signal);
      tcpMs = dialed.tcpMs;
      tlsMs = dialed.tlsMs;
      const t1 = nowMs();
      const connack = await this.handshake(p, abort.signal);
      const t2 = nowMs();
      if (connack.reasonCode !== 0) {
        const why = connackRefusal(
          connack.reasonCode,
          p.version,
          describeTarget(p.target),
          connack.properties?.reasonString,
        );
        this.destroy();
        throw new ConnectFailure(
          `CONNACK ${formatReasonCode(connack.reasonCode, 'CONNACK', p.version)}`,
          why.message,
        );
      }
      this.receiveMaximum = connack.properties?.receiveMaximum ?? 65_535;
      this.maximumPacketSize = connack.properties?.maximumPacketSize ?? Number.POSITIVE_INFINITY;
      this.open = true;
      return { tcpMs, tlsMs, connackMs: t2 - t1, totalMs: t2 - t0 };
    } catch (err) {
      this.destroy();
      throw this.failure(err, p, abort.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(err: unknown, p: ConnectParams, timedOut: boolean): ConnectFailure {
    if (err instanceof ConnectFailure) return err;
    if (timedOut) {
      return new ConnectFailure(
        'connect timeout',
        `could not connect to ${describeTarget(p.target)}: no CONNACK within ${p.timeoutMs} ms`,
      );
    }
    const explained = err instanceof ConnectError ? err : explainConnectError(err, errorContext(p.target));
    return new ConnectFailure(explained.code ?? explained.message, explained.message);
  }

  /** Opens the byte stream; times TCP and TLS apart where it can. */
  private async dial(
    t: BenchTarget,
    signal: AbortSignal,
  ): Promise<{ tcpMs: number | null; tlsMs: number | null }> {
    if (t.transport === 'ws' || t.transport === 'wss') {
      this.attach(await openTransport(t, signal), false);
      return { tcpMs: null, tlsMs: null };
    }
    const t0 = nowMs();
    const plain = t.transport === 'mqtt' || t.transport === 'unix';
    const where =
      t.transport === 'unix'
        ? { path: t.path ?? '' }
        : { host: t.host, port: t.port, noDelay: true, localAddress: t.localAddress };
    const socket = net.connect({
      ...where,
      // (@types/node 20 lacks the highWaterMark socket option Node 20 accepts.)
      ...({ highWaterMark: HIGH_WATER_MARK } as object),
      ...(plain ? { onread: { buffer: READ_BUFFER, callback: this.onRead } } : {}),
    });
    if (plain) this.attach(socket, true);
    await settle(socket, 'connect', signal);
    const tcpMs = nowMs() - t0;
    if (plain) return { tcpMs, tlsMs: null };
    const tls = await import('node:tls');
    const t1 = nowMs();
    // The TLS socket reports errors of the TCP one it wraps; this keeps them from being unhandled.
    socket.on('error', () => {});
    const secure = tls.connect({ socket, host: t.host, ...tlsSettings(t) });
    this.attach(secure, false);
    await settle(secure, 'secureConnect', signal);
    return { tcpMs, tlsMs: nowMs() - t1 };
  }

  /** Wires the stream's events; `onread` streams deliver their bytes through onRead already. */
  private attach(socket: Duplex, onread: boolean): void {
    this.socket = socket;
    if (!onread) socket.on('data', (chunk: Buffer) => this.onRead(chunk.length, chunk));
    socket.on('drain', () => {
      this.blocked = false;
      this.events.onDrain(this);
    });
    socket.on('error', (err: Error & { code?: string }) => {
      this.lostReason ??= err.code ? `connection lost: ${err.code}` : `connection lost: ${err.message}`;
    });
    socket.on('close', () => this.closed());
  }

  private closed(): void {
    const wasOpen = this.open;
    this.open = false;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.reject(new Error(this.lostReason ?? 'the broker closed the connection'));
    }
    if (wasOpen && !this.ending)
      this.events.onLost(this, this.lostReason ?? 'connection lost: closed by the broker');
  }

  private readonly onRead = (n: number, buf: Buffer): boolean => {
    this.readNow = nowMs();
    try {
      // The read's bytes are buf[0, n): no view of them (a read allocates nothing).
      this.framer.pushRaw(buf, this.onFrame, n);
    } catch (err) {
      // A malformed packet from the broker: count it, drop the connection.
      this.lostReason = `malformed packet from the broker: ${err instanceof Error ? err.message : String(err)}`;
      this.socket?.destroy();
      return false;
    }
    this.events.onRead(this);
    return true;
  };

  /** One packet, `buf[start, end)`: no Buffer of its own on the hot path (PUBLISH and acks). */
  private readonly onFrame = (buf: Buffer, start: number, hl: number, end: number): boolean => {
    const type = buf[start]! >> 4;
    if (type === PUBLISH) {
      this.events.onPublish(this, buf, start, hl, end, this.readNow);
    } else if (type >= PUBACK && type <= PUBCOMP) {
      const at = start + hl;
      const id = (buf[at]! << 8) | buf[at + 1]!;
      this.events.onAck(this, type, id, end - at > 2 ? buf[at + 2]! : 0, this.readNow);
    } else {
      this.control(type, buf.subarray(start, end));
    }
    return true;
  };

  /** CONNACK, SUBACK, PINGRESP, DISCONNECT: rare, so decoded in full. */
  private control(type: number, raw: Buffer): void {
    const w = this.waiter;
    if (w !== undefined && (w.types & (1 << type)) !== 0) {
      this.waiter = undefined;
      w.resolve(Buffer.from(raw));
      return;
    }
    if (type === 14) {
      const d = decode(raw, this.version);
      const code = d.type === 'DISCONNECT' ? (d.reasonCode ?? 0) : 0;
      this.lostReason = `DISCONNECT ${formatReasonCode(code, 'DISCONNECT', this.version)}`;
    }
  }

  /** The next packet of one of `types` (bits: CONNACK_BIT...), as its bytes. */
  private wait(types: number, signal?: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Error('aborted'));
      const onAbort = () => {
        this.waiter = undefined;
        reject(new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiter = {
        types,
        resolve: (raw) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(raw);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
    });
  }

  private async handshake(p: ConnectParams, signal: AbortSignal): Promise<ConnackPacket> {
    const t = p.target;
    if (t.authMethod !== undefined && p.version === 5) {
      const password = Buffer.from(t.password ?? '').toString('utf8');
      const scram = new ScramClient(t.authMethod, t.username ?? '', password, { salted: p.salted });
      try {
        return await this.scramHandshake(p, scram, signal);
      } catch (err) {
        if (!(err instanceof ScramError)) throw err;
        throw new ConnectFailure(`${scram.method} failed`, `${scram.method}: ${err.message}`);
      }
    }
    const reply = this.wait(CONNACK_BIT, signal);
    this.socket!.write(encode(connectPacket(this.clientId, p, undefined), p.version));
    return asConnack(decode(await reply, p.version));
  }

  /**
   * v5 enhanced authentication (SCRAM, RFC 5802/7677): the method and client-first message in the
   * CONNECT, the server-first (AUTH 0x18) answered with the client-final (AUTH 0x18), and a
   * successful CONNACK only once its server signature proves the broker knows the password.
   */
  private async scramHandshake(
    p: ConnectParams,
    scram: ScramClient,
    signal: AbortSignal,
  ): Promise<ConnackPacket> {
    const authenticationMethod = scram.method;
    let reply = this.wait(CONNACK_BIT | AUTH_BIT, signal);
    const first = Buffer.from(scram.clientFirst());
    this.socket!.write(
      encode(connectPacket(this.clientId, p, { authenticationMethod, authenticationData: first }), 5),
    );
    let packet = decode(await reply, 5);
    if (packet.type === 'AUTH') {
      if (packet.reasonCode !== 0x18 || packet.properties?.authenticationMethod !== authenticationMethod)
        throw new ScramError(
          `the broker sent AUTH ${formatReasonCode(packet.reasonCode ?? 0, 'AUTH', 5)} out of turn`,
        );
      const final = await scram.clientFinal(packet.properties.authenticationData?.toString('utf8') ?? '');
      reply = this.wait(CONNACK_BIT, signal);
      const authenticationData = Buffer.from(final);
      this.socket!.write(
        encode(
          { type: 'AUTH', reasonCode: 0x18, properties: { authenticationMethod, authenticationData } },
          5,
        ),
      );
      packet = decode(await reply, 5);
    }
    const connack = asConnack(packet);
    if (connack.reasonCode !== 0) return connack;
    const props = connack.properties;
    if (props?.authenticationMethod !== authenticationMethod || props.authenticationData === undefined)
      throw new ScramError('the broker accepted without proving it knows the password (no server signature)');
    scram.verifyServerFinal(props.authenticationData.toString('utf8'));
    return connack;
  }

  /** Subscribes to one filter; resolves with the granted QoS; throws with the refusal reason. */
  async subscribe(filter: string, qos: QoS, timeoutMs: number): Promise<number> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const reply = this.wait(SUBACK_BIT, abort.signal);
      this.packetId = (this.packetId % 65_535) + 1;
      this.socket!.write(
        encode(
          { type: 'SUBSCRIBE', packetId: this.packetId, subscriptions: [{ topicFilter: filter, qos }] },
          this.version,
        ),
      );
      const suback = decode(await reply, this.version);
      const code = suback.type === 'SUBACK' ? (suback.reasonCodes[0] ?? 0x80) : 0x80;
      if (code >= 0x80) {
        throw new ConnectFailure(
          `SUBACK ${formatReasonCode(code, 'SUBACK', this.version)}`,
          `the broker refused the subscription to '${filter}': ${formatReasonCode(code, 'SUBACK', this.version)}`,
        );
      }
      return code;
    } catch (err) {
      if (err instanceof ConnectFailure) throw err;
      const why = abort.signal.aborted ? `no SUBACK within ${timeoutMs} ms` : String((err as Error).message);
      throw new ConnectFailure(
        abort.signal.aborted ? 'subscribe timeout' : 'subscribe failed',
        `subscribing to '${filter}': ${why}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes bytes; false when the socket asks to wait for 'drain' (or is closed). */
  write(buf: Buffer): boolean {
    if (!this.open) return false;
    this.wrote = true;
    const ok = this.socket!.write(buf);
    if (!ok) this.blocked = true;
    return ok;
  }

  /** Acks are queued, waiting for flushAcks(). */
  get hasAcks(): boolean {
    return this.ackLength > 0;
  }

  /** True when nothing written is still held by the stream (a buffer written may be reused). */
  get flushed(): boolean {
    return this.socket === undefined || this.socket.writableLength === 0;
  }

  /** Queues a 4-byte ack (a template from ackTemplate()) for packet `id`; see flushAcks(). */
  queueAck(template: Buffer, id: number): void {
    if (this.ackLength + 4 > this.acks.length) {
      const grown = Buffer.allocUnsafe(this.acks.length * 2);
      this.acks.copy(grown, 0, 0, this.ackLength);
      this.acks = grown;
    }
    const a = this.acks;
    const at = this.ackLength;
    a[at] = template[0]!;
    a[at + 1] = 2;
    a[at + 2] = id >> 8;
    a[at + 3] = id & 0xff;
    this.ackLength = at + 4;
  }

  /** Writes every queued ack in one write. */
  flushAcks(): void {
    if (this.ackLength === 0) return;
    const out = Buffer.from(this.acks.subarray(0, this.ackLength));
    this.ackLength = 0;
    this.write(out);
  }

  ping(): void {
    this.write(PINGREQ);
  }

  /** DISCONNECT and close; resolves when closed (destroyed after timeoutMs). */
  end(timeoutMs: number): Promise<void> {
    this.ending = true;
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        socket.destroy();
        resolve();
      }, timeoutMs);
      socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.open) {
        this.flushAcks();
        socket.end(this.version === 5 ? DISCONNECT_V5 : DISCONNECT);
      } else socket.destroy();
      this.open = false;
    });
  }

  destroy(): void {
    this.ending = true;
    this.open = false;
    this.socket?.destroy();
  }
}

/** The CONNECT of a connection; `auth`: v5 Authentication Method and Data (no password sent then). */
function connectPacket(clientId: string, p: ConnectParams, auth: Properties | undefined): ConnectPacket {
  const t = p.target;
  const properties: Properties = { ...auth };
  if (p.version === 5 && p.sessionExpiry > 0) properties.sessionExpiryInterval = p.sessionExpiry;
  return {
    type: 'CONNECT',
    protocolVersion: p.version,
    clean: p.clean,
    keepalive: p.keepalive,
    clientId,
    ...(t.username !== undefined ? { username: t.username } : {}),
    ...(t.password !== undefined && auth === undefined ? { password: Buffer.from(t.password) } : {}),
    ...(p.version === 5 && Object.keys(properties).length > 0 ? { properties } : {}),
  };
}

function asConnack(packet: Packet): ConnackPacket {
  if (packet.type !== 'CONNACK') throw new Error(`expected CONNACK, got ${packet.type}`);
  return packet;
}

const PINGREQ = encode({ type: 'PINGREQ' }, 4);
const DISCONNECT = encode({ type: 'DISCONNECT' }, 4);
const DISCONNECT_V5 = encode({ type: 'DISCONNECT', reasonCode: 0 }, 5);

/** Resolves on `event`, rejects on 'error', 'close' or abort. */
function settle(socket: Duplex, event: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      socket.off(event, ok);
      socket.off('error', fail);
      socket.off('close', closed);
      signal.removeEventListener('abort', aborted);
      if (err === undefined) resolve();
      else reject(err);
    };
    const ok = () => done();
    const fail = (err: Error) => done(err);
    const closed = () => done(new Error('the connection closed while opening'));
    const aborted = () => done(new Error('aborted'));
    if (signal.aborted) return aborted();
    socket.once(event, ok);
    socket.once('error', fail);
    socket.once('close', closed);
    signal.addEventListener('abort', aborted, { once: true });
  });
}
