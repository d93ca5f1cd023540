/**
 * Packet <-> JSON object, for `mq decode --json` and `mq encode` (and any command that prints
 * packets as JSON). Field names are camelCase after the spec: `type`, `dup`, `qos`, `retain`,
 * `remainingLength`, `topic`, `packetId`, `properties` {`messageExpiryInterval`, `userProperties`:
 * [[k, v], ...], ...}, `reasonCode`, `payload` + `payloadEncoding` ('utf8' | 'hex' | 'base64').
 * Binary properties (correlationData, authenticationData) and the CONNECT password carry their own
 * `...Encoding` field the same way.
 *
 * Round trip: packetToJson keeps what decides the bytes (a reason code present on the wire, an empty
 * property list present on the wire), so `decode --json | encode` gives back the same bytes as far
 * as the codec encodes them canonically.
 */
import { ALL_PACKET_TYPES } from '../protocol/constants.js';
import { encode } from '../protocol/encode.js';
import { PROPERTY_BY_NAME, type PropertyInfo } from '../protocol/properties.js';
import type {
  ConnectPacket,
  Packet,
  PacketTypeName,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  Subscription,
  Will,
} from '../protocol/types.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { isPrintableText } from './escape.js';
import { jsonDepth, MAX_JSON_DEPTH } from './values.js';

export type BinaryEncoding = 'utf8' | 'hex' | 'base64';
export type PacketJson = Record<string, unknown>;

export interface ToJsonOptions {
  version: ProtocolVersion;
  /** The remaining length read from the fixed header (shown, ignored when encoding). */
  remainingLength?: number;
  /** How binary values that are not UTF-8 text are written (default 'hex'). */
  binaryEncoding?: 'hex' | 'base64';
}

const VERSION_LABELS: Record<ProtocolVersion, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

/**
 * `3.1`, `3.1.1`, `5` (and `5.0`, mosquitto's `31`, `311`, `mqttv31`, `mqttv311`, `mqttv5`, or the
 * protocol levels 3, 4, 5) -> protocol level; undefined when not a version.
 */
export function parseProtocolVersion(value: unknown): ProtocolVersion | undefined {
  if (value === 3 || value === 4 || value === 5) return value;
  if (typeof value !== 'string') return undefined;
  switch (value.trim().toLowerCase()) {
    case '3.1':
    case '31':
    case 'mqttv31':
    case '3':
      return 3;
    case '3.1.1':
    case '311':
    case 'mqttv311':
    case '4':
      return 4;
    case '5':
    case '5.0':
    case '50':
    case 'mqttv5':
    case 'mqttv50':
      return 5;
    default:
      return undefined;
  }
}

/** '3.1', '3.1.1', '5.0'. */
export function versionLabel(version: ProtocolVersion): string {
  return VERSION_LABELS[version];
}

function binaryToJson(bytes: Buffer, fallback: 'hex' | 'base64'): [string, BinaryEncoding] {
  if (isPrintableText(bytes)) return [bytes.toString('utf8'), 'utf8'];
  return [bytes.toString(fallback), fallback];
}

function propertiesToJson(props: Properties, fallback: 'hex' | 'base64'): PacketJson {
  const out: PacketJson = {};
  for (const key of Object.keys(props) as (keyof Properties)[]) {
    const value = props[key];
    if (value === undefined) continue;
    if (Buffer.isBuffer(value)) {
      const [text, encoding] = binaryToJson(value, fallback);
      out[key] = text;
      out[`${key}Encoding`] = encoding;
    } else if (key === 'userProperties' && props.userProperties !== undefined) {
      out[key] = props.userProperties.map(([k, v]) => [k, v]);
    } else if (Array.isArray(value)) {
      out[key] = [...value];
    } else {
      out[key] = value;
    }
  }
  return out;
}

