import { MalformedPacketError, ProtocolError } from './errors.js';
import type { FieldNote, ProtocolVersion } from './types.js';

type Section = FieldNote['section'];

const fatalDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Short ASCII strings (topics, property keys, client ids) repeat from packet to packet. Turning
 * bytes into a string is a native call that costs more than the loop that already validates them,
 * so that loop also hashes them, and a hit in this small direct-mapped table (checked byte for byte)
 * returns the same string again. Measured with `npm run bench:codec`.
 */
const INTERN_MAX = 64;
const INTERN_MASK = 2047;
const internTable: (string | undefined)[] = new Array(INTERN_MASK + 1).fill(undefined);

function intern(buf: Buffer, s: number, len: number, h: number): string {
  const slot = (h ^ (h >>> 11)) & INTERN_MASK;
  const cached = internTable[slot];
  if (cached !== undefined && cached.length === len) {
    let k = 0;
    while (k < len && cached.charCodeAt(k) === buf[s + k]) k++;
    if (k === len) return cached;
  }
  const str = buf.latin1Slice(s, s + len);
  internTable[slot] = str;
  return str;
}

/** The ASCII bytes s..e (hashed `h` while they were checked): interned when short. */
function asciiString(buf: Buffer, s: number, e: number, h: number): string {
  return e - s <= INTERN_MAX ? intern(buf, s, e - s, h) : buf.latin1Slice(s, e);
}

/**
 * A cursor over one packet's bytes. Every read checks the bounds and raises a MalformedPacketError
 * carrying the byte offset; in collect mode (`errors` set) violations that leave the packet readable
 * are recorded and reading goes on. With `notes` set, each field read is recorded for the byte map.
 */
export class Reader {
  buf: Buffer;
  pos: number;
  end: number;
  version: ProtocolVersion;
  packetType: string;
  errors: MalformedPacketError[] | undefined;
  notes: FieldNote[] | undefined;
  section: Section;
  /** User properties read in this packet, and how many are accepted (DecodeOptions). */
  userProperties: number;
  maxUserProperties: number;
  /** Topic filters read in this SUBSCRIBE or UNSUBSCRIBE, and how many are accepted (DecodeOptions). */
  topicFilters: number;
  maxTopicFilters: number;

