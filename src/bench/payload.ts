/**
 * The header mq bench puts at the start of every payload, so a receiver can tell who sent a
 * message, when, and in what order, without any state shared with the publisher. Little-endian:
 *
 *   offset  size  field
 *        0     2  magic 0x716d ("mq" as bytes 6d 71)
 *        2     1  header version (1)
 *        3     1  flags: bit 0 = sent during a recorded phase (not warm-up)
 *        4     4  run id (random per run: tells this run from an earlier one's retained or queued messages)
 *        8     4  publisher index within the run
 *       12     4  sequence number, from 0 per publisher
 *       16     8  scheduled send time: ms since the epoch (float64, performance.timeOrigin + now())
 *       24     4  send lag: microseconds from the scheduled time to the actual write (open loop)
 *
 * The rest of the payload, up to the configured size, is filler ('.').
 */
import { performance } from 'node:perf_hooks';

export const HEADER_MAGIC = 0x716d;
export const HEADER_VERSION = 1;
export const HEADER_BYTES = 28;
export const FLAG_RECORDED = 0x01;

export const OFF_FLAGS = 3;
export const OFF_RUN = 4;
export const OFF_PUBLISHER = 8;
export const OFF_SEQ = 12;
export const OFF_TIME = 16;
export const OFF_LAG = 24;

/** performance.timeOrigin is a getter that calls into Node each time; it never changes. */
const ORIGIN = performance.timeOrigin;

/** Milliseconds since the epoch with sub-microsecond resolution, one clock for every thread. */
export function nowMs(): number {
  return ORIGIN + performance.now();
}

/** A payload of `size` bytes with the constant part of the header filled in. */
export function headerPayload(size: number, runId: number, publisher: number): Buffer {
  if (size < HEADER_BYTES)
    throw new RangeError(`payload size ${size} is below the ${HEADER_BYTES}-byte header`);
  const p = Buffer.alloc(size, 0x2e);
  p.writeUInt16LE(HEADER_MAGIC, 0);
  p[2] = HEADER_VERSION;
  p[OFF_FLAGS] = 0;
  p.writeUInt32LE(runId >>> 0, OFF_RUN);
  p.writeUInt32LE(publisher >>> 0, OFF_PUBLISHER);
  p.writeUInt32LE(0, OFF_SEQ);
  p.writeDoubleLE(0, OFF_TIME);
  p.writeUInt32LE(0, OFF_LAG);
  return p;
}

// The hot path reads and writes header fields without Buffer's readers and writers: they validate
// their arguments on every call, which cost a third of a receiver's time per message. u32s go byte
// by byte; float64s through a DataView of the buffer, kept for the next call (the same read or
// batch buffer comes back message after message): ~7 ns a message less than 8 single bytes.
let viewOf: Buffer | undefined;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));

function dataView(b: Buffer): DataView<ArrayBufferLike> {
  if (b !== viewOf) {
    view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    viewOf = b;
  }
  return view;
}

/** Little-endian u32 at `at` (the caller knows the bytes are there). */
export function readU32(b: Buffer, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** Little-endian float64 at `at`. */
export function readF64(b: Buffer, at: number): number {
  return dataView(b).getFloat64(at, true);
}

function writeU32(b: Buffer, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = v >>> 24;
}

/** Writes the per-message fields of the header that starts at `at`. */
export function stampHeader(
  buf: Buffer,
  at: number,
  seq: number,
  scheduledMs: number,
  lagMicros: number,
  recorded: boolean,
): void {
  buf[at + OFF_FLAGS] = recorded ? FLAG_RECORDED : 0;
  writeU32(buf, at + OFF_SEQ, seq >>> 0);
  dataView(buf).setFloat64(at + OFF_TIME, scheduledMs, true);
  writeU32(buf, at + OFF_LAG, lagMicros > 0xffffffff ? 0xffffffff : lagMicros > 0 ? lagMicros >>> 0 : 0);
}

/** True when `len` bytes at `at` start with an mq bench header this code can read. */
export function hasHeader(buf: Buffer, at: number, len: number): boolean {
  return len >= HEADER_BYTES && buf[at] === 0x6d && buf[at + 1] === 0x71 && buf[at + 2] === HEADER_VERSION;
}

/** Run ids are random 32-bit numbers, shown as 8 hex digits. */
export function formatRunId(runId: number): string {
  return (runId >>> 0).toString(16).padStart(8, '0');
}
