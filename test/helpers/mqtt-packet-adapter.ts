/**
 * mqtt-packet as a test oracle: maps its object shape to mq's Packet and back.
 *
 * Differences between the two shapes, handled here:
 *   - `cmd: 'publish'` vs `type: 'PUBLISH'`; `messageId` vs `packetId`.
 *   - CONNECT: `protocolId` vs `protocolName`; CONNACK: v3/v4 `returnCode` vs `reasonCode`.
 *   - SUBSCRIBE: `{topic, qos, nl, rap, rh}` vs `{topicFilter, qos, noLocal, retainAsPublished,
 *     retainHandling}`; UNSUBSCRIBE `unsubscriptions` vs `topicFilters`; SUBACK / v5 UNSUBACK
 *     `granted` vs `reasonCodes`.
 *   - Properties: `userProperties` is an object (`{k: v}` or `{k: [v1, v2]}` when a key repeats) vs
 *     our ordered [k, v] pairs, so only key-grouped pair lists survive the trip in order;
 *     `subscriptionIdentifier` (number, or number[] when repeated) vs `subscriptionIdentifiers`
 *     (always an array); `subscriptionIdentifiersAvailable` vs `subscriptionIdentifierAvailable`;
 *     the 0/1 byte properties are booleans in mqtt-packet (except Maximum QoS).
 *   - mqtt-packet writes properties in the object's key order; the adapter builds its objects in
 *     property-identifier order, the order mq's fixtures and arbitraries use.
 */
import mqtt from 'mqtt-packet';
import {
  type AckPacket,
  type Packet,
  PROPERTIES,
  type Properties,
  type ProtocolVersion,
  type QoS,
  type Subscription,
} from '../../src/protocol/index.js';

/** mqtt-packet's packet object, loosely typed: it is an oracle, checked field by field here. */
export type MpObject = { cmd: string } & Record<string, unknown>;
type MpProps = Record<string, unknown>;

const MP_KEY: Partial<Record<keyof Properties, string>> = {
  subscriptionIdentifiers: 'subscriptionIdentifier',
  subscriptionIdentifierAvailable: 'subscriptionIdentifiersAvailable',
};

function propsToMp(props: Properties | undefined): MpProps | undefined {
  if (props === undefined) return undefined;
  const out: MpProps = {};
  let any = false;
  for (const info of PROPERTIES) {
    const value = props[info.key];
    if (value === undefined) continue;
    any = true;
    const key = MP_KEY[info.key] ?? info.key;
    if (info.key === 'userProperties') {
      // A null-prototype object, as mqtt-packet's parser makes: keys such as 'constructor' stay data.
      const grouped: Record<string, string | string[]> = Object.create(null);
      for (const [k, v] of value as [string, string][]) {
        const prev = grouped[k];
        if (prev === undefined) grouped[k] = v;
        else if (Array.isArray(prev)) prev.push(v);
        else grouped[k] = [prev, v];
      }
      out[key] = grouped;
    } else if (info.boolean) {
      out[key] = value === 1;
    } else {
      out[key] = value;
    }
  }
  return any ? out : undefined;
}

function propsFromMp(mp: unknown): Properties | undefined {
  if (mp === undefined || mp === null || typeof mp !== 'object') return undefined;
  const src = mp as MpProps;
  const out: Record<string, unknown> = {};
  let any = false;
  for (const info of PROPERTIES) {
    const value = src[MP_KEY[info.key] ?? info.key];
    if (value === undefined) continue;
    any = true;
    if (info.key === 'userProperties') {
      const pairs: [string, string][] = [];
      for (const [k, v] of Object.entries(value as Record<string, string | string[]>)) {
        if (Array.isArray(v)) for (const one of v) pairs.push([k, one]);
        else pairs.push([k, v]);
      }
      out[info.key] = pairs;
    } else if (info.key === 'subscriptionIdentifiers') {
      out[info.key] = Array.isArray(value) ? value : [value];
    } else if (info.boolean) {
      out[info.key] = value === true ? 1 : 0;
    } else {
      out[info.key] = value;
    }
  }
  return any ? (out as Properties) : undefined;
}

const lower = (type: string): string => type.toLowerCase();

