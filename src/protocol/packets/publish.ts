import { EncodeError } from '../errors.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { ProtocolVersion, PublishPacket, QoS } from '../types.js';
import { checkQos, checkU16, utf8Length, varintSize, writeString, writeVarint } from '../writer.js';

export function decodePublish(r: Reader, flags: number): PublishPacket {
  let qos = (flags >> 1) & 3;
  const dup = (flags & 8) !== 0;
  if (qos === 3) {
    r.malformed('QoS is 3 (both QoS bits set)', 0, 'MQTT-3.3.1-4');
    qos = 2;
  }
  if (dup && qos === 0) r.malformed('DUP is set on a QoS 0 message', 0, 'MQTT-3.3.1-2');
  const topicAt = r.pos;
  const topic = r.topicName('topic name');
  let packetId: number | undefined;
  if (qos > 0) {
    const at = r.pos;
    packetId = r.u16('packet identifier');
    if (packetId === 0) r.malformed('packet identifier is 0', at, r.rule('MQTT-2.2.1-3', 'MQTT-2.3.1-1'));
  }
  const properties = r.version === 5 ? decodeProperties(r, 'PUBLISH') : undefined;
  if (topic.length === 0) {
    if (r.version !== 5) r.malformed('topic name is empty', topicAt, 'MQTT-4.7.3-1');
    else if (properties?.topicAlias === undefined) {
      r.protocol('topic name is empty and there is no Topic Alias', topicAt, undefined, 0x82);
    }
  }
  r.section = 'payload';
  const payload = r.rest('payload');
  return {
    type: 'PUBLISH',
    dup,
    qos: qos as QoS,
    retain: (flags & 1) !== 0,
    topic,
    packetId,
    payload,
    properties,
  };
}

export function publishRemainingLength(p: PublishPacket, v: ProtocolVersion): number {
  const topicLen = utf8Length(p.topic);
  if (topicLen > 65_535) throw new EncodeError(`topic name is ${topicLen} bytes; the limit is 65,535`);
  let n = 2 + topicLen + p.payload.length;
  if (p.qos !== 0) {
    checkQos(p.qos, 'PUBLISH QoS');
    if (p.packetId === undefined) throw new EncodeError(`PUBLISH with QoS ${p.qos} needs a packetId`);
    checkU16(p.packetId, 'PUBLISH packetId');
    n += 2;
  }
  if (v === 5) n += p.properties === undefined ? 1 : propertyBlockSize(p.properties, 'PUBLISH');
  return n;
}

export function writePublish(
  p: PublishPacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  buf[pos++] = 0x30 | (p.dup ? 8 : 0) | (p.qos << 1) | (p.retain ? 1 : 0);
  // Remaining length: a deliberate hot-path copy of writeVarint (writer.ts), inlined because this is
  // the hot path of every broker fan-out.
  let n = rl;
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  pos = writeString(buf, pos, p.topic);
  if (p.qos > 0) {
    const id = p.packetId!;
    buf[pos++] = id >>> 8;
    buf[pos++] = id & 0xff;
  }
  if (v === 5) pos = writeProperties(buf, pos, p.properties);
  const payload = p.payload;
  if (payload.length > 0) {
    buf.set(payload, pos);
    pos += payload.length;
  }
  return pos;
}

// ---- Forwarding a received PUBLISH by its bytes ------------------------------------------------
// A broker forwards most messages by copying the bytes they arrived in: only the first byte (DUP,
// QoS, RETAIN), the packet identifier and, between 3.1.1 and 5.0, the properties section change.
// These functions know that layout so the broker does not; they allocate nothing (fan-out path).

/** Where the parts of the bytes of one PUBLISH start (offsets from its first byte). */
export interface PublishLayout {
  /** The topic name's length field, right after the fixed header. */
  topicOffset: number;
  /** The packet identifier, or where it would be (a QoS 0 PUBLISH has none). */
  pidOffset: number;
  /** The properties section (v5) or, when there is none, the payload. */
  propsOffset: number;
  /** The payload, to the end of the packet. */
  payloadOffset: number;
}

