/**
 * An application message inside the broker: decoded fields plus, when it can be forwarded as is,
 * the bytes it arrived in (so the fan-out path copies bytes instead of re-encoding).
 */
import type { Properties, PublishPacket, QoS } from '../protocol/index.js';
import { locatePublish, type PublishLayout } from '../protocol/packets/publish.js';
import type { Session } from './session.js';

let nextMessageId = 1;

/** Makes new message ids start above `id` (after loading persisted messages). */
export function reserveMessageIds(id: number): void {
  if (id >= nextMessageId) nextMessageId = id + 1;
}

/** Where a message's Message Expiry starts from (the broker's clock). */
export interface Clock {
  now(): number;
}

export class Message implements PublishLayout {
  /** Broker-wide id (persistence refers to messages by it). */
  id: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** v5 properties as published, Topic Alias removed; undefined when none. */
  props: Properties | undefined;
  /**
   * The PUBLISH as received (a view until own() copies it), when its bytes can be forwarded: no
   * topic alias involved. undefined otherwise (the message is then always encoded from fields).
   */
  raw: Buffer | undefined;
  /** raw was encoded for v5 (has a properties section). */
  rawV5: boolean;
  /** Where the parts of raw start (locatePublish). */
  topicOffset = 0;
  pidOffset = 0;
  propsOffset = 0;
  payloadOffset = 0;
  /** The broker's clock time at which the message expires (v5 Message Expiry Interval); 0 = never. */
  expiresAt: number;
  /** The session that published it (No Local), undefined for wills and $SYS. */
  sender: Session | undefined;
  /** raw/payload are copies the broker owns (safe to keep past the read). */
  owned: boolean;
  /** The --persist log generation this message's body was written in (0 = none). */
  persistedIn = 0;

  /** `clock`: the Message Expiry Interval in `props` runs from its now (undefined: the caller sets expiresAt). */
  constructor(
    topic: string,
    payload: Buffer,
    qos: QoS,
    retain: boolean,
    props: Properties | undefined,
    sender: Session | undefined,
    clock: Clock | undefined,
  ) {
    this.id = nextMessageId++;
    this.topic = topic;
    this.payload = payload;
    this.qos = qos;
    this.retain = retain;
    this.props = props;
    this.raw = undefined;
    this.rawV5 = false;
    this.sender = sender;
    this.owned = false;
    const expiry = props?.messageExpiryInterval;
    this.expiresAt = expiry !== undefined && clock !== undefined ? clock.now() + expiry * 1000 : 0;
  }

  /** Attaches the received bytes of a PUBLISH (the packet had no Topic Alias). */
  attachRaw(raw: Buffer, v5: boolean): void {
    locatePublish(raw, this.payload.length, this);
    this.raw = raw;
    this.rawV5 = v5;
  }

  /** Copies the bytes so the message can outlive the read that produced it. Idempotent. */
  own(): this {
    if (this.owned) return this;
    this.owned = true;
    // Binary properties are views into the read buffer too.
    const cd = this.props?.correlationData;
    if (cd !== undefined) this.props = { ...this.props, correlationData: Buffer.from(cd) };
    if (this.raw !== undefined) {
      this.raw = Buffer.from(this.raw);
      this.payload = this.raw.subarray(this.payloadOffset);
    } else {
      this.payload = Buffer.from(this.payload);
    }
    return this;
  }

  /** Seconds of Message Expiry left (rounded up), undefined when none was set; 0 or less = expired. */
  remainingExpiry(now: number): number | undefined {
    if (this.expiresAt === 0) return undefined;
    return Math.ceil((this.expiresAt - now) / 1000);
  }

  expired(now: number): boolean {
    return this.expiresAt !== 0 && now >= this.expiresAt;
  }

  /** The message as a PUBLISH packet (for the encode path). */
  toPacket(qos: QoS, retain: boolean, packetId: number | undefined, dup: boolean): PublishPacket {
    const p: PublishPacket = { type: 'PUBLISH', dup, qos, retain, topic: this.topic, payload: this.payload };
    if (qos > 0) p.packetId = packetId;
    if (this.props !== undefined) p.properties = this.props;
    return p;
  }
}

let nextOutgoingSeq = 1;

/** Makes new outgoing sequence numbers start above `seq` (after loading persisted state). */
export function reserveOutgoingSeq(seq: number): void {
  if (seq >= nextOutgoingSeq) nextOutgoingSeq = seq + 1;
}

/** One copy of a message on its way to one session (queued or in flight). */
export class Outgoing {
  /** Broker-wide, increasing: identifies this copy in the --persist log and keeps its order. */
  seq = nextOutgoingSeq++;
  msg: Message;
  qos: QoS;
  retain: boolean;
  subIds: number[] | undefined;
  packetId = 0;
  /** 'pub' waits for PUBACK/PUBREC; 'rel' (QoS 2) waits for PUBCOMP. */
  state: 'pub' | 'rel' = 'pub';
  /** Sent at least once (the next send sets DUP). */
  sent = false;

  constructor(msg: Message, qos: QoS, retain: boolean, subIds: number[] | undefined) {
    this.msg = msg;
    this.qos = qos;
    this.retain = retain;
    this.subIds = subIds;
  }
}