/** mq Packet -> mqtt-packet object, for `mqtt.generate(obj, {protocolVersion})`. */
export function toMqttPacket(p: Packet, version: ProtocolVersion): MpObject {
  const v5 = version === 5;
  const props = v5 && 'properties' in p ? propsToMp(p.properties) : undefined;
  const withProps = (o: MpObject): MpObject => {
    if (props !== undefined) o.properties = props;
    return o;
  };
  switch (p.type) {
    case 'CONNECT': {
      const o: MpObject = {
        cmd: 'connect',
        protocolId: p.protocolName ?? (p.protocolVersion === 3 ? 'MQIsdp' : 'MQTT'),
        protocolVersion: p.protocolVersion,
        clean: p.clean,
        keepalive: p.keepalive,
        clientId: p.clientId,
      };
      if (p.will) {
        const will: Record<string, unknown> = {
          topic: p.will.topic,
          payload: p.will.payload,
          qos: p.will.qos,
          retain: p.will.retain,
        };
        const wp = p.protocolVersion === 5 ? propsToMp(p.will.properties) : undefined;
        if (wp !== undefined) will.properties = wp;
        o.will = will;
      }
      if (p.username !== undefined) o.username = p.username;
      if (p.password !== undefined) o.password = p.password;
      const cp = p.protocolVersion === 5 ? propsToMp(p.properties) : undefined;
      if (cp !== undefined) o.properties = cp;
      return o;
    }
    case 'CONNACK':
      return withProps(
        v5
          ? { cmd: 'connack', sessionPresent: p.sessionPresent, reasonCode: p.reasonCode }
          : { cmd: 'connack', sessionPresent: p.sessionPresent, returnCode: p.reasonCode },
      );
    case 'PUBLISH': {
      const o: MpObject = {
        cmd: 'publish',
        dup: p.dup,
        qos: p.qos,
        retain: p.retain,
        topic: p.topic,
        payload: p.payload,
      };
      if (p.qos > 0) o.messageId = p.packetId;
      return withProps(o);
    }
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP': {
      const o: MpObject = { cmd: lower(p.type), messageId: p.packetId };
      if (v5) o.reasonCode = p.reasonCode ?? 0;
      return withProps(o);
    }
    case 'SUBSCRIBE':
      return withProps({
        cmd: 'subscribe',
        messageId: p.packetId,
        subscriptions: p.subscriptions.map((s) =>
          v5
            ? {
                topic: s.topicFilter,
                qos: s.qos,
                nl: s.noLocal ?? false,
                rap: s.retainAsPublished ?? false,
                rh: s.retainHandling ?? 0,
              }
            : { topic: s.topicFilter, qos: s.qos },
        ),
      });
    case 'SUBACK':
      return withProps({ cmd: 'suback', messageId: p.packetId, granted: [...p.reasonCodes] });
    case 'UNSUBSCRIBE':
      return withProps({ cmd: 'unsubscribe', messageId: p.packetId, unsubscriptions: [...p.topicFilters] });
    case 'UNSUBACK': {
      const o: MpObject = { cmd: 'unsuback', messageId: p.packetId };
      if (v5) o.granted = [...p.reasonCodes];
      return withProps(o);
    }
    case 'PINGREQ':
    case 'PINGRESP':
      return { cmd: lower(p.type) };
    case 'DISCONNECT':
    case 'AUTH': {
      const o: MpObject = { cmd: lower(p.type) };
      if (v5) o.reasonCode = p.reasonCode ?? 0;
      return withProps(o);
    }
    default: {
      const never: never = p;
      throw new Error(`unknown packet ${JSON.stringify(never)}`);
    }
  }
}

const num = (o: MpObject, key: string): number => {
  const v = o[key];
  if (typeof v !== 'number') throw new Error(`mqtt-packet ${o.cmd}: ${key} is ${String(v)}, not a number`);
  return v;
};
const bool = (o: MpObject, key: string): boolean => o[key] === true;
const str = (o: MpObject, key: string): string => {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`mqtt-packet ${o.cmd}: ${key} is not a string`);
  return v;
};
const buf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(String(v ?? ''), 'utf8'));
const qos = (v: unknown): QoS => {
  if (v === 0 || v === 1 || v === 2) return v;
  throw new Error(`mqtt-packet: bad QoS ${String(v)}`);
};
const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.map((x) => Number(x)) : []);

