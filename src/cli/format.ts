/**
 * mosquitto_sub's `-F` output format, byte for byte where mosquitto is deterministic (checked against
 * mosquitto_sub 2.0 by test/interop/cli-format.test.ts):
 *
 *   %t topic   %p payload   %q QoS   %r retained (0/1)   %m message id   %l payload length
 *   %x / %X payload as lower / upper case hex   %j / %J JSON (payload quoted / embedded as JSON)
 *   %I ISO 8601 local time   %U unix time with nanoseconds   %%  a literal %
 *   v5 properties: %A topic alias  %C content type  %D correlation data  %E message expiry
 *                  %F payload format indicator  %P user properties (k:v k2:v2)
 *                  %R response topic  %S subscription identifier
 *   Flags, width and precision between % and the code: `-` left align, `0` zero pad, `%10t`,
 *   `%10.10t` (as mosquitto: width on A C E F I l m p R S t x X, precision on C I R t; a width on
 *   %p/%x/%X also cuts the payload to that many characters, as mosquitto does). Width and precision
 *   are at most FORMAT_MAX_WIDTH (65535): more is refused by formatProblem (mosquitto has no limit,
 *   and `%300000000t` would write 300 MB per message).
 *   `@X` is strftime's %X on the local time of arrival (`@Y-@m-@d @H:@M:@S`), `@N` nanoseconds,
 *   `@@` a literal @.
 *   Escapes: \n \t \r \v \a \e (ESC) \0 (NUL) \\.
 *
 * The output is bytes (payloads need not be text). Everything here is pure: the arrival time is
 * passed in. With `escape` (stdout is a terminal) what the codes print from the message (topic,
 * payload, properties, JSON) is escaped for a terminal (escape.ts); the format's own text, `\e`
 * included, is printed as written. Without it (a pipe or a file) the output is byte-exact, as
 * mosquitto_sub's.
 */
import { isUtf8 } from 'node:buffer';
import type { Properties, QoS } from '../protocol/types.js';
import { escapeBytesForTerminal, escapeForTerminal, safeJson } from './escape.js';

/** The parts of a received PUBLISH the formats read. */
export interface MessageView {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup?: boolean;
  packetId?: number;
  properties?: Properties;
}

/** When a message arrived: whole seconds since the epoch and the nanoseconds within that second. */
export interface Stamp {
  sec: number;
  nsec: number;
}

/** The current time as a Stamp (sub-millisecond resolution from the monotonic clock). */
export function now(): Stamp {
  const ms = performance.timeOrigin + performance.now();
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6)));
  return { sec, nsec };
}

/** ISO 8601 in UTC with microseconds: 2026-11-27T09:17:10.194779Z (mq's JSON timestamps). */
export function isoMicros(stamp: Stamp): string {
  const d = new Date(stamp.sec * 1000);
  const base = d.toISOString().slice(0, 19);
  return `${base}.${String(Math.floor(stamp.nsec / 1000)).padStart(6, '0')}Z`;
}

/** The result of formatting one message: the bytes, plus warnings for stderr (e.g. %J on non-JSON). */
export interface Formatted {
  bytes: Buffer;
  warnings: string[];
}

export type Formatter = (message: MessageView, stamp: Stamp) => Formatted;

// --- strftime (the @ codes) -------------------------------------------------------------------

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

const pad = (n: number, width: number, fill = '0') => String(n).padStart(width, fill);

function dayOfYear(d: Date): number {
  const start = new Date(d.getFullYear(), 0, 1);
  const a = Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
  const b = Date.UTC(start.getFullYear(), 0, 1);
  return Math.round((a - b) / 86_400_000) + 1; // 1..366
}

/** ISO 8601 week number and week-based year. */
function isoWeek(d: Date): { week: number; year: number } {
  const t = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return { week, year: t.getUTCFullYear() };
}

function tzOffset(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return `${sign}${pad(Math.floor(abs / 60), 2)}${pad(abs % 60, 2)}`;
}

