/**
 * Value parsers shared by every command's flags: binary values (`hex:`, `base64:`, `@file`, `-`),
 * bounded integers, seconds. Each failure is one UsageError naming the flag.
 */
import { UsageError } from './errors.js';
import { type Limit, PAYLOAD_LIMIT, readFileBounded, readStdin } from './io.js';

/**
 * A binary value from the command line: `hex:0a0b` (spaces and colons ignored), `base64:AAEC`,
 * `@file` (the file's bytes), `-` (all of stdin), anything else as UTF-8 text; at most `limit`
 * bytes (an MQTT payload by default). `what` names the flag in error messages.
 */
export async function parseBinaryValue(text: string, what = 'value', limit = PAYLOAD_LIMIT): Promise<Buffer> {
  const value = await binaryValue(text, what, limit);
  if (value.length > limit.bytes) {
    throw new UsageError(`${what}: the value is larger than ${limit.bytes} bytes (${limit.why})`);
  }
  return value;
}

async function binaryValue(text: string, what: string, limit: Limit): Promise<Buffer> {
  if (text.startsWith('hex:')) {
    const digits = text.slice(4).replace(/[\s:]/g, '');
    if (!/^[0-9a-fA-F]*$/.test(digits)) {
      throw new UsageError(`${what}: '${text}' is not valid hex (expected hex:0a0b...)`);
    }
    if (digits.length % 2 !== 0) {
      throw new UsageError(`${what}: '${text}' has an odd number of hex digits`);
    }
    return Buffer.from(digits, 'hex');
  }
  if (text.startsWith('base64:')) {
    const body = text.slice(7).replace(/\s/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(body)) {
      throw new UsageError(`${what}: '${text}' is not valid base64`);
    }
    return Buffer.from(body, body.includes('-') || body.includes('_') ? 'base64url' : 'base64');
  }
  if (text.startsWith('@') && text.length > 1) return readFileValue(text.slice(1), what, limit);
  if (text === '-') return readStdin(limit, what);
  return Buffer.from(text, 'utf8');
}

/**
 * A file's bytes, at most `limit` (an MQTT payload by default); a missing, unreadable or too large
 * file is a UsageError naming the flag.
 */
export async function readFileValue(file: string, what: string, limit = PAYLOAD_LIMIT): Promise<Buffer> {
  return readFileBounded(file, limit, what);
}

/**
 * The deepest JSON nesting mq reads (packets need 5 levels; an embedded payload gets the rest).
 * Deeper values overflow the stack of every recursive walk over them (JSON.stringify, checks).
 */
export const MAX_JSON_DEPTH = 256;

/**
 * How deep the arrays and objects of JSON text nest, counted up to MAX_JSON_DEPTH + 1 (a scan of
 * the text, without parsing it: brackets inside strings do not count).
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character; a quote ends the string.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > deepest && (deepest = depth) > MAX_JSON_DEPTH) return deepest;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** An integer in [min, max]; `what` names the flag. */
export function parseInteger(text: string | number, what: string, min: number, max: number): number {
  const n = typeof text === 'number' ? text : /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${what}: '${text}' is not a whole number from ${min} to ${max}`);
  }
  return n;
}

/** The longest time mq waits for anything: Node's timers hold at most 2^31 - 1 ms (24.8 days). */
export const MAX_SECONDS = 2_147_483;

/** A non-negative number of seconds (fractions allowed): `0.5`, `10`; at most MAX_SECONDS. */
export function parseSeconds(text: string | number, what: string): number {
  const n = typeof text === 'number' ? text : /^\s*\d+(\.\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${what}: '${text}' is not a number of seconds`);
  if (n > MAX_SECONDS) {
    throw new UsageError(
      `${what}: '${text}' seconds is more than ${MAX_SECONDS} (24 days), the longest wait`,
    );
  }
  return n;
}

/** QoS 0, 1 or 2. */
export function parseQos(text: string | number, what = '-q'): 0 | 1 | 2 {
  const n = parseInteger(text, what, 0, 2);
  return n as 0 | 1 | 2;
}