/**
 * Finds the parts of `raw`, one whole PUBLISH as decodePublish accepted it, whose payload is its
 * last `payloadLength` bytes, and writes their offsets into `into`.
 */
export function locatePublish(raw: Buffer, payloadLength: number, into: PublishLayout): void {
  // Fixed header: one byte, then a 1-4 byte remaining length.
  let i = 1;
  while ((raw[i]! & 0x80) !== 0) i++;
  i++;
  into.topicOffset = i;
  i += 2 + raw.readUInt16BE(i);
  into.pidOffset = i;
  if ((raw[0]! & 0x06) !== 0) i += 2;
  into.propsOffset = i;
  into.payloadOffset = raw.length - payloadLength;
}

/** The first byte of a PUBLISH: type 3 and the DUP, QoS and RETAIN flags [MQTT-3.3.1]. */
export function publishFirstByte(qos: QoS, retain: boolean, dup: boolean): number {
  return 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
}

/** `raw` (received from a v5 client when `rawV5`) keeps its layout as a QoS `qos` PUBLISH for a `v5` receiver. */
function sameLayout(raw: Buffer, rawV5: boolean, qos: number, v5: boolean): boolean {
  return v5 === rawV5 && qos === ((raw[0]! >> 1) & 3);
}

/**
 * Bytes of `raw` (laid out as `at`; received from a v5 client when `rawV5`) re-framed as a PUBLISH
 * of QoS `qos` for a `v5` receiver: the packet identifier comes or goes with the QoS, a 3.1.1
 * packet gains an empty properties section for v5 and a v5 one loses its properties for 3.1.1.
 */
export function reframedPublishLength(
  raw: Buffer,
  at: PublishLayout,
  rawV5: boolean,
  qos: QoS,
  v5: boolean,
): number {
  // Small for the common case: the broker's fan-out loop inlines what it calls, within a budget.
  if (sameLayout(raw, rawV5, qos, v5)) return raw.length;
  const remaining = relaidRemainingLength(raw, at, rawV5, qos, v5);
  return 1 + varintSize(remaining) + remaining;
}

/**
 * Writes that re-framed PUBLISH at buf[pos] (room for reframedPublishLength bytes): `first` from
 * publishFirstByte, `packetId` when its QoS is above 0. Returns the position after it.
 */
export function writeReframedPublish(
  raw: Buffer,
  at: PublishLayout,
  rawV5: boolean,
  buf: Buffer,
  pos: number,
  first: number,
  packetId: number,
  v5: boolean,
): number {
  const qos = (first >> 1) & 3;
  if (sameLayout(raw, rawV5, qos, v5)) {
    // Copied whole (TypedArray set: no JS around the copy), then the flags and the packet identifier.
    buf.set(raw, pos);
    buf[pos] = first;
    if (qos > 0) {
      buf[pos + at.pidOffset] = packetId >> 8;
      buf[pos + at.pidOffset + 1] = packetId & 0xff;
    }
    return pos + raw.length;
  }
  // Copied part by part: the packet identifier and the properties section come or go.
  buf[pos++] = first;
  pos = writeVarint(buf, pos, relaidRemainingLength(raw, at, rawV5, qos, v5));
  pos += raw.copy(buf, pos, at.topicOffset, at.pidOffset);
  if (qos > 0) {
    buf[pos++] = packetId >> 8;
    buf[pos++] = packetId & 0xff;
  }
  if (v5) {
    if (rawV5) pos += raw.copy(buf, pos, at.propsOffset, at.payloadOffset);
    else buf[pos++] = 0;
  }
  return pos + raw.copy(buf, pos, at.payloadOffset);
}

function relaidRemainingLength(
  raw: Buffer,
  at: PublishLayout,
  rawV5: boolean,
  qos: number,
  v5: boolean,
): number {
  const propsLength = v5 ? (rawV5 ? at.payloadOffset - at.propsOffset : 1) : 0;
  return at.pidOffset - at.topicOffset + (qos > 0 ? 2 : 0) + propsLength + raw.length - at.payloadOffset;
}