function subscriptionToJson(s: Subscription, version: ProtocolVersion): PacketJson {
  const out: PacketJson = { topicFilter: s.topicFilter, qos: s.qos };
  if (version === 5) {
    out.noLocal = s.noLocal ?? false;
    out.retainAsPublished = s.retainAsPublished ?? false;
    out.retainHandling = s.retainHandling ?? 0;
  }
  return out;
}

function willToJson(will: Will, fallback: 'hex' | 'base64'): PacketJson {
  const [payload, payloadEncoding] = binaryToJson(will.payload, fallback);
  const out: PacketJson = { topic: will.topic, qos: will.qos, retain: will.retain, payload, payloadEncoding };
  if (will.properties !== undefined) out.properties = propertiesToJson(will.properties, fallback);
  return out;
}

/** The JSON object for one packet (decode --json). Key order: type, version, flags, then fields. */
export function packetToJson(packet: Packet, options: ToJsonOptions): PacketJson {
  const { version } = options;
  const fallback = options.binaryEncoding ?? 'hex';
  const out: PacketJson = { type: packet.type, version: versionLabel(version) };
  const tail: PacketJson = {};
  switch (packet.type) {
    case 'CONNECT': {
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.protocolName = packet.protocolName ?? (packet.protocolVersion === 3 ? 'MQIsdp' : 'MQTT');
      out.protocolVersion = packet.protocolVersion;
      if (packet.bridge === true) out.bridge = true;
      out.clean = packet.clean;
      out.keepalive = packet.keepalive;
      out.clientId = packet.clientId;
      if (packet.will !== undefined) out.will = willToJson(packet.will, fallback);
      if (packet.username !== undefined) out.username = packet.username;
      if (packet.password !== undefined) {
        const [text, encoding] = binaryToJson(packet.password, fallback);
        out.password = text;
        out.passwordEncoding = encoding;
      }
      break;
    }
    case 'CONNACK':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.sessionPresent = packet.sessionPresent;
      out.reasonCode = packet.reasonCode;
      break;
    case 'PUBLISH': {
      out.dup = packet.dup;
      out.qos = packet.qos;
      out.retain = packet.retain;
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.topic = packet.topic;
      if (packet.packetId !== undefined) out.packetId = packet.packetId;
      const [payload, payloadEncoding] = binaryToJson(packet.payload, fallback);
      tail.payload = payload;
      tail.payloadEncoding = payloadEncoding;
      break;
    }
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.packetId = packet.packetId;
      if (packet.reasonCode !== undefined) out.reasonCode = packet.reasonCode;
      break;
    case 'SUBSCRIBE':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.packetId = packet.packetId;
      tail.subscriptions = packet.subscriptions.map((s) => subscriptionToJson(s, version));
      break;
    case 'SUBACK':
    case 'UNSUBACK':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.packetId = packet.packetId;
      tail.reasonCodes = [...packet.reasonCodes];
      break;
    case 'UNSUBSCRIBE':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      out.packetId = packet.packetId;
      tail.topicFilters = [...packet.topicFilters];
      break;
    case 'PINGREQ':
    case 'PINGRESP':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      break;
    case 'DISCONNECT':
    case 'AUTH':
      if (options.remainingLength !== undefined) out.remainingLength = options.remainingLength;
      if (packet.reasonCode !== undefined) out.reasonCode = packet.reasonCode;
      break;
    default: {
      const never: never = packet;
      throw new Error(`unknown packet type ${String((never as { type: unknown }).type)}`);
    }
  }
  if ('properties' in packet && packet.properties !== undefined) {
    out.properties = propertiesToJson(packet.properties, fallback);
  }
  return Object.assign(out, tail);
}

// ---------------------------------------------------------------------------------------------
// JSON -> Packet

/** Keys decode --json adds around a packet (where it was found); encode ignores them. */
const CONTEXT_KEYS = new Set([
  'offset',
  'length',
  'client',
  'direction',
  'time',
  'line',
  'note',
  'remainingLength',
]);

const PACKET_TYPES = ALL_PACKET_TYPES;

