/**
 * Input parsing for `mq decode`: every way people paste bytes.
 *
 * - hex in any spelling: `30 0d 00 04`, `300d0004` (Wireshark "hex stream"), `0x30,0x0d`,
 *   `0x30 0x0d`, `\x30\x0d`, `30:0d:00`, C arrays `{0x30, 0x0d}`, several lines, `#` and `//`
 *   comments (annotated fixtures);
 * - hex dumps with an offset column and an ASCII column: Wireshark "Copy as Hex Dump"
 *   (`0000   30 0d ...   0...`), xxd (`00000000: 300d 0004  0...`), tcpdump -X
 *   (`0x0000:  300d 0004  0...`), hexdump -C (`00000000  30 0d ...  |0...|`);
 * - base64 (`--base64`), raw bytes (`--raw`);
 * - NDJSON written by `mq broker --record FILE`: one object a line with `hex` (or `base64`) and
 *   `time`, `client`, `direction`.
 *
 * Bad input throws UsageError naming the position (line and column).
 */
import { UsageError } from './errors.js';
import { escapeForTerminal } from './escape.js';

/** A run of bytes to decode, and where it came from when the input was a broker recording. */
export interface InputRecord {
  bytes: Buffer;
  time?: string;
  client?: string;
  direction?: string;
  /** 1-based line of the recording this record came from. */
  line?: number;
}

export type InputFormat = 'hex' | 'base64' | 'raw';

function where(line: number, column: number, multiLine: boolean): string {
  return multiLine ? `line ${line}, column ${column}` : `column ${column}`;
}

const HEX_DIGIT = /^[0-9a-fA-F]$/;
/** Offset column of a dump line: `0000`, `00000010:`, `0x0010:`. Captures the rest. */
const DUMP_OFFSET = /^(\s*)((?:0x)?[0-9a-fA-F]{4,8})(:?)(\s+)(.*)$/;

/**
 * The hex part of a dump line (offset and ASCII columns removed), or undefined when the line does
 * not look like a dump line. Returns the column (0-based, in `line`) where the hex part starts.
 */
function dumpLineHex(line: string): { hex: string; start: number } | undefined {
  const m = DUMP_OFFSET.exec(line);
  if (!m) return undefined;
  const [, lead = '', offset = '', colon = '', gap = '', rest = ''] = m;
  // An offset column is followed by ':' (xxd, tcpdump) or 2+ spaces (Wireshark, hexdump -C); a
  // plain hex line like `300d0004 74657374` has neither.
  const prefixed = offset.startsWith('0x');
  if (colon === '' && gap.length < 2 && !prefixed) return undefined;
  if (colon === '' && prefixed && gap.length < 2) return undefined;
  const start = lead.length + offset.length + colon.length + gap.length;
  // hexdump -C: the ASCII column is between bars.
  let body = rest.replace(/\s+\|.*\|?\s*$/, '');
  // Walk the hex groups; stop at the first gap of 3+ spaces (Wireshark's ASCII column), at a 2-space
  // gap except Wireshark's/hexdump's after the 8th byte, or at a group that is not hex.
  const groups = /([^\s]+)(\s*)/g;
  let bytes = 0;
  let end = 0;
  let wide = false;
  for (let g = groups.exec(body); g; g = groups.exec(body)) {
    const token = g[1] ?? '';
    const space = g[2] ?? '';
    if (!/^[0-9a-fA-F]+$/.test(token) || token.length % 2 !== 0) break;
    if (token.length > 2) wide = true;
    bytes += token.length / 2;
    end = g.index + token.length;
    if (space.length >= 3) break;
    if (space.length === 2 && (wide || bytes !== 8)) break;
    if (bytes >= 16 && !wide) break;
  }
  body = body.slice(0, end);
  if (bytes === 0 && rest.trim() !== '') return undefined;
  return { hex: body, start };
}

/**
 * Parses hex in any common spelling into bytes. Throws UsageError on a non-hex character or an
 * odd number of hex digits, naming the line and column.
 */
export function parseHex(text: string): Buffer {
  // Fast path: a plain hex stream (recordings, Wireshark "hex stream").
  if (text.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(text)) return Buffer.from(text, 'hex');
  const lines = text.split(/\r?\n/);
  const multiLine = lines.filter((l) => l.trim() !== '').length > 1;
  const out: number[] = [];
  let sawDump = false;
  for (let li = 0; li < lines.length; li++) {
    let line = lines[li] ?? '';
    // Comments: `# ...` and `// ...` to the end of the line ('#' and '/' are never hex).
    const hash = line.indexOf('#');
    const slashes = line.indexOf('//');
    const cut = Math.min(hash < 0 ? line.length : hash, slashes < 0 ? line.length : slashes);
    line = line.slice(0, cut);
    let base = 0;
    const dump = dumpLineHex(line);
    if (dump) {
      base = dump.start;
      line = dump.hex;
      sawDump = true;
    } else if (sawDump && /^\s*(?:0x)?[0-9a-fA-F]{4,8}:?\s*$/.test(line)) {
      // hexdump -C ends with a line holding only the final offset.
      continue;
    }
    parseHexLine(line, li + 1, base, multiLine, out);
  }
  return Buffer.from(out);
}

