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
  void bytes;
  void offset;
  throw new Error('readFixedHeader: not implemented yet');
}

export interface FramerOptions {
  /** Largest packet accepted (fixed header included); checked before the body is buffered. */
  maxPacketSize?: number;
}

/**
 * Streaming framer: push chunks of any size (one byte at a time works); whole packets come out in
 * order through the callback, with `raw`, the packet's bytes (a view: copy it to keep it). The
 * version is read for each packet, so an owner that decodes a CONNECT may set `version` from inside
 * the callback and the rest of the same chunk decodes with it.
 */
export class Framer {
  version: ProtocolVersion;
  readonly maxPacketSize: number;

  constructor(version: ProtocolVersion, options: FramerOptions = {}) {
    this.version = version;
    this.maxPacketSize = options.maxPacketSize ?? 268_435_460;
  }

  /** Bytes held waiting for the rest of a packet. */
  get buffered(): number {
    return 0;
  }

  /** Throws MalformedPacketError (or PacketTooLargeError) on a bad packet; the stream is then unusable. */
  push(chunk: Buffer, onPacket: (packet: Packet, raw: Buffer) => void): void {
    void chunk;
    void onPacket;
    throw new Error('Framer.push: not implemented yet');
  }

  /** Convenience for tests and tools: the packets in `chunk`. */
  pushAll(chunk: Buffer): Packet[] {
    const out: Packet[] = [];
    this.push(chunk, (packet) => out.push(packet));
    return out;
  }
}
