/**
 * `-D PACKET NAME VALUE`: any MQTT 5 property by its spec name, for the packet the client sends.
 * Names come from the codec's one property table (src/protocol/properties.ts): `user-property`,
 * `User Property` and `userProperties` all work. Each mistake is one UsageError.
 */
import { PROPERTY_BY_NAME, type Properties, type PropertyInfo } from '../protocol/index.js';
import type { PropertyPlace } from '../protocol/properties.js';
import { UsageError } from './errors.js';
import { BINARY_PROPERTY_LIMIT } from './io.js';
import { parseBinaryValue, parseInteger } from './values.js';

/** The packets `-D` can set properties on (what a client sends). */
export const PROPERTY_PACKETS = [
  'connect',
  'publish',
  'subscribe',
  'unsubscribe',
  'disconnect',
  'will',
] as const;
export type PropertyPacket = (typeof PROPERTY_PACKETS)[number];
export type PacketProperties = Record<PropertyPacket, Properties>;

const PLACE: Record<PropertyPacket, PropertyPlace> = {
  connect: 'CONNECT',
  publish: 'PUBLISH',
  subscribe: 'SUBSCRIBE',
  unsubscribe: 'UNSUBSCRIBE',
  disconnect: 'DISCONNECT',
  will: 'WILL',
};

export function emptyPacketProperties(): PacketProperties {
  return { connect: {}, publish: {}, subscribe: {}, unsubscribe: {}, disconnect: {}, will: {} };
}

/** The property table entry for a name as typed (`content-type`, `Content Type`, `contentType`). */
export function lookupProperty(name: string): PropertyInfo | undefined {
  return PROPERTY_BY_NAME.get(name) ?? PROPERTY_BY_NAME.get(name.toLowerCase().replace(/[\s_]+/g, '-'));
}

/** How many values follow the name: two for User Property (key, value), one otherwise. */
function arity(info: PropertyInfo): number {
  return info.type === 'pair' ? 2 : 1;
}

/**
 * Parses `-D` occurrences. Commander hands a variadic option over as one flat array
 * (`['publish', 'content-type', 'text/plain', 'connect', 'user-property', 'k', 'v']`); grouped
 * arrays (one per occurrence) work too.
 */
export async function parsePropertyFlags(
  values: readonly string[] | readonly string[][],
): Promise<PacketProperties> {
  const out = emptyPacketProperties();
  const flat: string[] = [];
  for (const v of values) {
    if (Array.isArray(v)) flat.push(...v);
    else flat.push(v as string);
  }
  let i = 0;
  while (i < flat.length) {
    const packet = flat[i]!;
    const name = flat[i + 1];
    const usage = 'expected -D PACKET NAME VALUE, e.g. -D publish content-type text/plain';
    if (!(PROPERTY_PACKETS as readonly string[]).includes(packet.toLowerCase())) {
      throw new UsageError(
        `-D: unknown packet '${packet}' (one of ${PROPERTY_PACKETS.join(', ')}); ${usage}`,
      );
    }
    if (name === undefined) throw new UsageError(`-D ${packet}: property name missing; ${usage}`);
    const info = lookupProperty(name);
    if (info === undefined) {
      throw new UsageError(
        `-D ${packet}: unknown property '${name}' (names as in the spec: ${knownNames(packet)})`,
      );
    }
    const n = arity(info);
    const args = flat.slice(i + 2, i + 2 + n);
    if (args.length < n) {
      throw new UsageError(
        `-D ${packet} ${name}: ${n === 2 ? 'needs a key and a value (-D publish user-property KEY VALUE)' : 'value missing'}`,
      );
    }
    await setProperty(
      out[packet.toLowerCase() as PropertyPacket],
      packet.toLowerCase() as PropertyPacket,
      info,
      args,
    );
    i += 2 + n;
  }
  return out;
}

function knownNames(packet: string): string {
  const place = PLACE[packet.toLowerCase() as PropertyPacket];
  const names = new Set<string>();
  for (const info of PROPERTY_BY_NAME.values()) {
    if (!info.places.includes(place)) continue;
    if (place === 'PUBLISH' && info.key === 'subscriptionIdentifiers') continue; // broker -> client only
    names.add(info.flag);
  }
  return [...names].join(', ');
}

const U32_MAX = 0xffffffff;

/**
 * Sets one property on `props` for `packet` from its command-line text value(s). Checks that the
 * property may appear in that packet and that the client may send it.
 */
export async function setProperty(
  props: Properties,
  packet: PropertyPacket,
  info: PropertyInfo,
  values: readonly string[],
): Promise<void> {
  const place = PLACE[packet];
  const label = `-D ${packet} ${info.flag}`;
  if (!info.places.includes(place)) {
    const allowed = info.places.map((p) => p.toLowerCase()).join(', ');
    throw new UsageError(`${label}: ${info.name} is not allowed in ${place} (only in ${allowed})`);
  }
  if (place === 'PUBLISH' && info.key === 'subscriptionIdentifiers') {
    throw new UsageError(
      `${label}: a client must not send a Subscription Identifier in PUBLISH [MQTT-3.3.4-6]`,
    );
  }
  const record = props as Record<string, unknown>;
  const text = values[0] ?? '';
  let value: unknown;
  switch (info.type) {
    case 'byte':
      value = info.boolean ? parseBooleanByte(text, label) : parseInteger(text, label, 0, 255);
      break;
    case 'u16':
      value = parseInteger(text, label, info.key === 'receiveMaximum' ? 1 : 0, 65535);
      break;
    case 'u32':
      value = text === 'never' || text === 'max' ? U32_MAX : parseInteger(text, label, 0, U32_MAX);
      break;
    case 'varint':
      value = parseInteger(text, label, 1, 268_435_455);
      break;
    case 'string':
      value = text;
      break;
    case 'binary':
      value = await parseBinaryValue(text, label, BINARY_PROPERTY_LIMIT);
      break;
    case 'pair':
      value = [text, values[1] ?? ''];
      break;
    default: {
      const never: never = info.type;
      throw new Error(`unknown property type ${String(never)}`);
    }
  }
  if (info.repeatable) {
    if (place === 'SUBSCRIBE' && info.key === 'subscriptionIdentifiers' && record[info.key] !== undefined) {
      throw new UsageError(`${label}: SUBSCRIBE carries at most one Subscription Identifier`);
    }
    const list = (record[info.key] as unknown[] | undefined) ?? [];
    list.push(value);
    record[info.key] = list;
    return;
  }
  if (record[info.key] !== undefined) {
    throw new UsageError(`${label}: given twice (${info.name} may appear only once in ${place})`);
  }
  record[info.key] = value;
}

function parseBooleanByte(text: string, label: string): number {
  const t = text.toLowerCase();
  if (t === '1' || t === 'true' || t === 'yes' || t === 'on') return 1;
  if (t === '0' || t === 'false' || t === 'no' || t === 'off') return 0;
  throw new UsageError(`${label}: '${text}' must be 0 or 1`);
}