/** Separators between bytes: whitespace, commas, colons, semicolons, braces, brackets, quotes. */
const SEPARATOR = /[\s,:;{}[\]()"'`]/;

function parseHexLine(line: string, lineNo: number, base: number, multiLine: boolean, out: number[]): void {
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i] ?? '';
    if (SEPARATOR.test(c)) {
      i++;
      continue;
    }
    // Python bytes literal: b'...' / b"..."
    if ((c === 'b' || c === 'B') && (line[i + 1] === "'" || line[i + 1] === '"')) {
      i += 2;
      continue;
    }
    // A token: an optional 0x / \x prefix, then hex digits up to the next separator or prefix.
    const tokenStart = i;
    let prefixed = false;
    if ((c === '0' && (line[i + 1] === 'x' || line[i + 1] === 'X')) || (c === '\\' && line[i + 1] === 'x')) {
      prefixed = true;
      i += 2;
    }
    const digitsStart = i;
    while (i < n) {
      const d = line[i] ?? '';
      if (SEPARATOR.test(d)) break;
      if (d === '\\' && line[i + 1] === 'x') break;
      if (prefixed && d === '0' && (line[i + 1] === 'x' || line[i + 1] === 'X') && i - digitsStart >= 1)
        break;
      if (!HEX_DIGIT.test(d)) {
        const col = base + i + 1;
        throw new UsageError(
          `not hex: '${escapeForTerminal(d)}' at ${where(lineNo, col, multiLine)} (use --base64 or --raw for other input)`,
        );
      }
      i++;
    }
    const digits = line.slice(digitsStart, i);
    if (digits.length === 0) {
      throw new UsageError(
        `'${line.slice(tokenStart, i)}' without hex digits at ${where(lineNo, base + tokenStart + 1, multiLine)}`,
      );
    }
    if (prefixed && digits.length === 1) {
      out.push(Number.parseInt(digits, 16));
      continue;
    }
    if (digits.length % 2 !== 0) {
      throw new UsageError(
        `odd number of hex digits (${digits.length}) in '${digits.length > 20 ? `${digits.slice(0, 20)}...` : digits}' at ${where(lineNo, base + digitsStart + 1, multiLine)}: each byte is two hex digits`,
      );
    }
    for (let k = 0; k < digits.length; k += 2) out.push(Number.parseInt(digits.slice(k, k + 2), 16));
  }
}

const BASE64_CHAR = /^[A-Za-z0-9+/_-]$/;

