import { EncodeError } from '../errors.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import { validateTopicFilter } from '../topic.js';
import type { ProtocolVersion, QoS, SubscribePacket, Subscription, UnsubscribePacket } from '../types.js';
import { checkQos, checkU16, stringSize, writeFixedHeader, writeString, writeU16 } from '../writer.js';

function checkFlags(r: Reader, flags: number, rule: string): void {
  if (flags !== 2)
    r.malformed(`reserved flags are ${flags.toString(2).padStart(4, '0')}, must be 0010`, 0, rule);
}

function packetIdentifier(r: Reader): number {
  const at = r.pos;
  const id = r.u16('packet identifier');
  if (id === 0) r.malformed('packet identifier is 0', at, r.rule('MQTT-2.2.1-3', 'MQTT-2.3.1-1'));
  return id;
}

function topicFilter(r: Reader, field: string): string {
  const at = r.pos;
  const filter = r.string(field);
  const problem = validateTopicFilter(filter, r.version);
  if (problem) r.malformed(problem.message, at, problem.rule, 0x8f);
  return filter;
}

export function decodeSubscribe(r: Reader, flags: number): SubscribePacket {
  checkFlags(r, flags, 'MQTT-3.8.1-1');
  const packetId = packetIdentifier(r);
  const properties = r.version === 5 ? decodeProperties(r, 'SUBSCRIBE') : undefined;
  r.section = 'payload';
  const subscriptions: Subscription[] = [];
  if (r.remaining === 0) {
    r.protocol(
      'no topic filters: a SUBSCRIBE must carry at least one',
      r.pos,
      r.rule('MQTT-3.8.3-2', 'MQTT-3.8.3-3'),
    );
  }
  while (r.remaining > 0) {
    const topicFilterValue = topicFilter(r, 'topic filter');
    const at = r.pos;
    const o = r.u8('subscription options');
    let qos = o & 3;
    if (qos === 3) {
      // 5.0 3.8.3.1: a Protocol Error; 3.1.1: malformed [MQTT-3-8.3-4] (sic, the spec's id).
      if (r.version === 5) r.protocol(`subscription options 0x${o.toString(16)}: Maximum QoS is 3`, at);
      else r.malformed('requested QoS is 3', at, 'MQTT-3-8.3-4');
      qos = 2;
    }
    const sub: Subscription = { topicFilter: topicFilterValue, qos: qos as QoS };
    if (r.version === 5) {
      if ((o & 0xc0) !== 0) {
        r.malformed(
          `subscription options 0x${o.toString(16)}: reserved bits 7-6 are set`,
          at,
          'MQTT-3.8.3-5',
        );
      }
      sub.noLocal = (o & 0x04) !== 0;
      sub.retainAsPublished = (o & 0x08) !== 0;
      let rh = (o >> 4) & 3;
      if (rh === 3) {
        r.protocol('Retain Handling is 3', at);
        rh = 2;
      }
      sub.retainHandling = rh as 0 | 1 | 2;
      if (sub.noLocal && topicFilterValue.startsWith('$share/')) {
        r.protocol('No Local is set on a shared subscription', at, 'MQTT-3.8.3-4');
      }
    } else if ((o & 0xfc) !== 0) {
      r.malformed(`requested QoS byte 0x${o.toString(16)}: reserved bits 7-2 are set`, at, 'MQTT-3-8.3-4');
    }
    if (r.notes) r.notes[r.notes.length - 1]!.value = describeOptions(sub, r.version);
    subscriptions.push(sub);
  }
  return { type: 'SUBSCRIBE', packetId, subscriptions, properties };
}

function describeOptions(s: Subscription, v: ProtocolVersion): string {
  if (v !== 5) return `QoS ${s.qos}`;
  return `QoS ${s.qos}, noLocal=${s.noLocal ? 1 : 0}, retainAsPublished=${s.retainAsPublished ? 1 : 0}, retainHandling=${s.retainHandling ?? 0}`;
}

export function decodeUnsubscribe(r: Reader, flags: number): UnsubscribePacket {
  checkFlags(r, flags, 'MQTT-3.10.1-1');
  const packetId = packetIdentifier(r);
  const properties = r.version === 5 ? decodeProperties(r, 'UNSUBSCRIBE') : undefined;
  r.section = 'payload';
  const topicFilters: string[] = [];
  if (r.remaining === 0) {
    r.protocol('no topic filters: an UNSUBSCRIBE must carry at least one', r.pos, 'MQTT-3.10.3-2');
  }
  while (r.remaining > 0) topicFilters.push(topicFilter(r, 'topic filter'));
  return { type: 'UNSUBSCRIBE', packetId, topicFilters, properties };
}

export function subscribeRemainingLength(p: SubscribePacket, v: ProtocolVersion): number {
  if (p.subscriptions.length === 0) throw new EncodeError('SUBSCRIBE needs at least one subscription');
  checkU16(p.packetId, 'SUBSCRIBE packetId');
  let n = 2;
  if (v === 5) n += propertyBlockSize(p.properties, 'SUBSCRIBE');
  for (const s of p.subscriptions) {
    checkQos(s.qos, `subscription QoS for '${s.topicFilter}'`);
    n += stringSize(s.topicFilter, 'topic filter') + 1;
  }
  return n;
}

export function writeSubscribe(
  p: SubscribePacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeFixedHeader(buf, pos, 0x82, rl);
  pos = writeU16(buf, pos, p.packetId);
  if (v === 5) pos = writeProperties(buf, pos, p.properties);
  for (const s of p.subscriptions) {
    pos = writeString(buf, pos, s.topicFilter);
    let o = s.qos & 3;
    if (v === 5) {
      if (s.noLocal) o |= 0x04;
      if (s.retainAsPublished) o |= 0x08;
      o |= ((s.retainHandling ?? 0) & 3) << 4;
    }
    buf[pos++] = o;
  }
  return pos;
}

export function unsubscribeRemainingLength(p: UnsubscribePacket, v: ProtocolVersion): number {
  if (p.topicFilters.length === 0) throw new EncodeError('UNSUBSCRIBE needs at least one topic filter');
  checkU16(p.packetId, 'UNSUBSCRIBE packetId');
  let n = 2;
  if (v === 5) n += propertyBlockSize(p.properties, 'UNSUBSCRIBE');
  for (const f of p.topicFilters) n += stringSize(f, 'topic filter');
  return n;
}

export function writeUnsubscribe(
  p: UnsubscribePacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeFixedHeader(buf, pos, 0xa2, rl);
  pos = writeU16(buf, pos, p.packetId);
  if (v === 5) pos = writeProperties(buf, pos, p.properties);
  for (const f of p.topicFilters) pos = writeString(buf, pos, f);
  return pos;
}
