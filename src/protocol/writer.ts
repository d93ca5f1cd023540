import { EncodeError } from './errors.js';

/** Bytes a Variable Byte Integer takes (MQTT 5.0 1.5.5). */
export function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

export const MAX_VARINT = 268_435_455;

/** UTF-8 byte length of `s`, with an ASCII fast path for short strings. */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n < 64) {
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
    return n;
  }
  return Buffer.byteLength(s, 'utf8');
}

/** Encoded size of a UTF-8 string field (length prefix included); checks the 65,535-byte limit. */
export function stringSize(s: string, field: string): number {
  const n = utf8Length(s);
  if (n > 65_535) throw new EncodeError(`${field} is ${n} bytes; the limit is 65,535`);
  return 2 + n;
}

export function binarySize(b: Uint8Array, field: string): number {
  if (b.length > 65_535) throw new EncodeError(`${field} is ${b.length} bytes; the limit is 65,535`);
  return 2 + b.length;
}

/**
 * A write cursor over a Buffer sized beforehand (packetSize), so writes need no bounds growth.
 * Kept as plain functions over (buf, pos) for speed: each returns the new position.
 */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  // n <= MAX_VARINT < 2^31: bit operations are exact.
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

export function writeU16(buf: Buffer, pos: number, n: number): number {
  buf[pos] = n >>> 8;
  buf[pos + 1] = n & 0xff;
  return pos + 2;
}

export function writeU32(buf: Buffer, pos: number, n: number): number {
  buf.writeUInt32BE(n, pos);
  return pos + 4;
}

export function writeString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  // Short ASCII strings: a byte loop beats the native call.
  if (n < 32) {
    let ascii = true;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      buf[pos + 2 + i] = c;
    }
    if (ascii) {
      buf[pos] = n >>> 8;
      buf[pos + 1] = n & 0xff;
      return pos + 2 + n;
    }
  }
  const written = buf.utf8Write(s, pos + 2);
  buf[pos] = written >>> 8;
  buf[pos + 1] = written & 0xff;
  return pos + 2 + written;
}

export function writeBinary(buf: Buffer, pos: number, b: Uint8Array): number {
  buf[pos] = b.length >>> 8;
  buf[pos + 1] = b.length & 0xff;
  buf.set(b, pos + 2);
  return pos + 2 + b.length;
}

/** Writes the fixed header (type/flags byte and remaining length); returns the body's position. */
export function writeFixedHeader(buf: Buffer, pos: number, first: number, remainingLength: number): number {
  buf[pos] = first;
  return writeVarint(buf, pos + 1, remainingLength);
}

/** Range checks before narrowing a number into the bytes of a field (never truncate silently). */
export function checkU16(n: number, field: string): void {
  if (!(n >= 0 && n <= 0xffff && Number.isInteger(n))) {
    throw new EncodeError(`${field} must be an integer from 0 to 65535, not ${String(n)}`);
  }
}

export function checkByte(n: number, field: string): void {
  if (!(n >= 0 && n <= 0xff && Number.isInteger(n))) {
    throw new EncodeError(`${field} must be an integer from 0 to 255, not ${String(n)}`);
  }
}

export function checkQos(n: number, field: string): void {
  if (n !== 0 && n !== 1 && n !== 2) throw new EncodeError(`${field} must be 0, 1 or 2, not ${String(n)}`);
}

export function checkRemainingLength(n: number, packetType: string): void {
  if (n > MAX_VARINT) {
    throw new EncodeError(`${packetType} remaining length ${n} exceeds the maximum ${MAX_VARINT}`);
  }
}