/** mqtt-packet object (as its parser emits it) -> mq Packet. */
export function fromMqttPacket(o: MpObject, version: ProtocolVersion): Packet {
  const v5 = version === 5;
  const properties = propsFromMp(o.properties);
  const withProps = <P extends Exclude<Packet, { type: 'PINGREQ' | 'PINGRESP' }>>(p: P): P => {
    if (properties !== undefined) p.properties = properties;
    return p;
  };
  switch (o.cmd) {
    case 'connect': {
      const level = num(o, 'protocolVersion');
      if (level !== 3 && level !== 4 && level !== 5) throw new Error(`bad level ${level}`);
      const p: Packet = {
        type: 'CONNECT',
        protocolName: str(o, 'protocolId'),
        protocolVersion: level,
        clean: bool(o, 'clean'),
        keepalive: num(o, 'keepalive'),
        clientId: str(o, 'clientId'),
      };
      const will = o.will as Record<string, unknown> | undefined;
      if (will) {
        p.will = {
          topic: String(will.topic),
          payload: buf(will.payload),
          qos: qos(will.qos),
          retain: will.retain === true,
        };
        const wp = propsFromMp(will.properties);
        if (wp !== undefined) p.will.properties = wp;
      }
      if (o.username !== undefined) p.username = String(o.username);
      if (o.password !== undefined) p.password = buf(o.password);
      const cp = propsFromMp(o.properties);
      if (cp !== undefined) p.properties = cp;
      return p;
    }
    case 'connack':
      return withProps({
        type: 'CONNACK',
        sessionPresent: bool(o, 'sessionPresent'),
        reasonCode: v5 ? num(o, 'reasonCode') : num(o, 'returnCode'),
      });
    case 'publish': {
      const q = qos(o.qos);
      const p: Packet = {
        type: 'PUBLISH',
        dup: bool(o, 'dup'),
        qos: q,
        retain: bool(o, 'retain'),
        topic: str(o, 'topic'),
        payload: buf(o.payload),
      };
      if (q > 0) p.packetId = num(o, 'messageId');
      return withProps(p);
    }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp': {
      const type = o.cmd.toUpperCase() as 'PUBACK' | 'PUBREC' | 'PUBREL' | 'PUBCOMP';
      const p: AckPacket<typeof type> = { type, packetId: num(o, 'messageId') };
      if (v5) p.reasonCode = typeof o.reasonCode === 'number' ? o.reasonCode : 0;
      return withProps(p);
    }
    case 'subscribe': {
      const subs = (o.subscriptions as Record<string, unknown>[]).map((s): Subscription => {
        const sub: Subscription = { topicFilter: String(s.topic), qos: qos(s.qos) };
        if (v5) {
          sub.noLocal = s.nl === true;
          sub.retainAsPublished = s.rap === true;
          const rh = s.rh ?? 0;
          if (rh !== 0 && rh !== 1 && rh !== 2) throw new Error(`bad retain handling ${String(rh)}`);
          sub.retainHandling = rh;
        }
        return sub;
      });
      return withProps({ type: 'SUBSCRIBE', packetId: num(o, 'messageId'), subscriptions: subs });
    }
    case 'suback':
      return withProps({ type: 'SUBACK', packetId: num(o, 'messageId'), reasonCodes: numbers(o.granted) });
    case 'unsubscribe':
      return withProps({
        type: 'UNSUBSCRIBE',
        packetId: num(o, 'messageId'),
        topicFilters: (o.unsubscriptions as unknown[]).map(String),
      });
    case 'unsuback':
      return withProps({ type: 'UNSUBACK', packetId: num(o, 'messageId'), reasonCodes: numbers(o.granted) });
    case 'pingreq':
      return { type: 'PINGREQ' };
    case 'pingresp':
      return { type: 'PINGRESP' };
    case 'disconnect': {
      const p: Packet = { type: 'DISCONNECT' };
      if (v5) p.reasonCode = typeof o.reasonCode === 'number' ? o.reasonCode : 0;
      return withProps(p);
    }
    case 'auth':
      return withProps({ type: 'AUTH', reasonCode: typeof o.reasonCode === 'number' ? o.reasonCode : 0 });
    default:
      throw new Error(`mqtt-packet: unknown cmd ${o.cmd}`);
  }
}

/** mqtt-packet's encoding of `p`. */
export function mpGenerate(p: Packet, version: ProtocolVersion): Buffer {
  const obj = toMqttPacket(p, version) as unknown as Parameters<typeof mqtt.generate>[0];
  return mqtt.generate(obj, { protocolVersion: version });
}

/** Parses `bytes` with a fresh mqtt-packet parser; throws its error, if any. */
export function mpParse(bytes: Buffer, version: ProtocolVersion): Packet[] {
  const parser = mqtt.parser({ protocolVersion: version });
  const out: Packet[] = [];
  let error: unknown;
  parser.on('packet', (o: unknown) => out.push(fromMqttPacket(o as MpObject, version)));
  parser.on('error', (e: unknown) => {
    error ??= e;
  });
  const left = parser.parse(bytes);
  if (error !== undefined) throw error;
  if (left !== 0) throw new Error(`mqtt-packet left ${left} bytes unparsed`);
  return out;
}

