/**
 * The one packet renderer: `mq decode`, and the broker's and client's `--trace`, show packets the
 * same way.
 *
 *   formatPacketLine(packet, version)   one compact line (traces)
 *   formatPacketFull(packet, version)   a block: flags with their meaning, every field, properties
 *                                       by spec name, reason codes by name, payload as text or hex
 *   formatByteMap(notes, bytes)         offset / bytes / section / field / value table (--bytes)
 *
 * Colour is optional: pass `colors` (a chalk instance from output.ts, which is colourless when the
 * stream is not a TTY or NO_COLOR is set). Without it, plain text.
 *
 * Every string from the packet is quoted as JSON and escaped for a terminal (escape.ts) before it is
 * coloured, so the output is safe to print whatever a peer sent. Secrets (a CONNECT's password,
 * Authentication Data) are never shown, in any renderer: only their length (`secret()`).
 */
import { formatReasonCode, PACKET_TYPE_CODE } from '../protocol/constants.js';
import { decode } from '../protocol/decode.js';
import { PROPERTY_BY_NAME } from '../protocol/properties.js';
import type {
  ConnectPacket,
  FieldNote,
  Packet,
  Properties,
  ProtocolVersion,
  Subscription,
} from '../protocol/types.js';
import { escapeForTerminal, isPrintableText, safeJson } from './escape.js';

/** The subset of a chalk instance the renderer uses (a ChalkInstance fits). */
export interface Paint {
  bold(text: string): string;
  dim(text: string): string;
  cyan(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  magenta(text: string): string;
}

const plain = (text: string): string => text;
const NO_PAINT: Paint = {
  bold: plain,
  dim: plain,
  cyan: plain,
  green: plain,
  yellow: plain,
  red: plain,
  magenta: plain,
};

export interface RenderOptions {
  colors?: Paint;
  /** The remaining length from the fixed header, shown by formatPacketFull when given. */
  remainingLength?: number;
  /** Most payload characters (text) or bytes (hex) shown; default 64 on a line, 1024 in a block. */
  maxPayload?: number;
  /** The fixed header flags as received (bits 3-0), when they may differ from what the packet implies. */
  flags?: number;
  /** Indentation of a block's fields (default '  '). */
  indent?: string;
}

/** Options, or just the colours (a chalk instance) as the third argument. */
function optionsOf(arg: RenderOptions | Paint | undefined): RenderOptions {
  if (arg === undefined) return {};
  if (typeof (arg as Paint).bold === 'function') return { colors: arg as Paint };
  return arg as RenderOptions;
}

/** The options, and the paint to use (none when not given). */
function paintOf(arg: RenderOptions | Paint | undefined): [RenderOptions, Paint] {
  const options = optionsOf(arg);
  return [options, options.colors ?? NO_PAINT];
}

/** A reason code by name for `type`: failures (0x80 and up) red, successes as `ok` paints them. */
type ReasonText = (value: number) => string;
function reasonText(
  type: Packet['type'],
  version: ProtocolVersion,
  c: Paint,
  ok: (text: string) => string,
): ReasonText {
  return (value) => {
    const text = formatReasonCode(value, type, version);
    return value >= 0x80 ? c.red(text) : ok(text);
  };
}

const VERSION_LABEL: Record<ProtocolVersion, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };
const QOS_MEANING = ['at most once', 'at least once', 'exactly once', 'reserved'];
const RETAIN_HANDLING = [
  'send retained on subscribe',
  'send retained only if new subscription',
  'no retained',
];

/** A string as JSON, cut to `max` characters, safe on a terminal (what JSON leaves raw escaped too). */
function quote(s: string, max = 200): string {
  if (s.length <= max) return safeJson(JSON.stringify(s));
  return `${safeJson(JSON.stringify(s.slice(0, max)))}...`;
}

/** Properties that hold secrets: shown by length only, like the CONNECT password. */
const SECRET_PROPERTIES = new Set<keyof Properties>(['authenticationData']);

/**
 * How every renderer shows a secret (the CONNECT password, Authentication Data): its length only,
 * `(6 bytes, masked)`. Traces, decode's blocks, lines and byte maps all use it.
 */