/** Fields each packet type takes (besides type, version and the context keys). */
const FIELDS: Record<PacketTypeName, readonly string[]> = {
  CONNECT: [
    'protocolName',
    'protocolVersion',
    'bridge',
    'clean',
    'keepalive',
    'clientId',
    'will',
    'username',
    'password',
    'passwordEncoding',
    'properties',
  ],
  CONNACK: ['sessionPresent', 'reasonCode', 'properties'],
  PUBLISH: ['dup', 'qos', 'retain', 'topic', 'packetId', 'payload', 'payloadEncoding', 'properties'],
  PUBACK: ['packetId', 'reasonCode', 'properties'],
  PUBREC: ['packetId', 'reasonCode', 'properties'],
  PUBREL: ['packetId', 'reasonCode', 'properties'],
  PUBCOMP: ['packetId', 'reasonCode', 'properties'],
  SUBSCRIBE: ['packetId', 'subscriptions', 'properties'],
  SUBACK: ['packetId', 'reasonCodes', 'properties'],
  UNSUBSCRIBE: ['packetId', 'topicFilters', 'properties'],
  UNSUBACK: ['packetId', 'reasonCodes', 'properties'],
  PINGREQ: [],
  PINGRESP: [],
  DISCONNECT: ['reasonCode', 'properties'],
  AUTH: ['reasonCode', 'properties'],
};