/** Parses base64 (standard or URL-safe, padding optional, whitespace ignored). */
export function parseBase64(text: string): Buffer {
  const lines = text.split(/\r?\n/);
  const multiLine = lines.filter((l) => l.trim() !== '').length > 1;
  let clean = '';
  let padding = false;
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li] ?? '';
    for (let i = 0; i < line.length; i++) {
      const c = line[i] ?? '';
      if (/\s/.test(c)) continue;
      if (c === '=') {
        padding = true;
        continue;
      }
      if (!BASE64_CHAR.test(c) || padding) {
        throw new UsageError(
          `not base64: '${escapeForTerminal(c)}' at ${where(li + 1, i + 1, multiLine)}${padding ? ' (after the = padding)' : ''}`,
        );
      }
      clean += c;
    }
  }
  if (clean.length % 4 === 1) {
    throw new UsageError(
      `base64 input of ${clean.length} characters is cut short (a length of 4n+1 is impossible)`,
    );
  }
  return Buffer.from(clean.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Does the text look like NDJSON objects (a recording) rather than hex? */
function looksLikeNdjson(text: string): boolean {
  // '{"' and not '{0x30, ...' (a C array)
  return /^\s*\{\s*"/.test(text);
}

function optionalString(obj: Record<string, unknown>, key: string, line: number): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new UsageError(`recording line ${line}: '${key}' is not a string`);
}

/**
 * Parses NDJSON lines of a broker recording (`mq broker --record FILE`): objects with `hex` (or
 * `base64`) and optional `time`, `client`, `direction`. Blank lines are skipped.
 */
export function parseRecording(text: string): InputRecord[] {
  const records: InputRecord[] = [];
  const lines = text.split(/\r?\n/);
  for (let li = 0; li < lines.length; li++) {
    const raw = (lines[li] ?? '').trim();
    if (raw === '') continue;
    const lineNo = li + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new UsageError(`recording line ${lineNo} is not JSON: ${reason}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new UsageError(`recording line ${lineNo} is not a JSON object`);
    }
    const obj = value as Record<string, unknown>;
    let bytes: Buffer;
    if (typeof obj.hex === 'string') {
      try {
        bytes = parseHex(obj.hex);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new UsageError(`recording line ${lineNo}, field 'hex': ${reason}`);
      }
    } else if (typeof obj.base64 === 'string') {
      bytes = parseBase64(obj.base64);
    } else {
      throw new UsageError(
        `recording line ${lineNo} has no 'hex' field (expected objects like {"time":...,"client":...,"direction":"in","hex":"300d..."})`,
      );
    }
    const record: InputRecord = { bytes, line: lineNo };
    const time = optionalString(obj, 'time', lineNo);
    const client = optionalString(obj, 'client', lineNo) ?? optionalString(obj, 'clientId', lineNo);
    const direction = optionalString(obj, 'direction', lineNo) ?? optionalString(obj, 'dir', lineNo);
    if (time !== undefined) record.time = time;
    if (client !== undefined) record.client = client;
    if (direction !== undefined) record.direction = direction;
    records.push(record);
  }
  return records;
}

/**
 * Everything `mq decode` reads, as records. `raw` takes the bytes as they are; `base64` decodes
 * them; `hex` (the default) takes a broker recording when the input starts with '{', else hex.
 */
export function parseInput(data: Buffer | string, format: InputFormat): InputRecord[] {
  if (format === 'raw') return [{ bytes: typeof data === 'string' ? Buffer.from(data, 'latin1') : data }];
  const text = typeof data === 'string' ? data : data.toString('utf8');
  if (format === 'base64') return [{ bytes: parseBase64(text) }];
  if (looksLikeNdjson(text)) return parseRecording(text);
  return [{ bytes: parseHex(text) }];
}

/** Bytes as lower-case hex, optionally spaced: `30 0d 00 04`. */
export function toHex(bytes: Uint8Array, spaced = false): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return spaced ? (hex.match(/../g) ?? []).join(' ') : hex;
}

/** What stripCaptureHeaders found. */
export interface CapturedFrame {
  /** The TCP payload (the MQTT bytes). */
  payload: Buffer;
  /** Bytes of link, IP and TCP headers skipped. */
  skipped: number;
  /** 'Ethernet, IPv4, TCP' */
  layers: string;
}

/** IPv4 or IPv6 + TCP at `at`: the TCP payload range, or undefined when the bytes are not that. */
function ipTcp(bytes: Buffer, at: number): { start: number; end: number; ip: string } | undefined {
  const v = (bytes[at] ?? 0) >> 4;
  let tcp: number;
  let end: number;
  let ip: string;
  if (v === 4) {
    const ihl = ((bytes[at] ?? 0) & 0x0f) * 4;
    if (ihl < 20 || at + 20 > bytes.length) return undefined;
    const total = bytes.readUInt16BE(at + 2);
    // Total length within the frame, allowing only Ethernet padding after it.
    if (total < ihl + 20 || at + total > bytes.length || bytes.length - (at + total) > 60) return undefined;
    if (bytes[at + 9] !== 6) return undefined; // not TCP
    tcp = at + ihl;
    end = at + total;
    ip = 'IPv4';
  } else if (v === 6) {
    if (at + 40 > bytes.length || bytes[at + 6] !== 6) return undefined; // next header TCP, no extensions
    const payloadLength = bytes.readUInt16BE(at + 4);
    if (payloadLength < 20 || at + 40 + payloadLength > bytes.length) return undefined;
    tcp = at + 40;
    end = at + 40 + payloadLength;
    ip = 'IPv6';
  } else {
    return undefined;
  }
  if (tcp + 20 > end) return undefined;
  const dataOffset = ((bytes[tcp + 12] ?? 0) >> 4) * 4;
  if (dataOffset < 20 || tcp + dataOffset > end) return undefined;
  return { start: tcp + dataOffset, end, ip };
}

/**
 * A hex dump copied from Wireshark ("Copy as Hex Dump") holds the whole frame: link, IP and TCP
 * headers before the MQTT bytes. Recognises Ethernet II (with one 802.1Q tag), Linux cooked
 * capture (SLL), BSD loopback and raw IP, each with IPv4/IPv6 and TCP, by checking that the
 * lengths in the headers agree with the bytes. undefined when the bytes are not such a frame.
 */
export function stripCaptureHeaders(bytes: Buffer): CapturedFrame | undefined {
  if (bytes.length < 40) return undefined;
  const candidates: { at: number; link: string }[] = [];
  const etherAt = (typeOffset: number, link: string): void => {
    let t = typeOffset;
    let type = bytes.readUInt16BE(t);
    if (type === 0x8100 && t + 6 <= bytes.length) {
      t += 4;
      type = bytes.readUInt16BE(t);
    }
    if (type === 0x0800 || type === 0x86dd) candidates.push({ at: t + 2, link });
  };
  etherAt(12, 'Ethernet');
  etherAt(14, 'Linux cooked capture');
  const family = bytes.readUInt32LE(0);
  if (family === 2 || family === 24 || family === 28 || family === 30)
    candidates.push({ at: 4, link: 'loopback' });
  candidates.push({ at: 0, link: '' });
  for (const { at, link } of candidates) {
    const found = ipTcp(bytes, at);
    if (found) {
      return {
        payload: bytes.subarray(found.start, found.end),
        skipped: found.start,
        layers: [link, found.ip, 'TCP'].filter((l) => l !== '').join(', '),
      };
    }
  }
  return undefined;
}
