/**
 * One client connection: frames and decodes its packets and hands them to the broker's handlers,
 * and batches everything it sends into one write per tick. It sees the broker only through
 * ConnectionContext.
 */
import { escapeForTerminal } from '../cli/escape.js';
import {
  type DecodeOptions,
  decode,
  encodeInto,
  Framer,
  isValidReasonCode,
  MalformedPacketError,
  type Packet,
  PacketTooLargeError,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  packetSize,
  type QoS,
  ReasonCode,
  type Will,
} from '../protocol/index.js';
import {
  publishFirstByte,
  reframedPublishLength,
  writeReframedPublish,
} from '../protocol/packets/publish.js';
import type { AuthJob } from './auth.js';
import type { Congestion } from './backpressure.js';
import type { AuthExchange } from './enhanced-auth.js';
import type { Message } from './message.js';
import type { BrokerStats } from './options.js';
import type { Session } from './session.js';
import type { Transport } from './transport.js';

/**
 * What a Connection needs from the broker, and all it may reach: its limits, the counters it
 * counts in, logging and tracing, the clock, the per-tick flush, and the handlers its packets and
 * its end go to. (BrokerCore implements it.)
 */
export interface ConnectionContext {
  /** Largest packet accepted from a client (--max-packet-size); undefined: the wire format's limit. */
  readonly maxPacketSize: number | undefined;
  /** Largest packet accepted until a CONNECT is accepted (--max-connect-size). */
  readonly maxConnectSize: number;
  /** What decoding a client's packets checks: its user properties and SUBSCRIBE filters. */
  readonly decodeOptions: DecodeOptions;
  /** Most user properties in one packet (--max-user-properties). */
  readonly maxUserProperties: number;
  /** Most topic filters in one SUBSCRIBE or UNSUBSCRIBE (--max-subscriptions). */
  readonly maxSubscriptions: number;
  /** --delay fault injection: milliseconds every write waits (0: none). */
  readonly delayMs: number;
  /** The broker's live counters: bytes and packets in and out, PUBLISHes sent. */
  readonly counters: BrokerStats;
  /** --trace or --record is on: traceIn and traceOut want every packet. */
  readonly tracing: boolean;
  log(line: string): void;
  traceIn(conn: Connection, packet: Packet, raw: Buffer): void;
  traceOut(conn: Connection, bytes: Buffer): void;
  /** --drop-every: true when this outgoing packet is to be lost. */
  faultDrop(): boolean;
  /** The broker's clock (ms since the epoch). */
  now(): number;
  /** The connection whose bytes are being handled (set around each read; backpressure pauses it). */
  reader: Connection | undefined;
  /** A congested connection wrote out or closed (backpressure: the clients it held may go on). */
  drained(conn: Connection): void;
  /** `conn` has output: it is flushed at the end of the tick. */
  scheduleFlush(conn: Connection): void;
  /** Makes the --persist records durable that acknowledgements about to go out acknowledge. */
  syncPersist(): void;
  /** A packet arrived (`raw`: its bytes): the packet handlers. */
  handlePacket(conn: Connection, packet: Packet, raw: Buffer): void;
  /** The connection left the Connected state (closed by either side): session bookkeeping, will. */
  connectionEnded(conn: Connection): void;
  /** The transport closed: the broker forgets the connection. */
  connectionClosed(conn: Connection): void;
}

/**
 * The listener a connection came in on; 'bridge' is the in-process link of a --bridge
 * (bridge/link.ts), trusted like Mosquitto's bridges: no admission checks, no ACL.
 */
export type ListenerKind = 'tcp' | 'ws' | 'tls' | 'wss' | 'bridge';

