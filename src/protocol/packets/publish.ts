import { EncodeError } from '../errors.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { ProtocolVersion, PublishPacket, QoS } from '../types.js';
import { checkQos, checkU16, utf8Length, writeString } from '../writer.js';

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
  // Remaining length, inlined: this is the hot path of every broker fan-out.
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