/**
 * The canonical form of a packet for comparisons across codecs: absent and empty property lists
 * are the same; v5 acks, DISCONNECT and AUTH without a reason code mean 0; subscription options
 * default to false/false/0 in v5; fields a version does not have are dropped.
 */
export function canonical(p: Packet, version: ProtocolVersion): Packet {
  const v5 = version === 5;
  const props = (x: Properties | undefined): Properties | undefined => {
    if (!v5 || x === undefined) return undefined;
    const out: Record<string, unknown> = {};
    let any = false;
    for (const info of PROPERTIES) {
      const value = x[info.key];
      if (value === undefined) continue;
      out[info.key] = Buffer.isBuffer(value) ? Buffer.from(value) : value;
      any = true;
    }
    return any ? (out as Properties) : undefined;
  };
  // Drops undefined fields. Typed loosely: this only rebuilds packets the switch below has narrowed.
  const clean = (o: Record<string, unknown>): Packet => {
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
    return o as unknown as Packet;
  };
  switch (p.type) {
    case 'CONNECT': {
      const cv5 = p.protocolVersion === 5;
      return clean({
        type: 'CONNECT',
        protocolName: p.protocolName ?? (p.protocolVersion === 3 ? 'MQIsdp' : 'MQTT'),
        protocolVersion: p.protocolVersion,
        clean: p.clean,
        keepalive: p.keepalive,
        clientId: p.clientId,
        will: p.will
          ? clean({
              topic: p.will.topic,
              payload: Buffer.from(p.will.payload),
              qos: p.will.qos,
              retain: p.will.retain,
              properties: cv5 ? props(p.will.properties) : undefined,
            })
          : undefined,
        username: p.username,
        password: p.password === undefined ? undefined : Buffer.from(p.password),
        properties: cv5 ? props(p.properties) : undefined,
      });
    }
    case 'CONNACK':
      return clean({
        type: 'CONNACK',
        sessionPresent: p.sessionPresent,
        reasonCode: p.reasonCode,
        properties: props(p.properties),
      });
    case 'PUBLISH':
      return clean({
        type: 'PUBLISH',
        dup: p.dup,
        qos: p.qos,
        retain: p.retain,
        topic: p.topic,
        packetId: p.qos > 0 ? p.packetId : undefined,
        payload: Buffer.from(p.payload),
        properties: props(p.properties),
      });
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return clean({
        type: p.type,
        packetId: p.packetId,
        reasonCode: v5 ? (p.reasonCode ?? 0) : undefined,
        properties: props(p.properties),
      });
    case 'SUBSCRIBE':
      return clean({
        type: 'SUBSCRIBE',
        packetId: p.packetId,
        subscriptions: p.subscriptions.map((s) =>
          v5
            ? {
                topicFilter: s.topicFilter,
                qos: s.qos,
                noLocal: s.noLocal ?? false,
                retainAsPublished: s.retainAsPublished ?? false,
                retainHandling: s.retainHandling ?? 0,
              }
            : { topicFilter: s.topicFilter, qos: s.qos },
        ),
        properties: props(p.properties),
      });
    case 'SUBACK':
      return clean({
        type: 'SUBACK',
        packetId: p.packetId,
        reasonCodes: [...p.reasonCodes],
        properties: props(p.properties),
      });
    case 'UNSUBSCRIBE':
      return clean({
        type: 'UNSUBSCRIBE',
        packetId: p.packetId,
        topicFilters: [...p.topicFilters],
        properties: props(p.properties),
      });
    case 'UNSUBACK':
      return clean({
        type: 'UNSUBACK',
        packetId: p.packetId,
        reasonCodes: v5 ? [...p.reasonCodes] : [],
        properties: props(p.properties),
      });
    case 'PINGREQ':
    case 'PINGRESP':
      return { type: p.type };
    case 'DISCONNECT':
      return clean({
        type: 'DISCONNECT',
        reasonCode: v5 ? (p.reasonCode ?? 0) : undefined,
        properties: props(p.properties),
      });
    case 'AUTH':
      return clean({ type: 'AUTH', reasonCode: p.reasonCode ?? 0, properties: props(p.properties) });
    default: {
      const never: never = p;
      throw new Error(`unknown packet ${JSON.stringify(never)}`);
    }
  }
}