export const ConnState = {
  AwaitingConnect: 0,
  Connected: 1,
  Closing: 2,
  Closed: 3,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

/** The largest packet the MQTT wire format can carry (remaining length 268,435,455 + 5 header bytes). */
const WIRE_MAX = 268_435_460;
/** Bytes held while a CONNECT's password is checked; beyond them the connection stops reading. */
const HELD_MAX = 64 * 1024;

/** A packet that arrived while the CONNECT's password was checked: its bytes (a copy). */
interface HeldFrame {
  raw: Buffer;
  headerLength: number;
}

/** A CONNECT's password check in progress, and what the client sent meanwhile. */
interface AuthWait {
  job: AuthJob;
  /** In order. */
  held: HeldFrame[];
  bytes: number;
  /** Not read from: more than HELD_MAX came. */
  paused: boolean;
}
const FIRST_BUFFER = 128;
const MAX_HINT = 1 << 20;

export class Connection {
  readonly ctx: ConnectionContext;
  readonly transport: Transport;
  /** Largest packet accepted (--max-packet-size). */
  readonly maxIn: number;
  /**
   * Cuts the byte stream into packets; checks the size before buffering a body: --max-connect-size
   * until a CONNECT is accepted, then --max-packet-size.
   */
  private readonly framer: Framer;
  readonly listener: ListenerKind;
  state: ConnState = ConnState.AwaitingConnect;
  version: ProtocolVersion = 4;
  /** '' until CONNECT names it. */
  clientId = '';
  session: Session | undefined = undefined;
  username: string | undefined = undefined;
  will: Will | undefined = undefined;
  /** The session ended gracefully (DISCONNECT 0x00): no will. */
  graceful = false;
  keepaliveMs = 0;
  /** When the client was last heard from (the sweep's clock); until CONNECT, when it connected. */
  lastRx: number;
  rxSeen = false;
  disconnectAt = 0;
  /** Another connection took the session over: no session bookkeeping when this one closes. */
  takenOver = false;
  /** Protocol level of a CONNECT that failed to decode (0 = none). */
  private connectLevel = 0;
  /** Set when the connection limit was reached as it was accepted: its CONNECT is refused. */
  overLimit = false;
  /** v5 enhanced authentication: the method the connection authenticated with (for re-authentication). */
  authMethod: string | undefined = undefined;
  /** An enhanced authentication exchange in progress (of the CONNECT while AwaitingConnect). */
  authExchange: AuthExchange | undefined = undefined;
  /** The CONNECT's password check, while it runs (or waits for its turn). */
  private authWait: AuthWait | undefined = undefined;
  /** Backpressure: subscribers this connection's publishes wait for (not read from while > 0). */
  blockers = 0;
  /** The last of them (backpressure.ts). */
  blockedOn: Connection | undefined = undefined;
  /** Backpressure: set while more than HIGH_WATER bytes wait for this client. */
  congestion: Congestion | undefined = undefined;

  /** The client's limits (v5 CONNECT properties). */
  inflightLimit = 65_535;
  maxOut = WIRE_MAX;
  aliasOutMax = 0;
  aliasesIn: Map<number, string> | undefined = undefined;
  aliasesOut: Map<string, number> | undefined = undefined;

  private out: Buffer | undefined = undefined;
  private outLen = 0;
  private outHint = FIRST_BUFFER;
  dirty = false;

  constructor(ctx: ConnectionContext, transport: Transport, listener: ListenerKind, now: number) {
    this.ctx = ctx;
    this.transport = transport;
    this.listener = listener;
    this.lastRx = now;
    this.maxIn = ctx.maxPacketSize ?? WIRE_MAX;
    this.framer = new Framer(4, { maxPacketSize: Math.min(this.maxIn, ctx.maxConnectSize) });
  }

  /** The client id (escaped for a terminal), or the remote address before CONNECT: log and trace lines. */
  get label(): string {
    if (this.clientId !== '') return escapeForTerminal(this.clientId);
    return `${this.transport.remoteAddress ?? '?'}:${this.transport.remotePort ?? '?'}`;
  }

  // ---- input ----------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.state >= ConnState.Closing) return;
    const ctx = this.ctx;
    ctx.counters.bytesReceived += chunk.length;
    this.rxSeen = true;
    ctx.reader = this;
    try {
      this.framer.pushFrames(chunk, this.onFrame, this);
    } catch (err) {
      this.onMalformed(err);
    }
    ctx.reader = undefined;
  }

  /** Backpressure: stop reading (a subscriber it feeds is backed up); TCP pushes back on the client. */
  pauseReading(): void {
    if (this.authWait?.paused !== true) this.transport.pause?.();
  }

  /** Backpressure: read again. */
  resumeReading(): void {
    if (this.authWait?.paused !== true && this.state < ConnState.Closing) this.transport.resume?.();
  }

  /** The transport took everything it held ('drain'). */
  onDrain(): void {
    if (this.congestion !== undefined) this.ctx.drained(this);
  }

  /**
   * Decodes one framed packet. SUBSCRIBE/UNSUBSCRIBE are decoded in collect mode, so an invalid
   * filter gets its SUBACK/UNSUBACK failure code instead of closing the connection.
   */
  // (A method, not a closure per connection: memory per idle connection is a target.)
  private onFrame(raw: Buffer, headerLength: number): boolean {
    if (this.state >= ConnState.Closing) return false;
    if (this.authWait !== undefined) return this.hold(this.authWait, raw, headerLength);
    const decodeOptions = this.ctx.decodeOptions;
    const type = raw[0]! >> 4;
    let packet: Packet;
    if ((type === 8 || type === 10) && this.state === ConnState.Connected) {
      const errors: MalformedPacketError[] = [];
      packet = decode(raw, this.version, { ...decodeOptions, errors });
      // Invalid filters (0x8F) are answered per filter; anything else is fatal.
      const fatal = errors.find((e) => e.reasonCode !== ReasonCode.TopicFilterInvalid);
      if (fatal !== undefined) throw fatal;
    } else if (type === 1 && this.state === ConnState.AwaitingConnect) {
      try {
        packet = decode(raw, this.version, decodeOptions);
      } catch (err) {
        // Protocol level byte after the 'MQTT' name: a v5 client can be told why in a CONNACK.
        this.connectLevel = raw[headerLength + 6] ?? 0;
        throw err;
      }
    } else packet = decode(raw, this.version, decodeOptions);
    this.onPacket(packet, raw);
    // A CONNECT accepted: from here on, packets up to --max-packet-size.
    if (type === 1 && this.state === ConnState.Connected) {
      this.framer.maxPacketSize = this.maxIn;
      this.transport.connectAccepted?.();
    }
    return true;
  }

  /** A frame that came during the password check: kept (a copy) until it is done. */
  private hold(w: AuthWait, raw: Buffer, headerLength: number): boolean {
    w.held.push({ raw: Buffer.from(raw), headerLength });
    w.bytes += raw.length;
    if (w.bytes > HELD_MAX && !w.paused && this.transport.pause !== undefined) {
      // Bounded: a client that keeps sending is not read from (TCP pushes back) until then.
      w.paused = true;
      this.transport.pause();
    }
    return true;
  }

  /** The CONNECT waits for its password check (`job`): frames are held until afterAuth(). */
  awaitAuth(job: AuthJob): void {
    this.authWait = { job, held: [], bytes: 0, paused: false };
  }

  /**
   * The password check is done: `then` answers the CONNECT, then the frames held meanwhile are
   * handled, in order. Nothing happens when the connection closed in between. Runs outside any
   * read, so it catches what a read would.
   */
  afterAuth(then: () => void): void {
    const w = this.authWait;
    const held = w?.held ?? [];
    this.authWait = undefined;
    if (this.state !== ConnState.AwaitingConnect) return;
    try {
      then();
      for (let i = 0; i < held.length && this.state < ConnState.Closing; i++)
        this.onFrame(held[i]!.raw, held[i]!.headerLength);
    } catch (err) {
      this.onMalformed(err);
    }
    if (w?.paused === true && this.blockers === 0) this.transport.resume?.();
  }

  /** A password check still waiting for its turn is dropped with the connection. */
  private cancelAuth(): void {
    this.authWait?.job.cancel();
    this.authWait = undefined;
  }

  private onMalformed(err: unknown): void {
    const e = err instanceof MalformedPacketError ? err : undefined;
    const message = err instanceof Error ? err.message : String(err);
    if (e === undefined) {
      this.ctx.log(`[${this.label}] internal error handling a packet: ${message}`);
      if (process.env.MQ_DEBUG === '1' && err instanceof Error)
        for (const line of String(err.stack).split('\n')) this.ctx.log(line);
    } else if (e instanceof PacketTooLargeError && this.state === ConnState.AwaitingConnect) {
      this.ctx.log(
        `[${this.label}] a first packet of ${e.size} bytes, over the ${e.maximum} accepted before CONNECT (--max-connect-size): closing`,
      );
    } else this.ctx.log(`[${this.label}] malformed packet: ${message}`);
    const code = e?.reasonCode ?? ReasonCode.UnspecifiedError;
    if (this.state === ConnState.AwaitingConnect) {
      // [MQTT-3.1.2-2] an unsupported protocol level gets return code 1 (3.1.1 form), then close.
      if (code === ReasonCode.UnsupportedProtocolVersion) {
        this.writeBytes(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      } else if (
        (this.connectLevel === 5 || this.authExchange !== undefined) &&
        isValidReasonCode(code, 'CONNACK')
      ) {
        // A malformed v5 CONNECT (or AUTH before the CONNACK) may be answered with a CONNACK carrying the reason (3.1.4).
        this.writeBytes(Buffer.from([0x20, 0x03, 0x00, code, 0x00]));
      }
      this.closeNow();
      return;
    }
    this.disconnect(code, e?.message);
  }

  /** Called for each framed packet: counted, traced, handed to the handlers. */
  onPacket(packet: Packet, raw: Buffer): void {
    if (this.state >= ConnState.Closing) return;
    const ctx = this.ctx;
    ctx.counters.packetsReceived++;
    if (ctx.tracing) ctx.traceIn(this, packet, raw);
    ctx.handlePacket(this, packet, raw);
  }

  /** Logs a protocol violation and ends the connection (v5: DISCONNECT 0x82). */
  protocolError(detail: string): void {
    this.ctx.log(`[${this.label}] protocol error: ${detail}`);
    this.disconnect(ReasonCode.ProtocolError, detail);
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Ends the connection from the broker side: v5 clients get DISCONNECT `reasonCode` first. */
  disconnect(reasonCode: number, reason?: string): void {
    if (this.state >= ConnState.Closing) return;
    if (this.state === ConnState.Connected && this.version === 5) {
      const p: Packet = { type: 'DISCONNECT', reasonCode };
      if (reason !== undefined) {
        p.properties = { reasonString: reason.slice(0, 200) };
        // Never more than the client's Maximum Packet Size [MQTT-3.1.2-24]: the reason can go.
        if (packetSize(p, 5) > this.maxOut) delete p.properties;
      }
      this.writePacket(p, true);
    }
    this.closeNow();
  }

  /** Flushes what is queued and closes; the transport's close event does the session bookkeeping. */
  closeNow(): void {
    if (this.state >= ConnState.Closing) return;
    const wasConnected = this.state === ConnState.Connected;
    this.state = ConnState.Closing;
    this.cancelAuth();
    // Acks queued for this client go out now, so what they acknowledge must be on disk first.
    this.ctx.syncPersist();
    this.flush();
    // Under --delay the last packets are still on their way: end after them.
    const delay = this.ctx.delayMs;
    if (delay > 0) setTimeout(endTransport, delay, this.transport);
    else this.transport.end();
    // A peer that never closes its side must not hold the socket forever.
    setTimeout(destroyTransport, 2000 + delay, this.transport).unref();
    if (wasConnected) this.ctx.connectionEnded(this);
  }

  /**
   * Ends the connection at once, dropping what is queued for it: after an internal error (what is
   * queued may be half a packet) or when what it would acknowledge could not be made durable.
   */
  abort(): void {
    if (this.state === ConnState.Closed) return;
    const wasConnected = this.state === ConnState.Connected;
    this.state = ConnState.Closing;
    this.out = undefined;
    this.outLen = 0;
    this.transport.destroy();
    if (wasConnected) this.ctx.connectionEnded(this);
  }

  /** The transport closed (either side). */
  onClose(): void {
    const wasConnected = this.state === ConnState.Connected;
    this.state = ConnState.Closed;
    this.cancelAuth();
    this.out = undefined;
    this.outLen = 0;
    if (this.congestion !== undefined) this.ctx.drained(this);
    if (wasConnected) this.ctx.connectionEnded(this);
    this.ctx.connectionClosed(this);
  }

  // ---- output ---------------------------------------------------------------------------------

  /** Bytes on their way to the client: queued this tick, and still in the transport's buffer. */
  get backlog(): number {
    return this.outLen + this.transport.writableLength;
  }

  /** Room for `n` more bytes of output (the hot path: the buffer of this tick has it). */
  private reserve(n: number): Buffer {
    const out = this.out;
    if (out !== undefined && this.outLen + n <= out.length) return out;
    return this.allocOut(n);
  }

  /** The tick's first output buffer, or a larger one. */
  private allocOut(n: number): Buffer {
    const out = this.out;
    if (out === undefined) {
      // Sized like the last flush (busy connections skip the doubling); small ones come from
      // Node's shared pool, so an idle connection's last write does not pin a buffer of its own.
      const buf = Buffer.allocUnsafe(Math.max(n, this.outHint));
      this.out = buf;
      return buf;
    }
    let size = out.length * 2;
    while (size < this.outLen + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    out.copy(grown, 0, 0, this.outLen);
    this.out = grown;
    return grown;
  }

  private queued(start: number): void {
    const ctx = this.ctx;
    ctx.counters.packetsSent++;
    if (ctx.tracing) ctx.traceOut(this, this.out!.subarray(start, this.outLen));
    if (!this.dirty) ctx.scheduleFlush(this);
  }

  /**
   * Sends a packet through the codec. `force` skips the drop-every fault (CONNACK, DISCONNECT). A
   * packet larger than the client's Maximum Packet Size is never sent [MQTT-3.1.2-24]: a SUBACK or
   * UNSUBACK the client would wait for in vain closes the connection instead.
   */
  writePacket(packet: Packet, force = false): void {
    if (this.state === ConnState.Closed) return;
    if (!force && this.ctx.faultDrop()) return;
    const size = packetSize(packet, this.version);
    if (size > this.maxOut) {
      if (packet.type === 'DISCONNECT') return;
      this.ctx.log(
        `[${this.label}] ${packet.type} of ${size} bytes exceeds the client's Maximum Packet Size ${this.maxOut}: closing [MQTT-3.1.2-24]`,
      );
      this.closeNow();
      return;
    }
    const buf = this.reserve(size);
    const start = this.outLen;
    this.outLen += encodeInto(packet, this.version, buf, start);
    this.queued(start);
  }

  /** Bytes as they are (used before the version is known). */
  writeBytes(bytes: Buffer): void {
    const buf = this.reserve(bytes.length);
    bytes.copy(buf, this.outLen);
    this.outLen += bytes.length;
    this.ctx.counters.packetsSent++;
    if (!this.dirty) this.ctx.scheduleFlush(this);
  }

  /** PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70), hand-encoded: they are the QoS hot path. */
  writeAck(first: number, packetId: number, reasonCode: number): void {
    if (this.state === ConnState.Closed) return;
    if (this.ctx.faultDrop()) return;
    const withReason = reasonCode !== 0 && this.version === 5;
    const n = withReason ? 5 : 4;
    const buf = this.reserve(n);
    const o = this.outLen;
    buf[o] = first;
    buf[o + 1] = n - 2;
    buf[o + 2] = packetId >> 8;
    buf[o + 3] = packetId & 0xff;
    if (withReason) buf[o + 4] = reasonCode;
    this.outLen = o + n;
    this.queued(o);
  }

  /**
   * Writes `msg` as a PUBLISH for this client. Re-frames the bytes it arrived in when only the
   * flags, packet id or properties section change; encodes it otherwise. false when the packet
   * exceeds the client's Maximum Packet Size (it is then not sent [MQTT-3.1.2-25]).
   */
  sendPublish(
    msg: Message,
    qos: QoS,
    retain: boolean,
    packetId: number,
    dup: boolean,
    subIds: number[] | undefined,
  ): boolean {
    if (this.state !== ConnState.Connected) return true;
    const ctx = this.ctx;
    if (ctx.faultDrop()) return true;
    const v5 = this.version === 5;
    const raw = msg.raw;
    const now = msg.expiresAt === 0 ? 0 : ctx.now();
    let expiry: number | undefined;
    if (
      raw !== undefined &&
      subIds === undefined &&
      this.aliasesOut === undefined &&
      (msg.expiresAt === 0 || !v5 || (expiry = msg.remainingExpiry(now)) === msg.props?.messageExpiryInterval)
    ) {
      const total = reframedPublishLength(raw, msg, msg.rawV5, qos, v5);
      if (total > this.maxOut) return false;
      const buf = this.reserve(total);
      const start = this.outLen;
      writeReframedPublish(raw, msg, msg.rawV5, buf, start, publishFirstByte(qos, retain, dup), packetId, v5);
      this.outLen = start + total;
      ctx.counters.messagesSent++;
      this.queued(start);
      return true;
    }
    return this.sendPublishEncoded(msg.toPacket(qos, retain, packetId, dup), msg, subIds, now, expiry);
  }

  /**
   * sendPublish's other way: `packet` (msg as a PUBLISH) encoded, with this client's properties
   * (Subscription Identifiers, the Message Expiry left, a Topic Alias). `now`, `expiry`: what
   * sendPublish found (0, undefined: not looked up yet).
   */
  private sendPublishEncoded(
    packet: PublishPacket,
    msg: Message,
    subIds: number[] | undefined,
    now: number,
    expiry: number | undefined,
  ): boolean {
    let aliasAssigned: string | undefined;
    if (this.version === 5) {
      let props: Properties | undefined = msg.props;
      if (subIds !== undefined || msg.expiresAt !== 0 || this.aliasesOut !== undefined) {
        props = { ...msg.props };
        if (subIds !== undefined) props.subscriptionIdentifiers = subIds;
        if (msg.expiresAt !== 0) {
          // [MQTT-3.3.2-6] forward the time left, not the time given.
          expiry ??= msg.remainingExpiry(now === 0 ? this.ctx.now() : now);
          props.messageExpiryInterval = Math.max(1, expiry ?? 1);
        }
        if (this.aliasesOut !== undefined) {
          const known = this.aliasesOut.get(msg.topic);
          if (known !== undefined) {
            props.topicAlias = known;
            packet.topic = '';
          } else if (this.aliasesOut.size < this.aliasOutMax) {
            props.topicAlias = this.aliasesOut.size + 1;
            aliasAssigned = msg.topic;
          }
        }
      }
      if (props !== undefined) packet.properties = props;
    } else {
      delete packet.properties;
    }
    const size = packetSize(packet, this.version);
    if (size > this.maxOut) return false;
    if (aliasAssigned !== undefined) this.aliasesOut!.set(aliasAssigned, packet.properties!.topicAlias!);
    const buf = this.reserve(size);
    const start = this.outLen;
    this.outLen += encodeInto(packet, this.version, buf, start);
    this.ctx.counters.messagesSent++;
    this.queued(start);
    return true;
  }

  /** Writes everything queued this tick in one write (called by the broker's per-tick flush). */
  flush(): void {
    this.dirty = false;
    const out = this.out;
    if (out === undefined || this.outLen === 0) return;
    const data = out.subarray(0, this.outLen);
    this.outHint = this.outLen > MAX_HINT ? MAX_HINT : Math.max(this.outLen, FIRST_BUFFER);
    this.out = undefined;
    this.outLen = 0;
    const ctx = this.ctx;
    ctx.counters.bytesSent += data.length;
    if (this.state === ConnState.Closed) return;
    const delay = ctx.delayMs;
    if (delay > 0) setTimeout(delayedWrite, delay, this.transport, data);
    else this.transport.write(data);
    if (this.congestion !== undefined) ctx.drained(this);
  }
}

function delayedWrite(transport: Transport, data: Buffer): void {
  transport.write(data);
}

function endTransport(transport: Transport): void {
  transport.end();
}

function destroyTransport(transport: Transport): void {
  transport.destroy();
}