export function secret(bytes: Uint8Array): string {
  return `(${plural(bytes.length, 'byte')}, masked)`;
}

function hex(bytes: Uint8Array, max: number, spaced = false): string {
  const shown = bytes.subarray(0, max);
  let out = Buffer.from(shown.buffer, shown.byteOffset, shown.byteLength).toString('hex');
  if (spaced) out = (out.match(/../g) ?? []).join(' ');
  return bytes.length > max ? `${out}...` : out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `"hello"` for text, `hex:00ff...` otherwise. */
function binary(bytes: Buffer, max: number): string {
  if (bytes.length === 0) return '""';
  if (isPrintableText(bytes)) {
    const text = bytes.toString('utf8');
    return quote(text, max);
  }
  return `hex:${hex(bytes, max)}`;
}

/** Fixed header bits 3-0 as the packet implies them. */
export function fixedHeaderFlags(packet: Packet): number {
  switch (packet.type) {
    case 'PUBLISH':
      return (packet.dup ? 8 : 0) | (packet.qos << 1) | (packet.retain ? 1 : 0);
    case 'PUBREL':
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE':
      return 2;
    default:
      return 0;
  }
}

function propValueShort(key: keyof Properties, value: unknown): string {
  if (Buffer.isBuffer(value)) return SECRET_PROPERTIES.has(key) ? secret(value) : binary(value, 32);
  if (typeof value === 'string') return quote(value, 60);
  if (key === 'userProperties' && Array.isArray(value)) {
    return `[${(value as [string, string][]).map(([k, v]) => `${quote(k, 30)}=${quote(v, 30)}`).join(', ')}]`;
  }
  if (Array.isArray(value)) return `[${value.join(',')}]`;
  return String(value);
}

function propsShort(props: Properties | undefined): string {
  if (props === undefined) return '';
  const parts: string[] = [];
  for (const key of Object.keys(props) as (keyof Properties)[]) {
    const value = props[key];
    if (value === undefined) continue;
    parts.push(`${key}=${propValueShort(key, value)}`);
  }
  return parts.length === 0 ? '' : ` props{${parts.join(' ')}}`;
}

function subShort(s: Subscription, version: ProtocolVersion): string {
  let opts = `q${s.qos}`;
  if (version === 5) {
    if (s.noLocal) opts += ' nl';
    if (s.retainAsPublished) opts += ' rap';
    if (s.retainHandling) opts += ` rh=${s.retainHandling}`;
  }
  return `${quote(s.topicFilter, 60)}(${opts})`;
}

/**
 * One compact line: `PUBLISH qos=1 id=7 retain topic="a/b" payload="hello" (5 B)
 * props{messageExpiryInterval=60}`. The payload is cut (64 characters by default).
 */
export function formatPacketLine(
  packet: Packet,
  version: ProtocolVersion,
  optionsOrColors?: RenderOptions | Paint,
): string {
  const [options, c] = paintOf(optionsOrColors);
  const max = options.maxPayload ?? 64;
  const name = c.bold(packet.type);
  const rc = reasonText(packet.type, version, c, (text) => text);
  switch (packet.type) {
    case 'CONNECT': {
      let s = `${name} v${VERSION_LABEL[packet.protocolVersion] ?? packet.protocolVersion} clientId=${quote(packet.clientId, 60)}`;
      s += packet.clean ? (packet.protocolVersion === 5 ? ' cleanStart' : ' cleanSession') : ' noClean';
      if (packet.bridge === true) s += ' bridge';
      s += ` keepalive=${packet.keepalive}`;
      if (packet.username !== undefined) s += ` username=${quote(packet.username, 40)}`;
      if (packet.password !== undefined) s += ` password=${secret(packet.password)}`;
      if (packet.will) {
        const w = packet.will;
        s += ` will{topic=${quote(w.topic, 60)} qos=${w.qos}${w.retain ? ' retain' : ''} payload=${binary(w.payload, 32)}${propsShort(w.properties)}}`;
      }
      return s + c.dim(propsShort(packet.properties));
    }
    case 'CONNACK':
      return `${name}${packet.sessionPresent ? ' sessionPresent' : ''} ${rc(packet.reasonCode)}${c.dim(propsShort(packet.properties))}`;
    case 'PUBLISH': {
      let s = `${name}${packet.dup ? ' dup' : ''} qos=${packet.qos}`;
      if (packet.packetId !== undefined) s += ` id=${packet.packetId}`;
      if (packet.retain) s += ` ${c.yellow('retain')}`;
      s += ` topic=${c.cyan(quote(packet.topic, 120))}`;
      s += ` payload=${binary(packet.payload, max)} (${packet.payload.length} B)`;
      return s + c.dim(propsShort(packet.properties));
    }
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP': {
      const reason = packet.reasonCode !== undefined && version === 5 ? ` ${rc(packet.reasonCode)}` : '';
      return `${name} id=${packet.packetId}${reason}${c.dim(propsShort(packet.properties))}`;
    }
    case 'SUBSCRIBE':
      return `${name} id=${packet.packetId} ${packet.subscriptions.map((s) => subShort(s, version)).join(' ')}${c.dim(propsShort(packet.properties))}`;
    case 'SUBACK':
    case 'UNSUBACK': {
      const codes = packet.reasonCodes.map((code) => rc(code)).join(', ');
      return `${name} id=${packet.packetId}${codes ? ` [${codes}]` : ''}${c.dim(propsShort(packet.properties))}`;
    }
    case 'UNSUBSCRIBE':
      return `${name} id=${packet.packetId} ${packet.topicFilters.map((f) => quote(f, 60)).join(' ')}${c.dim(propsShort(packet.properties))}`;
    case 'PINGREQ':
    case 'PINGRESP':
      return name;
    case 'DISCONNECT':
    case 'AUTH': {
      const reason = packet.reasonCode !== undefined ? ` ${rc(packet.reasonCode)}` : '';
      return `${name}${reason}${c.dim(propsShort(packet.properties))}`;
    }
    default: {
      const never: never = packet;
      return String((never as { type: unknown }).type);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Full block

const SECONDS_KEYS = new Set<keyof Properties>([
  'messageExpiryInterval',
  'sessionExpiryInterval',
  'willDelayInterval',
  'serverKeepAlive',
]);

function propValueFull(key: keyof Properties, value: unknown, max: number): string {
  if (Buffer.isBuffer(value) && SECRET_PROPERTIES.has(key)) return secret(value);
  if (Buffer.isBuffer(value)) {
    return isPrintableText(value)
      ? `${quote(value.toString('utf8'), max)} (${value.length} bytes)`
      : `hex:${hex(value, max)} (${value.length} bytes)`;
  }
  if (typeof value === 'string') return quote(value, max);
  if (typeof value === 'number') {
    if (key === 'sessionExpiryInterval' && value === 0xffffffff) return `${value} (never expires)`;
    if (SECONDS_KEYS.has(key)) return `${value} s`;
    if (key === 'payloadFormatIndicator')
      return `${value} (${value === 1 ? 'UTF-8 text' : value === 0 ? 'unspecified bytes' : 'invalid'})`;
    const info = PROPERTY_BY_NAME.get(key);
    if (info?.boolean) return `${value} (${value === 1 ? 'yes' : value === 0 ? 'no' : 'invalid'})`;
    return String(value);
  }
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

function propertyLines(props: Properties, indent: string, c: Paint, max: number): string[] {
  const rows: [string, string][] = [];
  for (const key of Object.keys(props) as (keyof Properties)[]) {
    const value = props[key];
    if (value === undefined) continue;
    const info = PROPERTY_BY_NAME.get(key);
    const label = info ? `${info.name} (0x${info.id.toString(16).padStart(2, '0')})` : key;
    if (key === 'userProperties' && Array.isArray(value)) {
      for (const [k, v] of value as [string, string][])
        rows.push([label, `${quote(k, max)} = ${quote(v, max)}`]);
    } else if (key === 'subscriptionIdentifiers' && Array.isArray(value)) {
      for (const id of value as number[]) rows.push([label, String(id)]);
    } else {
      rows.push([label, propValueFull(key, value, max)]);
    }
  }
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, v]) => `${indent}${c.dim(l.padEnd(width))}  ${v}`);
}

/** The lines of a full packet block: `label  value` fields, property lists, lists of items. */
class Block {
  readonly lines: string[] = [];
  constructor(
    private readonly indent: string,
    readonly c: Paint,
    readonly max: number,
  ) {}
  field(label: string, value: string): void {
    this.lines.push(`${this.indent}${this.c.dim(label.padEnd(18))} ${value}`);
  }
  properties(label: string, props: Properties | undefined, version: ProtocolVersion): void {
    if (version !== 5) return;
    if (props === undefined) {
      this.field(label, 'none');
      return;
    }
    const lines = propertyLines(props, `${this.indent}  `, this.c, this.max);
    this.field(label, lines.length === 0 ? 'none' : `(${lines.length})`);
    this.lines.push(...lines);
  }
  /** SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK: the packet id, then the properties. */
  idAndProperties(packet: { packetId: number; properties?: Properties }, version: ProtocolVersion): void {
    this.field('packet id', String(packet.packetId));
    this.properties('properties', packet.properties, version);
  }
  /** `label (n)`, then each item on its own line. */
  list(label: string, items: string[]): void {
    this.field(label, `(${items.length})`);
    for (const item of items) this.lines.push(`${this.indent}  ${item}`);
  }
}

function payloadFull(bytes: Buffer, max: number): string {
  if (bytes.length === 0) return '(empty)';
  if (isPrintableText(bytes))
    return `${quote(bytes.toString('utf8'), max)} (${plural(bytes.length, 'byte')}, UTF-8)`;
  return `hex:${hex(bytes, max)} (${plural(bytes.length, 'byte')}, binary)`;
}

/**
 * A multi-line block: the packet type, the fixed header flags with their meaning, every field,
 * every property by spec name, reason codes by name, the payload as text when it is UTF-8, else
 * hex. No trailing newline.
 */
export function formatPacketFull(
  packet: Packet,
  version: ProtocolVersion,
  optionsOrColors?: RenderOptions | Paint,
): string {
  const [options, c] = paintOf(optionsOrColors);
  const b = new Block(options.indent ?? '  ', c, options.maxPayload ?? 1024);
  const code = PACKET_TYPE_CODE[packet.type];
  const rc = reasonText(packet.type, version, c, (text) => c.green(text));
  const head = `${c.bold(packet.type)} ${c.dim(`(type ${code}, MQTT ${VERSION_LABEL[version]})`)}`;
  flagsField(b, packet, options.flags ?? fixedHeaderFlags(packet));
  if (options.remainingLength !== undefined) b.field('remaining length', String(options.remainingLength));
  packetFields(b, packet, version, rc);
  return [head, ...b.lines].join('\n');
}

/** The fixed header flags: PUBLISH's dup, QoS and retain; for the others, whether the reserved bits are right. */
function flagsField(b: Block, packet: Packet, flags: number): void {
  const c = b.c;
  if (packet.type === 'PUBLISH') {
    const q = (flags >> 1) & 3;
    const meaning = q === 3 ? c.red('reserved: malformed') : QOS_MEANING[q];
    b.field(
      'flags',
      `0x${flags.toString(16)}  dup=${(flags >> 3) & 1} qos=${q} (${meaning}) retain=${flags & 1}`,
    );
  } else {
    const expected = fixedHeaderFlags(packet);
    const ok = flags === expected;
    const text = `0x${flags.toString(16)} (reserved${ok ? '' : `, must be ${expected.toString(2).padStart(4, '0')}`})`;
    b.field('flags', ok ? text : c.red(text));
  }
}

/** Every field of the variable header and payload, in wire order. */
function packetFields(b: Block, packet: Packet, version: ProtocolVersion, rc: ReasonText): void {
  const c = b.c;
  switch (packet.type) {
    case 'CONNECT':
      connectFields(b, packet);
      break;
    case 'CONNACK':
      b.field('session present', packet.sessionPresent ? '1 (yes)' : '0 (no)');
      b.field(version === 5 ? 'reason code' : 'return code', rc(packet.reasonCode));
      b.properties('properties', packet.properties, version);
      break;
    case 'PUBLISH':
      b.field(
        'topic',
        c.cyan(packet.topic === '' ? '"" (empty: set by the Topic Alias)' : quote(packet.topic)),
      );
      if (packet.packetId !== undefined) b.field('packet id', String(packet.packetId));
      b.properties('properties', packet.properties, version);
      b.field('payload', payloadFull(packet.payload, b.max));
      break;
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      b.field('packet id', String(packet.packetId));
      reasonFields(b, packet, version, rc);
      break;
    case 'SUBSCRIBE':
      b.idAndProperties(packet, version);
      b.list(
        'subscriptions',
        packet.subscriptions.map(
          (s) => `${c.cyan(quote(s.topicFilter))}  ${subscriptionOptions(s, version)}`,
        ),
      );
      break;
    case 'SUBACK':
    case 'UNSUBACK':
      b.idAndProperties(packet, version);
      if (packet.type === 'SUBACK' || version === 5) b.list('reason codes', packet.reasonCodes.map(rc));
      break;
    case 'UNSUBSCRIBE':
      b.idAndProperties(packet, version);
      b.list(
        'topic filters',
        packet.topicFilters.map((f) => c.cyan(quote(f))),
      );
      break;
    case 'PINGREQ':
    case 'PINGRESP':
      break;
    case 'DISCONNECT':
    case 'AUTH':
      reasonFields(b, packet, version, rc);
      break;
    default: {
      const never: never = packet;
      void never;
    }
  }
}

/** v5 acks, DISCONNECT and AUTH: the reason code (Success when the wire omits it) and properties. */
function reasonFields(
  b: Block,
  packet: { reasonCode?: number; properties?: Properties },
  version: ProtocolVersion,
  rc: ReasonText,
): void {
  if (version !== 5) return;
  b.field('reason code', packet.reasonCode === undefined ? `${rc(0)} (omitted)` : rc(packet.reasonCode));
  b.properties('properties', packet.properties, version);
}

/** A subscription's options: qos, and for v5 no local, retain as published, retain handling. */
function subscriptionOptions(s: Subscription, version: ProtocolVersion): string {
  let opts = `qos ${s.qos}`;
  if (version === 5) {
    if (s.noLocal) opts += ', no local';
    if (s.retainAsPublished) opts += ', retain as published';
    const rh = s.retainHandling ?? 0;
    opts += `, retain handling ${rh} (${RETAIN_HANDLING[rh] ?? 'invalid'})`;
  }
  return opts;
}

/** CONNECT: protocol name and level, the connect flags by name, then the payload fields. */
function connectFields(b: Block, packet: ConnectPacket): void {
  const w = packet.will;
  b.field('protocol name', quote(packet.protocolName ?? (packet.protocolVersion === 3 ? 'MQIsdp' : 'MQTT')));
  b.field(
    'protocol level',
    packet.bridge === true
      ? `0x${(packet.protocolVersion | 0x80).toString(16)} (MQTT ${VERSION_LABEL[packet.protocolVersion] ?? '?'} + 0x80: a bridge, Mosquitto's try_private)`
      : `${packet.protocolVersion} (MQTT ${VERSION_LABEL[packet.protocolVersion] ?? '?'})`,
  );
  const cf =
    (packet.username !== undefined ? 0x80 : 0) |
    (packet.password !== undefined ? 0x40 : 0) |
    (w?.retain ? 0x20 : 0) |
    ((w?.qos ?? 0) << 3) |
    (w ? 0x04 : 0) |
    (packet.clean ? 0x02 : 0);
  const named: string[] = [];
  if (packet.username !== undefined) named.push('username');
  if (packet.password !== undefined) named.push('password');
  if (w) named.push(`will (qos ${w.qos}${w.retain ? ', retain' : ''})`);
  if (packet.clean) named.push(packet.protocolVersion === 5 ? 'clean start' : 'clean session');
  b.field('connect flags', `0x${cf.toString(16).padStart(2, '0')}  ${named.join(', ') || 'none'}`);
  b.field('keep alive', `${packet.keepalive} s${packet.keepalive === 0 ? ' (off)' : ''}`);
  b.properties('properties', packet.properties, packet.protocolVersion);
  b.field(
    'client id',
    packet.clientId === '' ? '"" (empty: the server assigns one)' : quote(packet.clientId),
  );
  if (w) {
    b.properties('will properties', w.properties, packet.protocolVersion);
    b.field('will topic', b.c.cyan(quote(w.topic)));
    b.field('will payload', payloadFull(w.payload, b.max));
  }
  if (packet.username !== undefined) b.field('username', quote(packet.username));
  if (packet.password !== undefined) b.field('password', secret(packet.password));
}

// ---------------------------------------------------------------------------------------------
// Byte map

/** The byte map's names of the fields that hold secrets (the codec's field names). */
const SECRET_FIELDS = new Set(['password', PROPERTY_BY_NAME.get('authenticationData')?.name ?? '']);

/** Does the packet carry a secret (a password, Authentication Data)? */
function hasSecret(packet: Packet): boolean {
  if (packet.type === 'CONNECT' && packet.password !== undefined) return true;
  return 'properties' in packet && packet.properties?.authenticationData !== undefined;
}

/**
 * A packet's bytes as spaced hex for --trace=hex, the bytes of its secrets (password,
 * Authentication Data) written as `**`: the same masking rule as the rendered packet.
 */
export function traceHex(raw: Buffer, packet: Packet, version: ProtocolVersion): string {
  const digits = (raw.toString('hex').match(/../g) ?? []) as string[];
  if (hasSecret(packet)) {
    const notes: FieldNote[] = [];
    try {
      decode(raw, version, { annotate: notes, errors: [] });
    } catch {
      return `(${plural(raw.length, 'byte')}, not shown: they hold a secret)`;
    }
    for (const note of notes) {
      if (!SECRET_FIELDS.has(note.field)) continue;
      for (let i = note.offset; i < note.offset + note.length && i < digits.length; i++) digits[i] = '**';
    }
  }
  return digits.join(' ');
}

/**
 * The annotated byte map of `mq decode --bytes`: one row per field (offset, bytes, section, field,
 * value), bytes no note covers shown as such, long fields cut to their first 8 bytes. No trailing
 * newline.
 */
export function formatByteMap(
  notes: readonly FieldNote[],
  bytes: Buffer,
  optionsOrColors?: { colors?: Paint } | Paint,
): string {
  const c = optionsOf(optionsOrColors).colors ?? NO_PAINT;
  const sorted = [...notes].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const rows: [string, string, string, string, string][] = [];
  const showBytes = (offset: number, length: number): string => {
    const end = Math.min(bytes.length, offset + length);
    if (offset >= end) return length > 0 ? '(past the end)' : '';
    const slice = bytes.subarray(offset, Math.min(end, offset + 8));
    let s = hex(slice, 8, true);
    if (end - offset > 8) s += ` ... (${end - offset} B)`;
    return s;
  };
  let covered = 0;
  for (const note of sorted) {
    if (note.offset > covered) {
      rows.push([String(covered), showBytes(covered, note.offset - covered), '', '(not decoded)', '']);
    }
    const hidden = SECRET_FIELDS.has(note.field);
    rows.push([
      String(note.offset),
      hidden
        ? secret(bytes.subarray(note.offset, note.offset + note.length))
        : showBytes(note.offset, note.length),
      note.section,
      note.field,
      hidden ? '' : escapeForTerminal(note.value),
    ]);
    covered = Math.max(covered, note.offset + note.length);
  }
  if (covered < bytes.length) {
    rows.push([String(covered), showBytes(covered, bytes.length - covered), '', '(not decoded)', '']);
  }
  const header: [string, string, string, string, string] = ['offset', 'bytes', 'section', 'field', 'value'];
  const widths = [0, 1, 2, 3].map((i) =>
    Math.max(header[i]?.length ?? 0, ...rows.map((r) => r[i]?.length ?? 0)),
  );
  const line = (r: readonly string[], paint: (s: string) => string = plain): string =>
    [
      (r[0] ?? '').padStart(widths[0] ?? 0),
      paint((r[1] ?? '').padEnd(widths[1] ?? 0)),
      (r[2] ?? '').padEnd(widths[2] ?? 0),
      (r[3] ?? '').padEnd(widths[3] ?? 0),
      r[4] ?? '',
    ]
      .join('  ')
      .trimEnd();
  return [c.dim(line(header)), ...rows.map((r) => line(r, c.yellow))].join('\n');
}
