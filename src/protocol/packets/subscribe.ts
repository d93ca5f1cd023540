import { EncodeError } from '../errors.js';
import { decodeProperties, propertyBlockSize } from '../properties.js';
import type { Reader } from '../reader.js';
import { validateTopicFilter } from '../topic.js';
import type {
  Properties,
  ProtocolVersion,
  QoS,
  SubscribePacket,
  Subscription,
  UnsubscribePacket,
} from '../types.js';
import { checkQos, checkU16, stringSize, writeString } from '../writer.js';
import { packetIdentifier, qos1FirstByte, qos1Flags, writeIdAndProperties } from './fields.js';

/**
 * What SUBSCRIBE and UNSUBSCRIBE share before their topic filters: flags 0010 (3.1: DUP may be
 * set), the packet identifier, (5.0) properties, then a payload that holds at least one filter.
 */
function head(
  r: Reader,
  flags: number,
  type: 'SUBSCRIBE' | 'UNSUBSCRIBE',
  flagsRule: string,
  emptyRule: string | undefined,
): { packetId: number; properties: Properties | undefined; dup: boolean } {
  const dup = qos1Flags(r, flags, flagsRule);
  const packetId = packetIdentifier(r);
  const properties = r.version === 5 ? decodeProperties(r, type) : undefined;
  r.section = 'payload';
  if (r.remaining === 0) {
    const a = type === 'SUBSCRIBE' ? 'a' : 'an';
    r.protocol(`no topic filters: ${a} ${type} must carry at least one`, r.pos, emptyRule);
  }
  return { packetId, properties, dup };
}

function topicFilter(r: Reader, field: string): string {
  const at = r.pos;
  const filter = r.string(field);
  const problem = validateTopicFilter(filter, r.version);
  if (problem) r.malformed(problem.message, at, problem.rule, 0x8f);
  return filter;
}

export function decodeSubscribe(r: Reader, flags: number): SubscribePacket {
  const { packetId, properties, dup } = head(
    r,
    flags,
    'SUBSCRIBE',
    'MQTT-3.8.1-1',
    r.rule('MQTT-3.8.3-2', 'MQTT-3.8.3-3'),
  );
  const subscriptions: Subscription[] = [];
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
  const p: SubscribePacket = { type: 'SUBSCRIBE', packetId, subscriptions, properties };
  if (dup) p.dup = true;
  return p;
}

function describeOptions(s: Subscription, v: ProtocolVersion): string {
  if (v !== 5) return `QoS ${s.qos}`;
  return `QoS ${s.qos}, noLocal=${s.noLocal ? 1 : 0}, retainAsPublished=${s.retainAsPublished ? 1 : 0}, retainHandling=${s.retainHandling ?? 0}`;
}

export function decodeUnsubscribe(r: Reader, flags: number): UnsubscribePacket {
  const { packetId, properties, dup } = head(r, flags, 'UNSUBSCRIBE', 'MQTT-3.10.1-1', 'MQTT-3.10.3-2');
  const topicFilters: string[] = [];
  while (r.remaining > 0) topicFilters.push(topicFilter(r, 'topic filter'));
  const p: UnsubscribePacket = { type: 'UNSUBSCRIBE', packetId, topicFilters, properties };
  if (dup) p.dup = true;
  return p;
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

/** SUBSCRIBE and UNSUBSCRIBE: fixed header, packet identifier, (5.0) properties, then the filters. */
export function writeSubscribe(
  p: SubscribePacket | UnsubscribePacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeIdAndProperties(buf, pos, qos1FirstByte(p.type === 'SUBSCRIBE' ? 0x82 : 0xa2, p, v), rl, p, v);
  if (p.type === 'UNSUBSCRIBE') {
    for (const f of p.topicFilters) pos = writeString(buf, pos, f);
    return pos;
  }
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