function fail(path: string, message: string): never {
  throw new UsageError(`${path}: ${message}`);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(value);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function int(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(path, `expected an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

function str(value: unknown, path: string): string {
  if (typeof value !== 'string') fail(path, `expected a string, got ${describe(value)}`);
  return value;
}

function bool(value: unknown, path: string, fallback?: boolean): boolean {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'boolean') fail(path, `expected true or false, got ${describe(value)}`);
  return value;
}

function qos(value: unknown, path: string, fallback?: QoS): QoS {
  if (value === undefined && fallback !== undefined) return fallback;
  return int(value, path, 0, 2) as QoS;
}

/** A binary value from its text and encoding ('utf8' by default). */
export function binaryFromJson(value: unknown, encoding: unknown, path: string): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0);
  const text = str(value, path);
  const enc = encoding ?? 'utf8';
  switch (enc) {
    case 'utf8':
    case 'utf-8':
      return Buffer.from(text, 'utf8');
    case 'hex': {
      const compact = text.replace(/\s+/g, '');
      const bad = compact.search(/[^0-9a-fA-F]/);
      if (bad >= 0) fail(path, `not hex: '${compact[bad]}' at character ${bad + 1}`);
      if (compact.length % 2 !== 0) fail(path, `odd number of hex digits (${compact.length})`);
      return Buffer.from(compact, 'hex');
    }
    case 'base64': {
      const compact = text.replace(/\s+/g, '');
      const bad = compact.search(/[^A-Za-z0-9+/=_-]/);
      if (bad >= 0) fail(path, `not base64: '${compact[bad]}' at character ${bad + 1}`);
      return Buffer.from(compact, 'base64');
    }
    default:
      return fail(`${path}Encoding`, `expected 'utf8', 'hex' or 'base64', got ${describe(enc)}`);
  }
}

function propertyValue(info: PropertyInfo, obj: Record<string, unknown>, path: string): unknown {
  const value = obj[info.key];
  const at = `${path}.${info.key}`;
  switch (info.type) {
    case 'byte':
      return int(value, at, 0, 255);
    case 'u16':
      return int(value, at, 0, 65_535);
    case 'u32':
      return int(value, at, 0, 4_294_967_295);
    case 'varint':
      if (info.repeatable) {
        const list = Array.isArray(value) ? value : [value];
        return list.map((v, i) => int(v, `${at}[${i}]`, 0, 268_435_455));
      }
      return int(value, at, 0, 268_435_455);
    case 'string':
      return str(value, at);
    case 'binary':
      return binaryFromJson(value, obj[`${info.key}Encoding`], at);
    case 'pair': {
      if (!Array.isArray(value)) fail(at, `expected a list of [key, value] pairs, got ${describe(value)}`);
      return value.map((pair, i) => {
        if (Array.isArray(pair) && pair.length === 2) {
          return [str(pair[0], `${at}[${i}][0]`), str(pair[1], `${at}[${i}][1]`)];
        }
        if (isObject(pair) && typeof pair.key === 'string' && typeof pair.value === 'string') {
          return [pair.key, pair.value];
        }
        return fail(`${at}[${i}]`, `expected a [key, value] pair of strings, got ${describe(pair)}`);
      });
    }
    default: {
      const never: never = info.type;
      return fail(at, `unknown property type ${String(never)}`);
    }
  }
}

function propertiesFromJson(value: unknown, path: string): Properties {
  if (!isObject(value)) fail(path, `expected an object, got ${describe(value)}`);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key.endsWith('Encoding')) {
      const base = key.slice(0, -'Encoding'.length);
      if (PROPERTY_BY_NAME.get(base)?.type === 'binary') continue;
    }
    const info = PROPERTY_BY_NAME.get(key);
    if (info === undefined || info.key !== key) {
      const hint = info ? ` (did you mean '${info.key}'?)` : '';
      fail(`${path}.${key}`, `unknown property${hint}`);
    }
    out[info.key] = propertyValue(info, value, path);
  }
  return out as Properties;
}

function checkKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  path: string,
  extra: string[] = [],
): void {
  for (const key of Object.keys(obj)) {
    if (key === 'type' || key === 'version' || CONTEXT_KEYS.has(key)) continue;
    if (allowed.includes(key) || extra.includes(key)) continue;
    fail(
      `${path}.${key}`,
      `unknown field (fields of ${path}: ${[...allowed, ...extra].join(', ') || 'none'})`,
    );
  }
}

function willFromJson(value: unknown, path: string): Will {
  if (!isObject(value)) fail(path, `expected an object, got ${describe(value)}`);
  checkKeys(value, ['topic', 'qos', 'retain', 'payload', 'payloadEncoding', 'properties'], path);
  const will: Will = {
    topic: str(value.topic, `${path}.topic`),
    payload: binaryFromJson(value.payload, value.payloadEncoding, `${path}.payload`),
    qos: qos(value.qos, `${path}.qos`, 0),
    retain: bool(value.retain, `${path}.retain`, false),
  };
  if (value.properties !== undefined)
    will.properties = propertiesFromJson(value.properties, `${path}.properties`);
  return will;
}

function subscriptionFromJson(value: unknown, path: string): Subscription {
  if (typeof value === 'string') return { topicFilter: value, qos: 0 };
  if (!isObject(value)) fail(path, `expected an object {topicFilter, qos}, got ${describe(value)}`);
  checkKeys(value, ['topicFilter', 'qos', 'noLocal', 'retainAsPublished', 'retainHandling'], path);
  const sub: Subscription = {
    topicFilter: str(value.topicFilter, `${path}.topicFilter`),
    qos: qos(value.qos, `${path}.qos`, 0),
  };
  if (value.noLocal !== undefined) sub.noLocal = bool(value.noLocal, `${path}.noLocal`);
  if (value.retainAsPublished !== undefined) {
    sub.retainAsPublished = bool(value.retainAsPublished, `${path}.retainAsPublished`);
  }
  if (value.retainHandling !== undefined) {
    sub.retainHandling = int(value.retainHandling, `${path}.retainHandling`, 0, 2) as 0 | 1 | 2;
  }
  return sub;
}

function list(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, `expected a list, got ${describe(value)}`);
  return value;
}

/** `{ properties }` from the object's "properties" field, or nothing when it has none. */
function propsFromJson(obj: Record<string, unknown>, path: string): { properties?: Properties } {
  return obj.properties === undefined
    ? {}
    : { properties: propertiesFromJson(obj.properties, `${path}.properties`) };
}

/** A CONNECT: its protocolVersion field, else `version` (the object's or the default), else 5. */
function connectFromJson(obj: Record<string, unknown>, version: ProtocolVersion | undefined): ConnectPacket {
  const path = 'CONNECT';
  const level = obj.protocolVersion === undefined ? undefined : parseProtocolVersion(obj.protocolVersion);
  if (obj.protocolVersion !== undefined && level === undefined) {
    fail(`${path}.protocolVersion`, `expected 3, 4 or 5, got ${describe(obj.protocolVersion)}`);
  }
  const connect: ConnectPacket = {
    type: 'CONNECT',
    protocolVersion: level ?? version ?? 5,
    clean: bool(obj.clean, `${path}.clean`, true),
    keepalive: obj.keepalive === undefined ? 60 : int(obj.keepalive, `${path}.keepalive`, 0, 65_535),
    clientId: obj.clientId === undefined ? '' : str(obj.clientId, `${path}.clientId`),
    ...propsFromJson(obj, path),
  };
  if (obj.protocolName !== undefined) connect.protocolName = str(obj.protocolName, `${path}.protocolName`);
  if (bool(obj.bridge, `${path}.bridge`, false)) connect.bridge = true;
  if (obj.will !== undefined) connect.will = willFromJson(obj.will, `${path}.will`);
  if (obj.username !== undefined) connect.username = str(obj.username, `${path}.username`);
  if (obj.password !== undefined) {
    connect.password = binaryFromJson(obj.password, obj.passwordEncoding, `${path}.password`);
  }
  return connect;
}

/** A PUBLISH: QoS 1 and 2 need a packetId. */
function publishFromJson(obj: Record<string, unknown>): PublishPacket {
  const path = 'PUBLISH';
  const q = qos(obj.qos, `${path}.qos`, 0);
  const packet: PublishPacket = {
    type: 'PUBLISH',
    dup: bool(obj.dup, `${path}.dup`, false),
    qos: q,
    retain: bool(obj.retain, `${path}.retain`, false),
    topic: str(obj.topic, `${path}.topic`),
    payload: binaryFromJson(obj.payload, obj.payloadEncoding, `${path}.payload`),
    ...propsFromJson(obj, path),
  };
  if (obj.packetId !== undefined) packet.packetId = int(obj.packetId, `${path}.packetId`, 0, 65_535);
  else if (q > 0) fail(`${path}.packetId`, `a QoS ${q} PUBLISH needs a packetId (1 to 65535)`);
  return packet;
}

/**
 * The packet a JSON object describes, and the protocol version to encode it for (its `version`
 * field; a CONNECT's `protocolVersion`; else `defaultVersion`, else 5). Throws UsageError naming the
 * field for anything wrong.
 */
export function jsonToPacket(
  obj: unknown,
  defaultVersion?: ProtocolVersion,
): { packet: Packet; version: ProtocolVersion } {
  if (!isObject(obj)) fail('packet', `expected a JSON object, got ${describe(obj)}`);
  if (obj.errors !== undefined) {
    fail('errors', 'this object records a malformed packet (it has errors); there is no packet to encode');
  }
  const typeName = typeof obj.type === 'string' ? obj.type.toUpperCase() : obj.type;
  if (typeof typeName !== 'string' || !(PACKET_TYPES as readonly string[]).includes(typeName)) {
    fail('type', `expected a packet type (${PACKET_TYPES.join(', ')}), got ${describe(obj.type)}`);
  }
  const type = typeName as PacketTypeName;
  const path = type;
  checkKeys(obj, FIELDS[type], path);

  let version: ProtocolVersion | undefined;
  if (obj.version !== undefined) {
    version = parseProtocolVersion(obj.version);
    if (version === undefined)
      fail('version', `expected '3.1', '3.1.1' or '5.0', got ${describe(obj.version)}`);
  }
  const props = (): { properties?: Properties } => propsFromJson(obj, path);
  const listOf = <T>(field: string, read: (value: unknown, path: string) => T): T[] =>
    list(obj[field], `${path}.${field}`).map((v, i) => read(v, `${path}.${field}[${i}]`));
  const optionalReason = (): { reasonCode?: number } =>
    obj.reasonCode === undefined ? {} : { reasonCode: int(obj.reasonCode, `${path}.reasonCode`, 0, 255) };
  const packetId = (): number => int(obj.packetId, `${path}.packetId`, 0, 65_535);

  let packet: Packet;
  switch (type) {
    case 'CONNECT': {
      const connect = connectFromJson(obj, version ?? defaultVersion);
      version ??= connect.protocolVersion;
      packet = connect;
      break;
    }
    case 'CONNACK':
      packet = {
        type,
        sessionPresent: bool(obj.sessionPresent, `${path}.sessionPresent`, false),
        reasonCode: obj.reasonCode === undefined ? 0 : int(obj.reasonCode, `${path}.reasonCode`, 0, 255),
        ...props(),
      };
      break;
    case 'PUBLISH':
      packet = publishFromJson(obj);
      break;
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      packet = { type, packetId: packetId(), ...optionalReason(), ...props() } as Packet;
      break;
    case 'SUBSCRIBE':
      packet = {
        type,
        packetId: packetId(),
        subscriptions: listOf('subscriptions', subscriptionFromJson),
        ...props(),
      };
      break;
    case 'SUBACK':
    case 'UNSUBACK':
      packet = {
        type,
        packetId: packetId(),
        reasonCodes:
          obj.reasonCodes === undefined && type === 'UNSUBACK'
            ? []
            : listOf('reasonCodes', (c, at) => int(c, at, 0, 255)),
        ...props(),
      };
      break;
    case 'UNSUBSCRIBE':
      packet = {
        type,
        packetId: packetId(),
        topicFilters: listOf('topicFilters', str),
        ...props(),
      };
      break;
    case 'PINGREQ':
    case 'PINGRESP':
      packet = { type };
      break;
    case 'DISCONNECT':
    case 'AUTH':
      packet = { type, ...optionalReason(), ...props() };
      break;
    default: {
      const never: never = type;
      return fail('type', `unknown packet type ${String(never)}`);
    }
  }
  return { packet, version: version ?? defaultVersion ?? 5 };
}

// --- JSON text in, bytes out (mq encode) -----------------------------------------------------

/** The JSON values in `text`: one value (an object or a list of objects), or NDJSON lines. */
export function parseJsonInput(text: string): { value: unknown; where: string }[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('no JSON to encode');
  if (jsonDepth(trimmed) > MAX_JSON_DEPTH) {
    throw new CliError(
      `malformed input: the JSON nests more than ${MAX_JSON_DEPTH} levels deep (a packet needs 5)`,
      ExitCode.Malformed,
    );
  }
  try {
    const value: unknown = JSON.parse(trimmed);
    if (Array.isArray(value)) return value.map((v, i) => ({ value: v, where: `item ${i + 1}: ` }));
    return [{ value, where: '' }];
  } catch {
    // Not one value: NDJSON, one object a line.
  }
  const out: { value: unknown; where: string }[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    try {
      out.push({ value: JSON.parse(line), where: `line ${i + 1}: ` });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new UsageError(`line ${i + 1} is not JSON: ${reason}`);
    }
  }
  return out;
}

/** Encodes every packet the JSON describes; throws UsageError naming the packet and field. */
export function encodeJson(text: string, defaultVersion?: ProtocolVersion): Buffer[] {
  const out: Buffer[] = [];
  for (const { value, where } of parseJsonInput(text)) {
    let decoded: ReturnType<typeof jsonToPacket>;
    try {
      decoded = jsonToPacket(value, defaultVersion);
    } catch (err) {
      if (err instanceof UsageError) throw new UsageError(`${where}${err.message}`);
      throw err;
    }
    try {
      out.push(encode(decoded.packet, decoded.version));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new UsageError(`${where}cannot encode ${decoded.packet.type}: ${reason}`);
    }
  }
  return out;
}
