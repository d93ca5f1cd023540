import { PACKET_TYPE_NAMES } from './constants.js';
import { decodeBody } from './decode.js';
import { MalformedPacketError, PacketTooLargeError } from './errors.js';
import type { Packet, ProtocolVersion } from './types.js';

export interface FixedHeader {
  /** Packet type number, 0-15 (0 is reserved and invalid). */
  typeCode: number;
  /** Fixed header bits 3-0. */
  flags: number;
  remainingLength: number;
  /** Bytes taken by the fixed header (1 + 1..4). */
  headerLength: number;
  /** headerLength + remainingLength. */
  totalLength: number;
}

/**
 * Reads the fixed header at `offset`. undefined when the bytes end before it does; throws
 * MalformedPacketError when the remaining length takes more than 4 bytes [MQTT-1.5.5-1].
 */
export function readFixedHeader(bytes: Buffer, offset = 0): FixedHeader | undefined {
  const first = bytes[offset];
  if (first === undefined) return undefined;
  let rl = 0;
  let mult = 1;
  let pos = offset + 1;
  for (;;) {
    const b = bytes[pos];
    if (b === undefined) return undefined;
    rl += (b & 0x7f) * mult;
    pos++;
    if ((b & 0x80) === 0) break;
    if (pos - offset === 5) throw tooLongLength(offset, first);
    mult *= 128;
  }
  const headerLength = pos - offset;
  return {
    typeCode: first >> 4,
    flags: first & 0x0f,
    remainingLength: rl,
    headerLength,
    totalLength: headerLength + rl,
  };
}

function tooLongLength(offset: number, first: number): MalformedPacketError {
  return new MalformedPacketError('remaining length takes more than 4 bytes', {
    offset: offset + 1,
    packetType: PACKET_TYPE_NAMES[first >> 4],
  });
}

export interface FramerOptions {
  /** Largest packet accepted (fixed header included); checked before the body is buffered. */
  maxPacketSize?: number;
}

/**
 * Streaming framer: push chunks of any size (one byte at a time works); whole packets come out in
 * order through the callback, with `raw`, the packet's bytes (a view: copy it to keep it). The
 * version is read for each packet, so an owner that decodes a CONNECT may set `version` from inside
 * the callback and the rest of the same chunk decodes with it. Offsets in errors count from the
 * first byte of the offending packet.
 */
export class Framer {
  version: ProtocolVersion;
  maxPacketSize: number;
  /**
   * Copies of the bytes of a packet that straddles chunks (the caller may reuse its read buffer),
   * joined once the packet is whole. Not preallocated from the announced length: a peer that
   * announces 256 MB and sends nothing more costs nothing.
   */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Total length of the pending packet once its fixed header is known, else 0. */
  private needed = 0;
  /** Fixed header length of the pending packet once known. */
  private neededHeader = 0;

  constructor(version: ProtocolVersion, options: FramerOptions = {}) {
    this.version = version;
    this.maxPacketSize = options.maxPacketSize ?? 268_435_460;
  }

  /** Bytes held waiting for the rest of a packet. */
  get buffered(): number {
    return this.pendingLength;
  }

  /** Drops any partial packet. */
  reset(): void {
    this.pending = [];
    this.pendingLength = 0;
    this.needed = 0;
    this.neededHeader = 0;
  }

  /** Throws MalformedPacketError (or PacketTooLargeError) on a bad packet; the stream is then unusable. */
  push(chunk: Buffer, onPacket: (packet: Packet, raw: Buffer) => void): void {
    this.pushFrames(chunk, (raw, headerLength) => {
      onPacket(decodeBody(raw, headerLength, raw.length - headerLength, this.version), raw);
      return true;
    });
  }

  /**
   * Framing only, for owners that choose how to decode each packet (the broker decodes SUBSCRIBE
   * in collect mode): `onFrame` gets each whole packet's bytes and its fixed header length, and may
   * return false to stop (the rest of the chunk is dropped). The size limit is checked from the
   * fixed header, before a body is buffered. `thisArg` is `this` in onFrame (an owner can pass a
   * method instead of keeping a closure per instance).
   */
  pushFrames<T>(
    chunk: Buffer,
    onFrame: (this: T, raw: Buffer, headerLength: number) => boolean,
    thisArg?: T,
  ): void {
    this.pushRaw(chunk, (buf, start, headerLength, end) =>
      // A packet that is all of `buf` (one packet per read, at low rates) needs no view.
      onFrame.call(
        thisArg as T,
        start === 0 && end === buf.length ? buf : buf.subarray(start, end),
        headerLength,
      ),
    );
  }

