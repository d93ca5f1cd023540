import { ALL_PACKET_TYPES } from './constants.js';
import { EncodeError } from './errors.js';
import type { Reader } from './reader.js';
import type { PacketTypeName, Properties } from './types.js';
import {
  binarySize,
  MAX_VARINT,
  stringSize,
  varintSize,
  writeBinary,
  writeString,
  writeU16,
  writeU32,
  writeVarint,
} from './writer.js';

/** Wire types of MQTT 5 properties (5.0 section 1.5). */
export type PropertyType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

/** Where a property may appear: a packet type, or 'WILL' for the will properties in CONNECT. */
export type PropertyPlace = PacketTypeName | 'WILL';

export interface PropertyInfo {
  id: number;
  /** The field name in `Properties` (camelCase of the spec name; plural for repeatable ones). */
  key: keyof Properties;
  /** The spec's name, e.g. 'Message Expiry Interval'. */
  name: string;
  /** The kebab-case name used on the command line (`-D publish message-expiry-interval 60`). */
  flag: string;
  type: PropertyType;
  places: readonly PropertyPlace[];
  /** May appear more than once somewhere (User Property; Subscription Identifier in PUBLISH). */
  repeatable: boolean;
  /** The places where it may appear more than once; a repeat anywhere else is a Protocol Error. */
  repeatableIn: readonly PropertyPlace[];
  /** For byte properties whose only legal values are 0 and 1 (shown and parsed as yes/no). */
  boolean?: boolean;
  // Value rules decodeProperties checks; a breach is a Protocol Error (0x82) at the value's offset.
  /** Only 0 and 1 are legal: the boolean properties, and Maximum QoS (5.0 3.2.2.3.4). */
  zeroOrOne: boolean;
  /** 0 is not a legal value: Receive Maximum, Topic Alias, Maximum Packet Size, Subscription Identifier. */
  nonZero: boolean;
  /** The value is a Topic Name, so a wildcard in it is an error citing this rule id (Response Topic). */
  noWildcards?: string;
}

const ACKS: readonly PropertyPlace[] = ['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'];

interface PropertyRules {
  /** true: wherever it may appear; a list: only in those places. */
  repeatable?: true | readonly PropertyPlace[];
  boolean?: boolean;
  zeroOrOne?: boolean;
  nonZero?: boolean;
  noWildcards?: string;
}

function p(
  id: number,
  key: keyof Properties,
  name: string,
  type: PropertyType,
  places: readonly PropertyPlace[],
  rules: PropertyRules = {},
): PropertyInfo {
  const flag = name.toLowerCase().replace(/ /g, '-');
  const repeatableIn = rules.repeatable === true ? places : (rules.repeatable ?? []);
  return {
    id,
    key,
    name,
    flag,
    type,
    places,
    repeatable: repeatableIn.length > 0,
    repeatableIn,
    boolean: rules.boolean,
    zeroOrOne: rules.boolean === true || rules.zeroOrOne === true,
    nonZero: rules.nonZero ?? false,
    noWildcards: rules.noWildcards,
  };
}