let tzNameCache: { offset: number; name: string } | undefined;
function tzName(d: Date): string {
  const offset = d.getTimezoneOffset();
  if (tzNameCache?.offset === offset) return tzNameCache.name;
  let name = '';
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
      .formatToParts(d)
      .find((p) => p.type === 'timeZoneName');
    name = part?.value ?? '';
  } catch {
    name = '';
  }
  if (name === 'GMT' && offset === 0 && (process.env.TZ ?? 'UTC').toUpperCase().includes('UTC')) name = 'UTC';
  tzNameCache = { offset, name };
  return name;
}

/**
 * One strftime conversion (C/POSIX locale) on local time; `spec` is the character after `%`.
 * Unknown conversions are copied through as `%X`, as glibc does.
 */
export function strftime1(spec: string, d: Date): string {
  const H = d.getHours();
  const I = H % 12 === 0 ? 12 : H % 12;
  switch (spec) {
    case 'a':
      return DAYS[d.getDay()]!.slice(0, 3);
    case 'A':
      return DAYS[d.getDay()]!;
    case 'b':
    case 'h':
      return MONTHS[d.getMonth()]!.slice(0, 3);
    case 'B':
      return MONTHS[d.getMonth()]!;
    case 'c':
      return `${strftime1('a', d)} ${strftime1('b', d)} ${strftime1('e', d)} ${strftime1('T', d)} ${d.getFullYear()}`;
    case 'C':
      return pad(Math.floor(d.getFullYear() / 100), 2);
    case 'd':
      return pad(d.getDate(), 2);
    case 'D':
      return `${strftime1('m', d)}/${strftime1('d', d)}/${strftime1('y', d)}`;
    case 'e':
      return pad(d.getDate(), 2, ' ');
    case 'F':
      return `${d.getFullYear()}-${strftime1('m', d)}-${strftime1('d', d)}`;
    case 'g':
      return pad(isoWeek(d).year % 100, 2);
    case 'G':
      return String(isoWeek(d).year);
    case 'H':
      return pad(H, 2);
    case 'I':
      return pad(I, 2);
    case 'j':
      return pad(dayOfYear(d), 3);
    case 'k':
      return pad(H, 2, ' ');
    case 'l':
      return pad(I, 2, ' ');
    case 'm':
      return pad(d.getMonth() + 1, 2);
    case 'M':
      return pad(d.getMinutes(), 2);
    case 'n':
      return '\n';
    case 'p':
      return H < 12 ? 'AM' : 'PM';
    case 'P':
      return H < 12 ? 'am' : 'pm';
    case 'r':
      return `${strftime1('I', d)}:${strftime1('M', d)}:${strftime1('S', d)} ${strftime1('p', d)}`;
    case 'R':
      return `${strftime1('H', d)}:${strftime1('M', d)}`;
    case 's':
      return String(Math.floor(d.getTime() / 1000));
    case 'S':
      return pad(d.getSeconds(), 2);
    case 't':
      return '\t';
    case 'T':
      return `${strftime1('H', d)}:${strftime1('M', d)}:${strftime1('S', d)}`;
    case 'u':
      return String(d.getDay() || 7);
    case 'U':
      return pad(Math.floor((dayOfYear(d) - 1 + 7 - d.getDay()) / 7), 2);
    case 'V':
      return pad(isoWeek(d).week, 2);
    case 'w':
      return String(d.getDay());
    case 'W':
      return pad(Math.floor((dayOfYear(d) - 1 + 7 - ((d.getDay() + 6) % 7)) / 7), 2);
    case 'x':
      return strftime1('D', d);
    case 'X':
      return strftime1('T', d);
    case 'y':
      return pad(d.getFullYear() % 100, 2);
    case 'Y':
      return String(d.getFullYear());
    case 'z':
      return tzOffset(d);
    case 'Z':
      return tzName(d);
    case '%':
      return '%';
    default:
      return `%${spec}`;
  }
}

// --- JSON (%j, %J) -----------------------------------------------------------------------------