  constructor(buf: Buffer, pos: number, end: number, version: ProtocolVersion, packetType: string) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.version = version;
    this.packetType = packetType;
    this.errors = undefined;
    this.notes = undefined;
    this.section = 'variable header';
    this.userProperties = 0;
    this.maxUserProperties = Number.POSITIVE_INFINITY;
    this.topicFilters = 0;
    this.maxTopicFilters = Number.POSITIVE_INFINITY;
  }

  /** The rule id for this packet's version: v5 ids differ from 3.1.1 ones for some rules. */
  rule(v5: string, v4?: string): string | undefined {
    return this.version === 5 ? v5 : v4;
  }

  /** A structural violation: the packet cannot be read past it. Always throws. */
  fatal(detail: string, offset: number, rule?: string, reasonCode?: number): never {
    throw new MalformedPacketError(detail, { offset, packetType: this.packetType, rule, reasonCode });
  }

  /** A malformed-packet violation the reader can step over (recorded in collect mode). */
  malformed(detail: string, offset: number, rule?: string, reasonCode?: number): void {
    const err = new MalformedPacketError(detail, { offset, packetType: this.packetType, rule, reasonCode });
    if (this.errors === undefined) throw err;
    this.errors.push(err);
  }

  /** A protocol-error violation (0x82 unless said otherwise), recorded in collect mode. */
  protocol(detail: string, offset: number, rule?: string, reasonCode?: number): void {
    const err = new ProtocolError(detail, { offset, packetType: this.packetType, rule, reasonCode });
    if (this.errors === undefined) throw err;
    this.errors.push(err);
  }

  note(offset: number, length: number, field: string, value: string): void {
    this.notes?.push({ offset, length, section: this.section, field, value });
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, field: string): void {
    if (this.end - this.pos < n) {
      this.fatal(
        `${field} needs ${n} byte${n === 1 ? '' : 's'} but only ${this.end - this.pos} remain`,
        this.pos,
      );
    }
  }

  u8(field: string): number {
    if (this.pos >= this.end) this.need(1, field);
    const v = this.buf[this.pos++]!;
    if (this.notes) this.note(this.pos - 1, 1, field, String(v));
    return v;
  }

  u16(field: string): number {
    const p = this.pos;
    if (this.end - p < 2) this.need(2, field);
    const v = (this.buf[p]! << 8) | this.buf[p + 1]!;
    this.pos = p + 2;
    if (this.notes) this.note(p, 2, field, String(v));
    return v;
  }

  u32(field: string): number {
    const p = this.pos;
    if (this.end - p < 4) this.need(4, field);
    const v = this.buf.readUInt32BE(p);
    this.pos = p + 4;
    if (this.notes) this.note(p, 4, field, String(v));
    return v;
  }

  /** Variable Byte Integer (MQTT 5.0 1.5.5): at most 4 bytes, minimal encoding. */
  varint(field: string): number {
    const start = this.pos;
    let value = 0;
    let mult = 1;
    for (let i = 0; i < 4; i++) {
      if (this.pos >= this.end) this.need(1, field);
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * mult;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) {
          this.malformed(`${field} is not minimally encoded`, start, this.rule('MQTT-1.5.5-1'));
        }
        if (this.notes) this.note(start, this.pos - start, field, String(value));
        return value;
      }
      mult *= 128;
    }
    return this.fatal(`${field} takes more than 4 bytes`, start);
  }

  /** UTF-8 Encoded String: u16 length then well-formed UTF-8 without U+0000. */
  string(field: string): string {
    const start = this.pos;
    const e = this.lengthPrefixed(field);
    const s = start + 2;
    const buf = this.buf;
    // ASCII fast path: one pass checks for non-ASCII bytes and U+0000, and hashes for the intern table.
    let i = s;
    let h = e - s;
    for (; i < e; i++) {
      const b = buf[i]!;
      if (b === 0 || b > 0x7f) break;
      h = (Math.imul(h, 31) + b) | 0;
    }
    const value = i === e ? asciiString(buf, s, e, h) : this.decodeUtf8(s, e, field);
    if (this.notes) this.noteString(start, e, field, value);
    return value;
  }

  /**
   * A Topic Name: a UTF-8 string that must not contain wildcards [MQTT-3.3.2-2]. One pass over the
   * bytes checks ASCII, U+0000 and the wildcard characters together.
   */
  topicName(field: string): string {
    const start = this.pos;
    const e = this.lengthPrefixed(field);
    const s = start + 2;
    const buf = this.buf;
    // The loop of string(), which also finds the first wildcard.
    let wildcard = -1;
    let i = s;
    let h = e - s;
    for (; i < e; i++) {
      const b = buf[i]!;
      if (b === 0 || b > 0x7f) break;
      if ((b === 0x2b || b === 0x23) && wildcard < 0) wildcard = i;
      h = (Math.imul(h, 31) + b) | 0;
    }
    let value: string;
    if (i === e) {
      value = asciiString(buf, s, e, h);
    } else {
      value = this.decodeUtf8(s, e, field);
      for (let k = i; k < e; k++) {
        const b = buf[k]!;
        if ((b === 0x2b || b === 0x23) && wildcard < 0) wildcard = k;
      }
    }
    if (wildcard >= 0) {
      this.malformed(
        `${field} '${value}' contains the wildcard '${String.fromCharCode(buf[wildcard]!)}'`,
        wildcard,
        'MQTT-3.3.2-2',
        0x90,
      );
    }
    if (this.notes) this.noteString(start, e, field, value);
    return value;
  }

  /**
   * Reads the u16 length at the position and checks that the bytes it announces are there; moves
   * past them and returns where they end (they start 2 bytes after the length).
   */
  private lengthPrefixed(field: string): number {
    const start = this.pos;
    if (this.end - start < 2) this.need(2, `${field} length`);
    const len = (this.buf[start]! << 8) | this.buf[start + 1]!;
    const e = start + 2 + len;
    if (e > this.end) {
      this.fatal(`${field} length ${len} exceeds the ${this.end - start - 2} bytes remaining`, start);
    }
    this.pos = e;
    return e;
  }

  private noteString(start: number, e: number, field: string, value: string): void {
    this.note(start, 2, `${field} length`, String(e - start - 2));
    if (e > start + 2) this.note(start + 2, e - start - 2, field, JSON.stringify(value));
  }

  private decodeUtf8(s: number, e: number, field: string): string {
    const bytes = this.buf.subarray(s, e);
    let value: string;
    try {
      value = fatalDecoder.decode(bytes);
    } catch {
      this.malformed(
        `${field} is not well-formed UTF-8`,
        s + firstInvalidUtf8(bytes),
        this.rule('MQTT-1.5.4-1', 'MQTT-1.5.3-1'),
      );
      value = bytes.toString('utf8');
    }
    const nul = bytes.indexOf(0);
    if (nul >= 0) {
      this.malformed(`${field} contains U+0000`, s + nul, this.rule('MQTT-1.5.4-2', 'MQTT-1.5.3-2'));
    }
    return value;
  }

  /** Binary Data: u16 length then bytes (a view, not a copy). */
  binary(field: string): Buffer {
    const start = this.pos;
    const e = this.lengthPrefixed(field);
    const s = start + 2;
    const len = e - s;
    if (this.notes) {
      this.note(start, 2, `${field} length`, String(len));
      if (len > 0) this.note(s, len, field, `hex ${this.buf.toString('hex', s, e)}`);
    }
    return this.buf.subarray(s, e);
  }

  /** The rest of the packet (a view). */
  rest(field: string): Buffer {
    const s = this.pos;
    this.pos = this.end;
    if (this.notes && this.end > s) this.note(s, this.end - s, field, describeBytes(this.buf, s, this.end));
    return this.buf.subarray(s, this.end);
  }

  /** Bytes left over after the last field. */
  expectEnd(): void {
    if (this.pos < this.end) {
      const n = this.end - this.pos;
      this.malformed(`${n} unexpected byte${n === 1 ? '' : 's'} after the last field`, this.pos);
      this.pos = this.end;
    }
  }
}

/** Offset of the first byte that makes `bytes` ill-formed UTF-8 (RFC 3629). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let n: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      n = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + n >= bytes.length) return i;
    let cp = b & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return bytes.length;
}

/** Payload shown to people: quoted text when it is printable UTF-8, else hex. */
export function describeBytes(buf: Buffer, s: number, e: number): string {
  const view = buf.subarray(s, e);
  if (firstInvalidUtf8(view) === view.length) {
    const text = view.toString('utf8');
    if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) return JSON.stringify(text);
  }
  return `hex ${view.toString('hex')}`;
}

declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
    latin1Write(s: string, offset: number): number;
    utf8Write(s: string, offset: number): number;
  }
}