/** MQTT 5.0 table 2-4: all 27 properties. This one table drives decode, encode and size. */
export const PROPERTIES: readonly PropertyInfo[] = [
  p(0x01, 'payloadFormatIndicator', 'Payload Format Indicator', 'byte', ['PUBLISH', 'WILL'], {
    boolean: true,
  }),
  p(0x02, 'messageExpiryInterval', 'Message Expiry Interval', 'u32', ['PUBLISH', 'WILL']),
  p(0x03, 'contentType', 'Content Type', 'string', ['PUBLISH', 'WILL']),
  p(0x08, 'responseTopic', 'Response Topic', 'string', ['PUBLISH', 'WILL'], { noWildcards: 'MQTT-3.3.2-14' }),
  p(0x09, 'correlationData', 'Correlation Data', 'binary', ['PUBLISH', 'WILL']),
  // Repeatable in PUBLISH (one per matching subscription), once in SUBSCRIBE.
  p(0x0b, 'subscriptionIdentifiers', 'Subscription Identifier', 'varint', ['PUBLISH', 'SUBSCRIBE'], {
    repeatable: ['PUBLISH'],
    nonZero: true,
  }),
  p(0x11, 'sessionExpiryInterval', 'Session Expiry Interval', 'u32', ['CONNECT', 'CONNACK', 'DISCONNECT']),
  p(0x12, 'assignedClientIdentifier', 'Assigned Client Identifier', 'string', ['CONNACK']),
  p(0x13, 'serverKeepAlive', 'Server Keep Alive', 'u16', ['CONNACK']),
  p(0x15, 'authenticationMethod', 'Authentication Method', 'string', ['CONNECT', 'CONNACK', 'AUTH']),
  p(0x16, 'authenticationData', 'Authentication Data', 'binary', ['CONNECT', 'CONNACK', 'AUTH']),
  p(0x17, 'requestProblemInformation', 'Request Problem Information', 'byte', ['CONNECT'], { boolean: true }),
  p(0x18, 'willDelayInterval', 'Will Delay Interval', 'u32', ['WILL']),
  p(0x19, 'requestResponseInformation', 'Request Response Information', 'byte', ['CONNECT'], {
    boolean: true,
  }),
  p(0x1a, 'responseInformation', 'Response Information', 'string', ['CONNACK']),
  p(0x1c, 'serverReference', 'Server Reference', 'string', ['CONNACK', 'DISCONNECT']),
  p(0x1f, 'reasonString', 'Reason String', 'string', [
    'CONNACK',
    ...ACKS,
    'SUBACK',
    'UNSUBACK',
    'DISCONNECT',
    'AUTH',
  ]),
  p(0x21, 'receiveMaximum', 'Receive Maximum', 'u16', ['CONNECT', 'CONNACK'], { nonZero: true }),
  p(0x22, 'topicAliasMaximum', 'Topic Alias Maximum', 'u16', ['CONNECT', 'CONNACK']),
  p(0x23, 'topicAlias', 'Topic Alias', 'u16', ['PUBLISH'], { nonZero: true }),
  p(0x24, 'maximumQoS', 'Maximum QoS', 'byte', ['CONNACK'], { zeroOrOne: true }),
  p(0x25, 'retainAvailable', 'Retain Available', 'byte', ['CONNACK'], { boolean: true }),
  p(
    0x26,
    'userProperties',
    'User Property',
    'pair',
    [
      'CONNECT',
      'CONNACK',
      'PUBLISH',
      'WILL',
      ...ACKS,
      'SUBSCRIBE',
      'SUBACK',
      'UNSUBSCRIBE',
      'UNSUBACK',
      'DISCONNECT',
      'AUTH',
    ],
    { repeatable: true },
  ),
  p(0x27, 'maximumPacketSize', 'Maximum Packet Size', 'u32', ['CONNECT', 'CONNACK'], { nonZero: true }),
  p(0x28, 'wildcardSubscriptionAvailable', 'Wildcard Subscription Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
  p(0x29, 'subscriptionIdentifierAvailable', 'Subscription Identifier Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
  p(0x2a, 'sharedSubscriptionAvailable', 'Shared Subscription Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
];

/** Lookup by identifier: PROPERTY_BY_ID[0x26] is User Property. Sparse. */
export const PROPERTY_BY_ID: readonly (PropertyInfo | undefined)[] = (() => {
  const byId: (PropertyInfo | undefined)[] = new Array(256).fill(undefined);
  for (const info of PROPERTIES) byId[info.id] = info;
  return byId;
})();

/** Lookup by `Properties` key, spec name or flag name ('user-property'), case-insensitive for names. */
export const PROPERTY_BY_NAME: ReadonlyMap<string, PropertyInfo> = (() => {
  const byName = new Map<string, PropertyInfo>();
  for (const info of PROPERTIES) {
    byName.set(info.key, info);
    byName.set(info.name.toLowerCase(), info);
    byName.set(info.flag, info);
  }
  return byName;
})();

// ---- decode, encode and size, all driven by the table above ----

const PLACES: readonly PropertyPlace[] = [...ALL_PACKET_TYPES, 'WILL'];
const PLACE_INDEX = new Map<PropertyPlace, number>(PLACES.map((place, i) => [place, i]));
/** Offset of each place's row in ALLOWED. */
const PLACE_BASE = Object.fromEntries(PLACES.map((place, i) => [place, i * 64])) as Record<
  PropertyPlace,
  number
>;

const ONCE = 1;
const REPEATABLE = 2;
/** ALLOWED[placeIndex * 64 + id]: 0 when property `id` may not appear in that place, else ONCE or REPEATABLE. */
const ALLOWED = (() => {
  const table = new Uint8Array(PLACES.length * 64);
  for (const info of PROPERTIES) {
    for (const place of info.places) table[PLACE_INDEX.get(place)! * 64 + info.id] = ONCE;
    for (const place of info.repeatableIn) table[PLACE_INDEX.get(place)! * 64 + info.id] = REPEATABLE;
  }
  return table;
})();

const BY_KEY: ReadonlyMap<string, PropertyInfo> = new Map(PROPERTIES.map((info) => [info.key, info]));

/** Can property `info` appear in `place`? */
export function propertyAllowed(info: PropertyInfo, place: PropertyPlace): boolean {
  return ALLOWED[PLACE_INDEX.get(place)! * 64 + info.id] !== 0;
}

function placeLabel(place: PropertyPlace): string {
  return place === 'WILL' ? 'the will properties' : place;
}

/**
 * Reads a property block (length, then properties) at the reader's position. Returns undefined
 * for an empty block. Checks: known identifier, allowed in `place`, not repeated unless repeatable,
 * the block's length within the packet, and value ranges the spec makes a Protocol Error.
 */
export function decodeProperties(r: Reader, place: PropertyPlace): Properties | undefined {
  const placeBase = PLACE_BASE[place];
  const prevSection = r.section;
  r.section = 'properties';
  const lenAt = r.pos;
  const len = r.varint('property length');
  if (len === 0) {
    r.section = prevSection;
    return undefined;
  }
  const end = r.pos + len;
  if (end > r.end) {
    const left = r.end - r.pos;
    r.fatal(
      `property length ${len} overruns the packet (${left} byte${left === 1 ? '' : 's'} remain${left === 1 ? 's' : ''})`,
      lenAt,
    );
  }
  const outerEnd = r.end;
  r.end = end;
  const props: Properties = {};
  const bag = props as Record<string, unknown>;
  let seenLo = 0;
  let seenHi = 0;
  while (r.pos < end) {
    const at = r.pos;
    const id = r.varint('property identifier');
    const info = id < 64 ? PROPERTY_BY_ID[id] : undefined;
    if (info === undefined) {
      r.fatal(`unknown property identifier 0x${id.toString(16).padStart(2, '0')}`, at);
    }
    const allowed = ALLOWED[placeBase + id];
    if (allowed === 0) {
      r.malformed(`${info.name} (0x${hex2(id)}) is not allowed in ${placeLabel(place)}`, at);
    }
    const seen = id < 32 ? seenLo & (1 << id) : seenHi & (1 << (id - 32));
    if (seen !== 0 && allowed !== REPEATABLE) {
      r.protocol(`${info.name} (0x${hex2(id)}) appears more than once`, at);
    }
    if (id < 32) seenLo |= 1 << id;
    else seenHi |= 1 << (id - 32);
    const name = info.name;
    switch (info.type) {
      case 'byte': {
        const v = r.u8(name);
        if (v > 1 && info.zeroOrOne) r.protocol(`${name} must be 0 or 1, not ${v}`, at + 1);
        bag[info.key] = v;
        break;
      }
      case 'u16': {
        const v = r.u16(name);
        if (v === 0 && info.nonZero) r.protocol(`${name} must not be 0`, at + 1);
        bag[info.key] = v;
        break;
      }
      case 'u32': {
        const v = r.u32(name);
        if (v === 0 && info.nonZero) r.protocol(`${name} must not be 0`, at + 1);
        bag[info.key] = v;
        break;
      }
      case 'varint': {
        const v = r.varint(name);
        if (v === 0 && info.nonZero) r.protocol(`${name} must not be 0`, at + 1);
        const list = bag[info.key] as number[] | undefined;
        if (list === undefined) bag[info.key] = [v];
        else list.push(v);
        break;
      }
      case 'string': {
        const s = r.string(name);
        if (info.noWildcards !== undefined) {
          const w = wildcardAt(s);
          // The offset is exact for ASCII names.
          if (w >= 0) {
            r.protocol(
              `${name} '${s}' contains the wildcard '${s[w]}'`,
              r.pos - s.length + w,
              info.noWildcards,
            );
          }
        }
        bag[info.key] = s;
        break;
      }
      case 'binary':
        bag[info.key] = r.binary(name);
        break;
      case 'pair': {
        // A receiver's limit (DecodeOptions.maxUserProperties), not a spec rule: each pair costs
        // far more memory than its 5 bytes on the wire. Counted per packet.
        if (++r.userProperties > r.maxUserProperties) {
          r.fatal(`more than ${r.maxUserProperties} user properties`, at, undefined, 0x97);
        }
        const k = r.string(`${name} key`);
        const v = r.string(`${name} value`);
        const list = bag[info.key] as [string, string][] | undefined;
        if (list === undefined) bag[info.key] = [[k, v]];
        else list.push([k, v]);
        break;
      }
    }
  }
  r.end = outerEnd;
  r.section = prevSection;
  return props;
}

function wildcardAt(s: string): number {
  const plus = s.indexOf('+');
  const hash = s.indexOf('#');
  return plus < 0 ? hash : hash < 0 ? plus : Math.min(plus, hash);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/**
 * Bytes the properties take on the wire, without the length prefix. Throws EncodeError for a
 * property not allowed in `place`, or a value out of range for its type.
 */
export function propertiesSize(props: Properties | undefined, place: PropertyPlace): number {
  if (props === undefined) return 0;
  const placeBase = PLACE_BASE[place];
  let size = 0;
  const bag = props as Record<string, unknown>;
  for (const key in bag) {
    const value = bag[key];
    if (value === undefined) continue;
    const info = BY_KEY.get(key);
    if (info === undefined) throw new EncodeError(`unknown property '${key}'`);
    if (ALLOWED[placeBase + info.id] === 0) {
      throw new EncodeError(`${info.name} is not allowed in ${placeLabel(place)}`);
    }
    size += valueSize(info, value);
  }
  return size;
}

function valueSize(info: PropertyInfo, value: unknown): number {
  switch (info.type) {
    case 'byte':
      checkInt(info, value, 0xff);
      return 2;
    case 'u16':
      checkInt(info, value, 0xffff);
      return 3;
    case 'u32':
      checkInt(info, value, 0xffff_ffff);
      return 5;
    case 'varint': {
      let size = 0;
      for (const v of asArray<number>(info, value)) {
        checkInt(info, v, MAX_VARINT);
        size += 1 + varintSize(v);
      }
      return size;
    }
    case 'string':
      if (typeof value !== 'string') throw new EncodeError(`${info.name} must be a string`);
      return 1 + stringSize(value, info.name);
    case 'binary':
      if (!(value instanceof Uint8Array)) throw new EncodeError(`${info.name} must be a Buffer`);
      return 1 + binarySize(value, info.name);
    case 'pair': {
      let size = 0;
      for (const pair of asArray<[string, string]>(info, value)) {
        if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
          throw new EncodeError(`${info.name} entries must be [key, value] string pairs`);
        }
        size += 1 + stringSize(pair[0], `${info.name} key`) + stringSize(pair[1], `${info.name} value`);
      }
      return size;
    }
  }
}

function asArray<T>(info: PropertyInfo, value: unknown): T[] {
  if (!Array.isArray(value)) throw new EncodeError(`${info.name} must be an array`);
  return value as T[];
}

function checkInt(info: PropertyInfo, value: unknown, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new EncodeError(`${info.name} must be an integer from 0 to ${max}, not ${String(value)}`);
  }
}

/** Bytes the property block takes on the wire: its length prefix and the properties (propertiesSize). */
export function propertyBlockSize(props: Properties | undefined, place: PropertyPlace): number {
  const size = propertiesSize(props, place);
  return varintSize(size) + size;
}

/**
 * Writes a property block (length prefix, then the properties) into a buffer sized with
 * propertyBlockSize; returns the new position. The length is found by writing: the properties go
 * one byte past `pos`, room for the one-byte prefix of a block under 128 bytes (nearly all), and
 * a longer block is moved up by the extra prefix bytes, which the sizing left room for.
 */
export function writeProperties(buf: Buffer, pos: number, props: Properties | undefined): number {
  if (props === undefined) {
    buf[pos] = 0;
    return pos + 1;
  }
  const start = pos + 1;
  const end = writePropertyList(buf, start, props);
  const size = end - start;
  if (size < 128) {
    buf[pos] = size;
    return end;
  }
  const prefix = varintSize(size);
  buf.copyWithin(pos + prefix, start, end);
  writeVarint(buf, pos, size);
  return end + prefix - 1;
}

/** Writes the properties (checked by propertiesSize), without the length prefix. */
function writePropertyList(buf: Buffer, pos: number, props: Properties): number {
  const bag = props as Record<string, unknown>;
  for (const key in bag) {
    const value = bag[key];
    if (value === undefined) continue;
    const info = BY_KEY.get(key)!;
    // A repeatable property's value is the list of its occurrences.
    if (info.repeatable) for (const one of value as unknown[]) pos = writeProperty(buf, pos, info, one);
    else pos = writeProperty(buf, pos, info, value);
  }
  return pos;
}

/** One property: its identifier, then its value in its wire type. */
function writeProperty(buf: Buffer, pos: number, info: PropertyInfo, value: unknown): number {
  buf[pos++] = info.id;
  switch (info.type) {
    case 'byte':
      buf[pos] = value as number;
      return pos + 1;
    case 'u16':
      return writeU16(buf, pos, value as number);
    case 'u32':
      return writeU32(buf, pos, value as number);
    case 'varint':
      return writeVarint(buf, pos, value as number);
    case 'string':
      return writeString(buf, pos, value as string);
    case 'binary':
      return writeBinary(buf, pos, value as Uint8Array);
    case 'pair': {
      const [k, v] = value as [string, string];
      return writeString(buf, writeString(buf, pos, k), v);
    }
  }
}