/** mosquitto's JSON names for the properties %j prints (others are not printed). */
const JSON_PROPERTY_NAMES: Partial<Record<keyof Properties, string>> = {
  payloadFormatIndicator: 'payload-format-indicator',
  messageExpiryInterval: 'message-expiry-interval',
  contentType: 'content-type',
  responseTopic: 'response-topic',
  correlationData: 'correlation-data',
  subscriptionIdentifiers: 'subscription-identifier',
  topicAlias: 'topic-alias',
};

/** A binary value as mosquitto's JSON shows it: a string when it is UTF-8 text, else an array of byte values. */
function jsonBinary(bytes: Buffer): string {
  if (isUtf8(bytes)) return JSON.stringify(bytes.toString('utf8'));
  return `[${Array.from(bytes).join(',')}]`;
}

function jsonProperties(props: Properties): string {
  const parts: string[] = [];
  let userIndex = -1;
  const users: string[] = [];
  for (const key of Object.keys(props) as (keyof Properties)[]) {
    const value = props[key];
    if (value === undefined) continue;
    if (key === 'userProperties' && props.userProperties !== undefined) {
      if (props.userProperties.length === 0) continue;
      userIndex = parts.length;
      parts.push('');
      for (const [k, v] of props.userProperties) users.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
      continue;
    }
    const name = JSON_PROPERTY_NAMES[key];
    if (name === undefined) continue;
    if (Buffer.isBuffer(value)) parts.push(`"${name}":${jsonBinary(value)}`);
    else if (Array.isArray(value)) for (const v of value) parts.push(`"${name}":${JSON.stringify(v)}`);
    else parts.push(`"${name}":${JSON.stringify(value)}`);
  }
  if (userIndex >= 0) parts[userIndex] = `"user-properties":{${users.join(',')}}`;
  return `{${parts.join(',')}}`;
}

/** mosquitto's %j timestamp: local time, microseconds, then a literal Z and the UTC offset (sic). */
function jsonTimestamp(stamp: Stamp): string {
  const d = new Date(stamp.sec * 1000);
  return `${strftime1('F', d)}T${strftime1('T', d)}.${pad(Math.floor(stamp.nsec / 1000), 6)}Z${tzOffset(d)}`;
}

/**
 * mosquitto_sub's %j (escaped = true: payload as a JSON string, or an array of bytes when it is
 * not UTF-8) and %J (escaped = false: the payload must itself be JSON; undefined when it is not).
 */
export function mosquittoJson(message: MessageView, stamp: Stamp, escaped: boolean): string | undefined {
  let payload: string;
  if (message.payload.length === 0) {
    payload = 'null';
  } else if (escaped) {
    payload = jsonBinary(message.payload);
  } else {
    try {
      payload = JSON.stringify(JSON.parse(message.payload.toString('utf8')));
    } catch {
      return undefined;
    }
    if (!isUtf8(message.payload)) return undefined;
  }
  let out = `{"tst":"${jsonTimestamp(stamp)}","topic":${JSON.stringify(message.topic)},"qos":${message.qos},"retain":${message.retain ? 1 : 0},"payloadlen":${message.payload.length}`;
  if (message.qos > 0) out += `,"mid":${message.packetId ?? 0}`;
  const props = message.properties;
  if (props !== undefined && Object.values(props).some((v) => v !== undefined)) {
    out += `,"properties":${jsonProperties(props)}`;
  }
  return `${out},"payload":${payload}}`;
}

// --- the format compiler --------------------------------------------------------------------------

interface Spec {
  code: string;
  align: '-' | '';
  pad: ' ' | '0';
  width: number;
  precision: number; // -1 = none
}

type Part =
  | { kind: 'text'; bytes: Buffer }
  | { kind: 'percent'; spec: Spec }
  | { kind: 'time'; code: string };

