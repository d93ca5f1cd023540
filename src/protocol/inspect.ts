/**
 * Decoding one observed packet for a trace, JSON output or recording (the proxy's, and the
 * broker's --trace and --record): never throws, collects every violation the codec finds (with byte
 * offset, spec rule and reason code), and masks secrets (the CONNECT password, Authentication Data in
 * CONNECT, CONNACK and AUTH) in both the packet and a copy of its bytes, so that neither a trace nor
 * a recording ever holds them. A masked secret keeps its length: every byte becomes '*' (0x2a), so
 * the bytes still decode (`mq decode -f FILE --line` reads a masked recording).
 */
import { decode } from './decode.js';
import { MalformedPacketError } from './errors.js';
import type { FieldNote, Packet, ProtocolVersion } from './types.js';

export interface Inspection {
  /** The decoded packet (secrets masked), or undefined when its structure could not be read. */
  packet: Packet | undefined;
  /** Every violation found, in order; empty for a well-formed packet. */
  violations: MalformedPacketError[];
  /** The bytes as received with secrets masked: `raw` itself when there was nothing to mask. */
  bytes: Buffer;
}

/** What a masked secret byte becomes: '*'. */
export const MASK_BYTE = 0x2a;

/** Packet types that may carry a password or authentication data: CONNECT, CONNACK, AUTH. */
const SECRET_TYPES = new Set([1, 2, 15]);

/** May the packet whose first byte is `first` hold a secret (CONNECT, CONNACK, AUTH)? */
export function mayHoldSecret(first: number): boolean {
  return SECRET_TYPES.has(first >> 4);
}
/** Byte-map fields that hold secrets (the codec's notes). */
const SECRET_FIELDS = new Set(['password', 'Authentication Data']);

/**
 * Decodes `raw` (one whole packet) as `version`. A CONNECT decodes under any version (it carries
 * its own level). Never throws.
 */
export function inspectPacket(raw: Buffer, version: ProtocolVersion): Inspection {
  const secret = mayHoldSecret(raw[0] ?? 0);
  // Secrets are masked in place: in a copy, never in the bytes being forwarded.
  const bytes = secret ? Buffer.from(raw) : raw;
  try {
    const packet = decode(bytes, version);
    if (secret) maskPacket(packet);
    return { packet, violations: [], bytes };
  } catch (err) {
    // Read it again collecting every violation, and the byte map to find secrets by offset.
    const violations: MalformedPacketError[] = [];
    const notes: FieldNote[] = [];
    let packet: Packet | undefined;
    try {
      packet = decode(bytes, version, { errors: violations, annotate: notes });
    } catch (structural) {
      violations.push(asViolation(structural));
      // What follows a structural error cannot be located: it may hold a secret.
      if (secret) bytes.fill(MASK_BYTE, Math.max(1, Math.min(bytes.length, violations.at(-1)!.offset)));
    }
    if (violations.length === 0) violations.push(asViolation(err));
    if (secret) {
      for (const n of notes)
        if (SECRET_FIELDS.has(n.field)) bytes.fill(MASK_BYTE, n.offset, n.offset + n.length);
      if (packet !== undefined) maskPacket(packet);
    }
    return { packet, violations, bytes };
  }
}

/**
 * Masks the secrets of a decoded packet in place: its password and authentication data become
 * '*' bytes of the same length (they are views into the decoded bytes, which are masked too).
 */
export function maskPacket(packet: Packet): void {
  if (packet.type === 'CONNECT') packet.password?.fill(MASK_BYTE);
  if (packet.type === 'CONNECT' || packet.type === 'CONNACK' || packet.type === 'AUTH') {
    packet.properties?.authenticationData?.fill(MASK_BYTE);
  }
}

function asViolation(err: unknown): MalformedPacketError {
  if (err instanceof MalformedPacketError) return err;
  // Not a codec error (a bug): still one line, never a crash.
  return new MalformedPacketError(`cannot decode: ${err instanceof Error ? err.message : String(err)}`, {
    offset: 0,
  });
}