  /**
   * pushFrames without a Buffer per packet, for owners that read a few bytes of each of many
   * packets (mq bench's subscriber): `onFrame` gets the packet as `buf[start, end)` with its fixed
   * header in `buf[start, start + headerLength)`. `buf` is the chunk itself, or (for a packet that
   * straddled chunks) a copy of that packet alone; either way it is only valid during the call.
   * Returning false stops, as with pushFrames. Only `chunk[0, length)` is read (a read buffer and
   * the byte count of the read, without a view of it).
   */
  pushRaw(
    chunk: Buffer,
    onFrame: (buf: Buffer, start: number, headerLength: number, end: number) => boolean,
    length = chunk.length,
  ): void {
    const len = Math.min(length, chunk.length);
    let pos = 0;
    if (this.pendingLength > 0) {
      // Complete the packet begun in earlier chunks with only the bytes it still needs; the rest
      // of this chunk is framed in place below.
      pos = this.completePending(chunk, len);
      if (pos < 0) return;
      const raw = Buffer.concat(this.pending, this.needed);
      const headerLength = this.neededHeader;
      this.reset();
      if (onFrame(raw, 0, headerLength, raw.length) === false) return;
    }
    while (pos < len) {
      // Fixed header, inlined.
      const first = chunk[pos]!;
      let rl = 0;
      let mult = 1;
      let p = pos + 1;
      let complete = false;
      while (p < len) {
        const b = chunk[p++]!;
        rl += (b & 0x7f) * mult;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (p - pos === 5) throw tooLongLength(0, first);
        mult *= 128;
      }
      if (!complete) {
        this.keep(chunk, pos, len, 0, 0);
        return;
      }
      const headerLength = p - pos;
      const total = headerLength + rl;
      if (total > this.maxPacketSize) this.checkSize(total, first);
      if (pos + total > len) {
        this.keep(chunk, pos, len, total, headerLength);
        return;
      }
      const start = pos;
      pos += total;
      if (onFrame(chunk, start, headerLength, pos) === false) {
        this.reset();
        return;
      }
    }
  }

  /** Convenience for tests and tools: the packets in `chunk`. */
  pushAll(chunk: Buffer): Packet[] {
    const out: Packet[] = [];
    this.push(chunk, (packet) => out.push(packet));
    return out;
  }

  /**
   * Adds to the pending packet the bytes of `chunk` it needs. Returns where the bytes after it
   * start in `chunk` once it is whole (its pieces are then in `pending`), or -1 when the chunk
   * ends first (all of it is then kept).
   */
  private completePending(chunk: Buffer, len: number): number {
    if (this.needed === 0) {
      // The fixed header itself was split: it is at most 5 bytes, so joining is cheap.
      const head = Buffer.concat([...this.pending, chunk.subarray(0, Math.min(5, len))]);
      const h = readFixedHeader(head, 0);
      if (h === undefined) {
        // The chunk (under 5 bytes) ended inside the header too; head holds all of it.
        this.pending = [head];
        this.pendingLength = head.length;
        return -1;
      }
      this.checkSize(h.totalLength, head[0]!);
      this.needed = h.totalLength;
      this.neededHeader = h.headerLength;
    }
    const missing = this.needed - this.pendingLength;
    if (len < missing) {
      this.pending.push(Buffer.from(chunk.subarray(0, len)));
      this.pendingLength += len;
      return -1;
    }
    // A view: Buffer.concat copies it before push() returns.
    this.pending.push(chunk.subarray(0, missing));
    this.pendingLength = this.needed;
    return missing;
  }

  /** Keeps `buf[pos, len)`, a packet not yet whole. */
  private keep(buf: Buffer, pos: number, len: number, needed: number, headerLength: number): void {
    // Copy: the caller may reuse its read buffer.
    const rest = Buffer.from(buf.subarray(pos, len));
    this.pending = [rest];
    this.pendingLength = rest.length;
    this.needed = needed;
    this.neededHeader = headerLength;
  }

  private checkSize(total: number, first: number): void {
    if (total > this.maxPacketSize) {
      this.reset();
      throw new PacketTooLargeError(total, this.maxPacketSize, {
        offset: 0,
        packetType: PACKET_TYPE_NAMES[first >> 4],
      });
    }
  }
}