const ESCAPES: Record<string, string> = {
  '\\': '\\',
  '0': '\0',
  a: '\x07',
  e: '\x1b',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

/** The codes `-F` knows (for checking a format before connecting). */
export const FORMAT_CODES = '%ACDEFIjJlmPpqRrStUxX';

/** The largest width or precision of a `-F` code. */
export const FORMAT_MAX_WIDTH = 65_535;

/** A decimal number read digit by digit, held at FORMAT_MAX_WIDTH + 1 once it is over the limit. */
function addDigit(n: number, digit: string): number {
  return Math.min(n * 10 + (digit.charCodeAt(0) - 48), FORMAT_MAX_WIDTH + 1);
}

/**
 * Parses a format string the way mosquitto_sub does (including its edge cases: a trailing `%`, `@`
 * or `\` prints nothing; an unknown `%` code or `\` escape prints nothing).
 */
function parse(format: string): Part[] {
  const parts: Part[] = [];
  let text = '';
  const flush = () => {
    if (text !== '') parts.push({ kind: 'text', bytes: Buffer.from(text, 'utf8') });
    text = '';
  };
  const len = format.length;
  for (let i = 0; i < len; i++) {
    const c = format[i]!;
    if (c === '%') {
      const spec: Spec = { code: '', align: '', pad: ' ', width: 0, precision: -1 };
      if (i < len - 1) {
        i++;
        if (format[i] === '-') {
          spec.align = '-';
          if (i < len - 1) i++;
        }
        if (format[i] === '0') {
          spec.pad = '0';
          if (i < len - 1) i++;
        }
        while (i < len - 1 && format[i]! >= '0' && format[i]! <= '9') {
          spec.width = addDigit(spec.width, format[i]!);
          i++;
        }
        if (format[i] === '.' && i < len - 1) {
          i++;
          spec.precision = 0;
          while (i < len - 1 && format[i]! >= '0' && format[i]! <= '9') {
            spec.precision = addDigit(spec.precision, format[i]!);
            i++;
          }
        }
        spec.width = Math.min(spec.width, FORMAT_MAX_WIDTH);
        spec.precision = Math.min(spec.precision, FORMAT_MAX_WIDTH);
        if (i < len) {
          spec.code = format[i]!;
          if (spec.code === '%') {
            text += '%';
          } else {
            flush();
            parts.push({ kind: 'percent', spec });
          }
        }
      }
    } else if (c === '@') {
      if (i < len - 1) {
        i++;
        const code = format[i]!;
        if (code === '@') {
          text += '@';
        } else {
          flush();
          parts.push({ kind: 'time', code });
        }
      }
    } else if (c === '\\') {
      if (i < len - 1) {
        i++;
        const e = ESCAPES[format[i]!];
        if (e !== undefined) text += e;
      }
    } else {
      text += c;
    }
  }
  flush();
  return parts;
}

function padBytes(value: Buffer, spec: Spec, fill: ' ' | '0'): Buffer {
  if (value.length >= spec.width) return value;
  const padding = Buffer.alloc(spec.width - value.length, fill);
  return spec.align === '-'
    ? Buffer.concat([value, Buffer.alloc(padding.length, ' ')])
    : Buffer.concat([padding, value]);
}

/** printf %d with mosquitto's flags: `-` left (blank padded), `0` zero padded, else blank padded. */
function formatInt(value: number, spec: Spec): Buffer {
  const text = Buffer.from(String(value), 'latin1');
  if (spec.width === 0) return text;
  if (spec.align === '-') return padBytes(text, spec, ' ');
  if (spec.pad === '0' && value < 0) {
    const digits = String(-value).padStart(spec.width - 1, '0');
    return Buffer.from(`-${digits}`, 'latin1');
  }
  return padBytes(text, spec, spec.pad);
}

/** printf %*.*s: precision cuts (bytes), width pads with blanks. */
function formatStr(value: string, spec: Spec): Buffer {
  let bytes = Buffer.from(value, 'utf8');
  if (spec.precision >= 0 && bytes.length > spec.precision) bytes = bytes.subarray(0, spec.precision);
  return padBytes(bytes, spec, ' ');
}

function blank(spec: Spec, fill: ' ' | '0'): Buffer {
  return Buffer.alloc(spec.width, fill);
}

/** How the codes print what came from the network: as it is, or escaped for a terminal. */
interface Shown {
  text(value: string): string;
  /** A payload shown as text (keeps its line feeds and tabs). */
  payload(value: Buffer): Buffer;
  binary(value: Buffer): Buffer;
  json(value: string): string;
}

const AS_IS: Shown = {
  text: (v) => v,
  payload: (v) => v,
  binary: (v) => v,
  json: (v) => v,
};

const ESCAPED: Shown = {
  text: (v) => escapeForTerminal(v),
  payload: (v) => Buffer.from(escapeBytesForTerminal(v, { keepLayout: true }), 'utf8'),
  binary: (v) => Buffer.from(escapeBytesForTerminal(v), 'utf8'),
  json: safeJson,
};

/** mosquitto's write_payload: a width also caps the bytes shown (hex: width / 2 bytes). */
function formatPayload(payload: Buffer, spec: Spec, hex: 0 | 1 | 2, shown: Shown = AS_IS): Buffer {
  let n = payload.length;
  let padLen: number;
  if (spec.width > 0) {
    if (n > spec.width) n = spec.width;
    if (hex > 0) {
      n = Math.floor(n / 2);
      padLen = spec.width - n * 2;
    } else {
      padLen = spec.width - n;
    }
  } else {
    padLen = 0;
  }
  const slice = payload.subarray(0, n);
  const body =
    hex === 0
      ? shown.payload(slice)
      : Buffer.from(hex === 1 ? slice.toString('hex') : slice.toString('hex').toUpperCase(), 'latin1');
  if (padLen <= 0) return body;
  return spec.align === '-'
    ? Buffer.concat([body, Buffer.alloc(padLen, ' ')])
    : Buffer.concat([Buffer.alloc(padLen, spec.pad), body]);
}

function percent(spec: Spec, m: MessageView, stamp: Stamp, warnings: string[], shown: Shown): Buffer {
  const p = m.properties;
  switch (spec.code) {
    case 'A':
      return p?.topicAlias !== undefined ? formatInt(p.topicAlias, spec) : blank(spec, spec.pad);
    case 'C':
      return p?.contentType !== undefined ? formatStr(shown.text(p.contentType), spec) : blank(spec, ' ');
    case 'D':
      return p?.correlationData !== undefined ? shown.binary(p.correlationData) : Buffer.alloc(0);
    case 'E':
      return p?.messageExpiryInterval !== undefined
        ? formatInt(p.messageExpiryInterval, spec)
        : blank(spec, spec.pad);
    case 'F':
      return p?.payloadFormatIndicator !== undefined
        ? formatInt(p.payloadFormatIndicator, spec)
        : blank(spec, spec.pad);
    case 'I': {
      const d = new Date(stamp.sec * 1000);
      return formatStr(`${strftime1('F', d)}T${strftime1('T', d)}${tzOffset(d)}`, spec);
    }
    case 'j':
      return Buffer.from(shown.json(mosquittoJson(m, stamp, true) ?? ''), 'utf8');
    case 'J': {
      const json = mosquittoJson(m, stamp, false);
      if (json === undefined) {
        warnings.push(`message payload is not valid JSON on topic '${m.topic}' (%J)`);
        return Buffer.alloc(0);
      }
      return Buffer.from(shown.json(json), 'utf8');
    }
    case 'l':
      return formatInt(m.payload.length, spec);
    case 'm':
      return formatInt(m.packetId ?? 0, spec);
    case 'P':
      return Buffer.from(
        shown.text((p?.userProperties ?? []).map(([k, v]) => `${k}:${v}`).join(' ')),
        'utf8',
      );
    case 'p':
      return formatPayload(m.payload, spec, 0, shown);
    case 'q':
      return Buffer.from(String(m.qos), 'latin1');
    case 'R':
      return p?.responseTopic !== undefined ? formatStr(shown.text(p.responseTopic), spec) : Buffer.alloc(0);
    case 'r':
      return Buffer.from(m.retain ? '1' : '0', 'latin1');
    case 'S': {
      const id = p?.subscriptionIdentifiers?.[0];
      return id !== undefined ? formatInt(id, spec) : blank(spec, spec.pad);
    }
    case 't':
      return formatStr(shown.text(m.topic), spec);
    case 'U':
      return Buffer.from(`${stamp.sec}.${pad(stamp.nsec, 9)}`, 'latin1');
    case 'x':
      return formatPayload(m.payload, spec, 1);
    case 'X':
      return formatPayload(m.payload, spec, 2);
    default:
      return Buffer.alloc(0);
  }
}

/**
 * Compiles a `-F` format once; the returned function formats one message (no trailing newline:
 * the caller adds it unless -N). `escape`: for a terminal (see the module comment).
 */
export function compileFormat(format: string, options: { escape?: boolean } = {}): Formatter {
  const parts = parse(format);
  const shown = options.escape === true ? ESCAPED : AS_IS;
  return (message, stamp) => {
    const warnings: string[] = [];
    const chunks: Buffer[] = [];
    let date: Date | undefined;
    for (const part of parts) {
      switch (part.kind) {
        case 'text':
          chunks.push(part.bytes);
          break;
        case 'percent':
          chunks.push(percent(part.spec, message, stamp, warnings, shown));
          break;
        case 'time':
          if (part.code === 'N') {
            chunks.push(Buffer.from(pad(stamp.nsec, 9), 'latin1'));
          } else {
            date ??= new Date(stamp.sec * 1000);
            chunks.push(Buffer.from(strftime1(part.code, date), 'utf8'));
          }
          break;
        default: {
          const never: never = part;
          throw new Error(`unknown format part ${String(never)}`);
        }
      }
    }
    return { bytes: Buffer.concat(chunks), warnings };
  };
}

/**
 * Why mosquitto_sub would refuse this format (it checks -F before connecting), or undefined when it
 * is fine: "invalid format specifier 'Z'", "incomplete format specifier", "invalid escape specifier
 * 'q'", "incomplete escape specifier".
 */
export function formatProblem(format: string): string | undefined {
  const len = format.length;
  for (let i = 0; i < len; i++) {
    const c = format[i]!;
    if (c === '%') {
      if (i === len - 1) return 'incomplete format specifier (a % at the end)';
      const start = i;
      i++;
      if (format[i] === '-' && i < len - 1) i++;
      if (format[i] === '0' && i < len - 1) i++;
      let width = 0;
      let precision = 0;
      while (i < len - 1 && format[i]! >= '0' && format[i]! <= '9') width = addDigit(width, format[i++]!);
      if (format[i] === '.' && i < len - 1) {
        i++;
        while (i < len - 1 && format[i]! >= '0' && format[i]! <= '9')
          precision = addDigit(precision, format[i++]!);
      }
      const code = format[i]!;
      if (/[-0-9.]/.test(code)) return `incomplete format specifier at the end of '${format}'`;
      if (!FORMAT_CODES.includes(code))
        return `invalid format specifier '${code}' (codes: ${FORMAT_CODES.split('')
          .map((x) => `%${x}`)
          .join(' ')})`;
      if (width > FORMAT_MAX_WIDTH || precision > FORMAT_MAX_WIDTH) {
        const spec = format.slice(start, i + 1);
        const shown = spec.length > 40 ? `${spec.slice(0, 20)}...${spec.slice(-10)}` : spec;
        return `'${shown}': the ${width > FORMAT_MAX_WIDTH ? 'width' : 'precision'} of %${code} is over the limit of ${FORMAT_MAX_WIDTH}`;
      }
    } else if (c === '@') {
      if (i === len - 1) return 'incomplete time specifier (an @ at the end; @@ prints an @)';
      i++;
    } else if (c === '\\') {
      if (i === len - 1) return 'incomplete escape specifier (a \\ at the end)';
      i++;
      if (ESCAPES[format[i]!] === undefined)
        return `invalid escape specifier '${format[i]}' (escapes: \\n \\t \\r \\v \\a \\e \\0 \\\\)`;
    }
  }
  return undefined;
}
