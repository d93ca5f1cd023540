/**
 * One client connection: frames and dispatches its packets, enforces the per-connection rules
 * (keepalive, receive maximum, topic aliases, packet size) and batches everything it sends into
 * one write per tick.
 */
import { isUtf8 } from 'node:buffer';
import {
  decode,
  encodeInto,
  Framer,
  isValidReasonCode,
  MalformedPacketError,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  packetSize,
  type QoS,
  ReasonCode,
  type SubscribePacket,
  type UnsubscribePacket,
  type Will,
} from '../protocol/index.js';
import {
  publishFirstByte,
  reframedPublishLength,
  writeReframedPublish,
} from '../protocol/packets/publish.js';
import type { Broker } from './broker.js';
import type { Message, Outgoing } from './message.js';
import type { Session } from './session.js';
import type { Transport } from './transport.js';

export const ConnState = {
  AwaitingConnect: 0,
  Connected: 1,
  Closing: 2,
  Closed: 3,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

/** The largest packet the MQTT wire format can carry (remaining length 268,435,455 + 5 header bytes). */
const WIRE_MAX = 268_435_460;
const FIRST_BUFFER = 1024;
const MAX_HINT = 1 << 20;

export class Connection {
  readonly broker: Broker;
  readonly transport: Transport;
  /** Largest packet accepted (--max-packet-size). */
  readonly maxIn: number;
  /** Cuts the byte stream into packets; checks --max-packet-size before buffering a body. */
  private readonly framer: Framer;
  readonly acceptedAt: number;
  readonly listener: 'tcp' | 'ws' | 'tls';
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
  lastRx: number;
  rxSeen = false;
  disconnectAt = 0;
  /** Another connection took the session over: no session bookkeeping when this one closes. */
  takenOver = false;
  /** Protocol level of a CONNECT that failed to decode (0 = none). */
  private connectLevel = 0;
  /** Set when the connection limit was reached as it was accepted: its CONNECT is refused. */
  overLimit = false;

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

  constructor(broker: Broker, transport: Transport, listener: 'tcp' | 'ws' | 'tls', now: number) {
    this.broker = broker;
    this.transport = transport;
    this.listener = listener;
    this.acceptedAt = now;
    this.lastRx = now;
    this.maxIn = broker.opts.maxPacketSize ?? WIRE_MAX;
    this.framer = new Framer(4, { maxPacketSize: this.maxIn });
  }

  /** `[client-id]` or the remote address before CONNECT, for log lines. */
  get label(): string {
    if (this.clientId !== '') return this.clientId;
    return `${this.transport.remoteAddress ?? '?'}:${this.transport.remotePort ?? '?'}`;
  }

  // ---- input ----------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.state >= ConnState.Closing) return;
    this.broker.counters.bytesReceived += chunk.length;
    this.rxSeen = true;
    try {
      this.framer.pushFrames(chunk, this.onFrame);
    } catch (err) {
      this.onMalformed(err);
    }
  }

  /**
   * Decodes one framed packet. SUBSCRIBE/UNSUBSCRIBE are decoded in collect mode, so an invalid
   * filter gets its SUBACK/UNSUBACK failure code instead of closing the connection.
   */
  private readonly onFrame = (raw: Buffer, headerLength: number): boolean => {
    if (this.state >= ConnState.Closing) return false;
    const type = raw[0]! >> 4;
    let packet: Packet;
    if ((type === 8 || type === 10) && this.state === ConnState.Connected) {
      const errors: MalformedPacketError[] = [];
      packet = decode(raw, this.version, { errors });
      // Invalid filters (0x8F) are answered per filter; anything else is fatal.
      const fatal = errors.find((e) => e.reasonCode !== ReasonCode.TopicFilterInvalid);
      if (fatal !== undefined) throw fatal;
    } else if (type === 1 && this.state === ConnState.AwaitingConnect) {
      try {
        packet = decode(raw, this.version);
      } catch (err) {
        // Protocol level byte after the 'MQTT' name: a v5 client can be told why in a CONNACK.
        this.connectLevel = raw[headerLength + 6] ?? 0;
        throw err;
      }
    } else packet = decode(raw, this.version);
    this.onPacket(packet, raw);
    return true;
  };

  private onMalformed(err: unknown): void {
    const e = err instanceof MalformedPacketError ? err : undefined;
    const message = err instanceof Error ? err.message : String(err);
    if (e === undefined) {
      this.broker.log(`[${this.label}] internal error handling a packet: ${message}`);
      if (process.env.MQ_DEBUG === '1' && err instanceof Error) this.broker.log(String(err.stack));
    } else this.broker.log(`[${this.label}] malformed packet: ${message}`);
    const code = e?.reasonCode ?? ReasonCode.UnspecifiedError;
    if (this.state === ConnState.AwaitingConnect) {
      // [MQTT-3.1.2-2] an unsupported protocol level gets return code 1 (3.1.1 form), then close.
      if (code === ReasonCode.UnsupportedProtocolVersion) {
        this.writeBytes(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      } else if (this.connectLevel === 5 && isValidReasonCode(code, 'CONNACK')) {
        // A malformed v5 CONNECT may be answered with a CONNACK carrying the reason (3.1.4).
        this.writeBytes(Buffer.from([0x20, 0x03, 0x00, code, 0x00]));
      }
      this.closeNow();
      return;
    }
    this.disconnect(code, e?.message);
  }

  /** Called for each framed packet (through dispatch). */
  onPacket(packet: Packet, raw: Buffer): void {
    if (this.state >= ConnState.Closing) return;
    const b = this.broker;
    b.counters.packetsReceived++;
    if (b.tracing) b.traceIn(this, packet, raw);
    if (this.state === ConnState.AwaitingConnect) {
      if (packet.type !== 'CONNECT') {
        // [MQTT-3.1.0-1] the first packet must be CONNECT.
        b.log(`[${this.label}] first packet was ${packet.type}, not CONNECT: closing`);
        this.closeNow();
        return;
      }
      this.version = packet.protocolVersion;
      b.handleConnect(this, packet);
      return;
    }
    switch (packet.type) {
      case 'PUBLISH':
        this.onPublish(packet, raw);
        return;
      case 'PUBACK': {
        const s = this.session!;
        const o = s.inflight.get(packet.packetId);
        if (o !== undefined && o.qos === 1) b.complete(s, o);
        return;
      }
      case 'PUBREC': {
        const s = this.session!;
        const o = s.inflight.get(packet.packetId);
        if (o === undefined || o.qos !== 2) {
          this.writeAck(0x62, packet.packetId, this.version === 5 ? ReasonCode.PacketIdentifierNotFound : 0);
          return;
        }
        if ((packet.reasonCode ?? 0) >= 0x80) {
          b.complete(s, o);
          return;
        }
        if (o.state !== 'rel') {
          o.state = 'rel';
          b.persist?.released(s, o);
        }
        this.writeAck(0x62, packet.packetId, 0);
        return;
      }
      case 'PUBCOMP': {
        const s = this.session!;
        const o = s.inflight.get(packet.packetId);
        if (o !== undefined && o.state === 'rel') b.complete(s, o);
        return;
      }
      case 'PUBREL': {
        const s = this.session!;
        const known = s.incomingQos2?.delete(packet.packetId) ?? false;
        if (known) b.persist?.incomingReleased(s, packet.packetId);
        this.writeAck(
          0x70,
          packet.packetId,
          known || this.version !== 5 ? 0 : ReasonCode.PacketIdentifierNotFound,
        );
        return;
      }
      case 'SUBSCRIBE':
        this.onSubscribe(packet);
        return;
      case 'UNSUBSCRIBE':
        this.onUnsubscribe(packet);
        return;
      case 'PINGREQ':
        this.writePacket({ type: 'PINGRESP' });
        return;
      case 'DISCONNECT':
        this.onDisconnect(packet.reasonCode ?? 0, packet.properties);
        return;
      case 'CONNECT':
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
        this.protocolError('a second CONNECT on the same connection [MQTT-3.1.0-2]');
        return;
      case 'AUTH':
        this.protocolError('AUTH received but no authentication method was negotiated');
        return;
      case 'CONNACK':
      case 'SUBACK':
      case 'UNSUBACK':
      case 'PINGRESP':
        this.protocolError(`${packet.type} is only sent by a server`);
        return;
      default: {
        const unreachable: never = packet;
        void unreachable;
      }
    }
  }

  private onPublish(p: PublishPacket, raw: Buffer): void {
    const b = this.broker;
    const s = this.session!;
    b.counters.messagesReceived++;
    let topic = p.topic;
    let props = p.properties;
    const alias = props?.topicAlias;
    if (alias !== undefined) {
      if (alias === 0 || alias > b.topicAliasMax) {
        this.disconnect(ReasonCode.TopicAliasInvalid, `topic alias ${alias} outside 1..${b.topicAliasMax}`);
        return;
      }
      this.aliasesIn ??= new Map();
      if (topic === '') {
        const known = this.aliasesIn.get(alias);
        if (known === undefined) {
          this.protocolError(`topic alias ${alias} used before it was set (3.3.2.3.4)`);
          return;
        }
        topic = known;
      } else this.aliasesIn.set(alias, topic);
      props = { ...props };
      delete props.topicAlias;
      if (Object.keys(props).length === 0) props = undefined;
    } else if (topic === '') {
      this.protocolError('PUBLISH with an empty topic and no topic alias');
      return;
    }
    if (p.qos > b.maxQoS) {
      this.disconnect(ReasonCode.QoSNotSupported, `PUBLISH QoS ${p.qos} above the maximum QoS ${b.maxQoS}`);
      return;
    }
    if (p.retain && b.opts.noRetain === true) {
      this.disconnect(ReasonCode.RetainNotSupported, 'retained PUBLISH but retain is not available');
      return;
    }
    const pid = p.packetId ?? 0;
    if (p.qos === 2) {
      const set = (s.incomingQos2 ??= new Set());
      if (set.has(pid)) {
        // A retransmission of a message already accepted: acknowledge, do not deliver twice.
        this.writeAck(0x50, pid, 0);
        return;
      }
      // The broker's Receive Maximum [MQTT-3.3.4-7] bounds the QoS 1 and 2 PUBLISHes it has not
      // acknowledged. A QoS 1 PUBACK is queued (writeAck) while the very read that carried the
      // PUBLISH is processed, before the next packet is looked at, so no QoS 1 is ever pending
      // here, however many arrive in one read. What counts is QoS 2 between PUBREC and PUBREL.
      // 3.1.1 has no Receive Maximum (nothing tells the client), so only v5 is held to it.
      if (set.size >= b.receiveMaximum && this.version === 5) {
        this.disconnect(
          ReasonCode.ReceiveMaximumExceeded,
          `more than ${b.receiveMaximum} QoS 2 messages unacknowledged`,
        );
        return;
      }
    }
    // [MQTT-3.3.2.3.2] Payload Format Indicator 1 says UTF-8: a receiver may check it (cheap: only
    // then) and refuse with 0x99: PUBACK/PUBREC for QoS 1/2, DISCONNECT for QoS 0 (nothing to ack).
    if (props?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
      const why = `PUBLISH to '${topic}' has Payload Format Indicator 1 but its payload is not UTF-8`;
      b.log(`[${this.label}] ${why}: refused (0x99 Payload format invalid)`);
      if (p.qos === 0) this.disconnect(ReasonCode.PayloadFormatInvalid, why);
      else this.writeAck(p.qos === 1 ? 0x40 : 0x50, pid, ReasonCode.PayloadFormatInvalid);
      return;
    }
    if (!b.canPublish(topic, this)) {
      b.log(`[${this.label}] not authorized to publish to '${topic}': dropped`);
      if (p.qos > 0)
        this.writeAck(p.qos === 1 ? 0x40 : 0x50, pid, this.version === 5 ? ReasonCode.NotAuthorized : 0);
      return;
    }
    const msg = b.newMessage(topic, p.payload, p.qos, p.retain, props, s);
    if (alias === undefined) msg.attachRaw(raw, this.version === 5);
    const matched = b.publish(msg);
    if (p.qos === 0) return;
    const reason = this.version === 5 && matched === 0 ? ReasonCode.NoMatchingSubscribers : 0;
    if (p.qos === 1) {
      this.writeAck(0x40, pid, reason);
      return;
    }
    s.incomingQos2!.add(pid);
    b.persist?.incomingPending(s, pid);
    this.writeAck(0x50, pid, reason);
  }

  private onSubscribe(p: SubscribePacket): void {
    this.broker.handleSubscribe(this, p);
  }

  private onUnsubscribe(p: UnsubscribePacket): void {
    this.broker.handleUnsubscribe(this, p);
  }

  private onDisconnect(reasonCode: number, props: Properties | undefined): void {
    const s = this.session!;
    const expiry = props?.sessionExpiryInterval;
    if (expiry !== undefined) {
      // [MQTT-3.14.2-2] a session that expired on close cannot be revived by DISCONNECT.
      if (s.expiryInterval === 0 && expiry !== 0) {
        this.protocolError('DISCONNECT sets a Session Expiry Interval after CONNECT set 0 [MQTT-3.14.2-2]');
        return;
      }
      s.expiryInterval = expiry;
    }
    // [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 asks for it to be published.
    if (reasonCode !== ReasonCode.DisconnectWithWill) this.will = undefined;
    this.graceful = true;
    this.closeNow();
  }

  private protocolError(detail: string): void {
    this.broker.log(`[${this.label}] protocol error: ${detail}`);
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
    // Acks queued for this client go out now, so what they acknowledge must be on disk first.
    this.broker.syncPersist();
    this.flush();
    // Under --delay the last packets are still on their way: end after them.
    const delay = this.broker.opts.delayMs ?? 0;
    if (delay > 0) setTimeout(endTransport, delay, this.transport);
    else this.transport.end();
    // A peer that never closes its side must not hold the socket forever.
    setTimeout(destroyTransport, 2000 + delay, this.transport).unref();
    if (wasConnected) this.broker.detach(this);
  }

  /** The transport closed (either side). */
  onClose(): void {
    const wasConnected = this.state === ConnState.Connected;
    this.state = ConnState.Closed;
    this.out = undefined;
    if (wasConnected) this.broker.detach(this);
    this.broker.forget(this);
  }

  // ---- output ---------------------------------------------------------------------------------

  private reserve(n: number): Buffer {
    const out = this.out;
    if (out === undefined) {
      // Sized like the last flush (busy connections skip the doubling); small ones come from
      // Node's shared pool, so an idle connection's last write does not pin a buffer of its own.
      const buf = Buffer.allocUnsafe(Math.max(n, this.outHint));
      this.out = buf;
      return buf;
    }
    if (this.outLen + n <= out.length) return out;
    let size = out.length * 2;
    while (size < this.outLen + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    out.copy(grown, 0, 0, this.outLen);
    this.out = grown;
    return grown;
  }

  private queued(start: number): void {
    const b = this.broker;
    b.counters.packetsSent++;
    if (b.tracing) b.traceOut(this, this.out!.subarray(start, this.outLen));
    if (!this.dirty) b.scheduleFlush(this);
  }

  /** Sends a packet through the codec. `force` skips the drop-every fault (CONNACK, DISCONNECT). */
  writePacket(packet: Packet, force = false): void {
    if (this.state === ConnState.Closed) return;
    if (!force && this.broker.faultDrop()) return;
    const size = packetSize(packet, this.version);
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
    this.broker.counters.packetsSent++;
    if (!this.dirty) this.broker.scheduleFlush(this);
  }

  /** PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70), hand-encoded: they are the QoS hot path. */
  writeAck(first: number, packetId: number, reasonCode: number): void {
    if (this.state === ConnState.Closed) return;
    if (this.broker.faultDrop()) return;
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
    const b = this.broker;
    if (b.faultDrop()) return true;
    const v5 = this.version === 5;
    const raw = msg.raw;
    const now = msg.expiresAt === 0 ? 0 : b.now();
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
      b.counters.messagesSent++;
      this.queued(start);
      return true;
    }
    return this.sendPublishEncoded(msg, qos, retain, packetId, dup, subIds, now, expiry);
  }

  private sendPublishEncoded(
    msg: Message,
    qos: QoS,
    retain: boolean,
    packetId: number,
    dup: boolean,
    subIds: number[] | undefined,
    now: number,
    expiry: number | undefined,
  ): boolean {
    const packet = msg.toPacket(qos, retain, packetId, dup);
    let aliasAssigned: string | undefined;
    if (this.version === 5) {
      let props: Properties | undefined = msg.props;
      if (subIds !== undefined || msg.expiresAt !== 0 || this.aliasesOut !== undefined) {
        props = { ...msg.props };
        if (subIds !== undefined) props.subscriptionIdentifiers = subIds;
        if (msg.expiresAt !== 0) {
          // [MQTT-3.3.2-6] forward the time left, not the time given.
          expiry ??= msg.remainingExpiry(now === 0 ? this.broker.now() : now);
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
    this.broker.counters.messagesSent++;
    this.queued(start);
    return true;
  }

  /** Resends an in-flight message after a reconnect (PUBLISH with DUP, or PUBREL). */
  resend(o: Outgoing): void {
    if (o.state === 'rel') this.writeAck(0x62, o.packetId, 0);
    else if (!this.sendPublish(o.msg, o.qos, o.retain, o.packetId, o.sent, o.subIds)) {
      this.broker.complete(this.session!, o);
    }
    o.sent = true;
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
    const b = this.broker;
    b.counters.bytesSent += data.length;
    if (this.state === ConnState.Closed) return;
    const delay = b.opts.delayMs;
    if (delay !== undefined && delay > 0) setTimeout(delayedWrite, delay, this.transport, data);
    else this.transport.write(data);
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
