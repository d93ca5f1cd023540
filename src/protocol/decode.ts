import type { MalformedPacketError } from './errors.js';
import type { FieldNote, Packet, ProtocolVersion } from './types.js';

export interface DecodeOptions {
  /**
   * Collect mode: violations after which the packet can still be read (a bad flag, a wildcard in a
   * topic name, a duplicate property, invalid UTF-8...) are pushed here and decoding goes on; only
   * structural ones (a length past the data) are thrown. Without it the first violation throws.
   */
  errors?: MalformedPacketError[];
  /** When given, one FieldNote per field decoded is pushed here (the byte map of `mq decode --bytes`). */
  annotate?: FieldNote[];
}

/**
 * Decodes one whole packet: `bytes` holds exactly the fixed header and the remaining length it
 * announces (use Framer or readFixedHeader to cut a stream). Offsets in errors and notes count from
 * bytes[0]. A PUBLISH payload is a view into `bytes`.
 */
export function decode(bytes: Buffer, version: ProtocolVersion, options?: DecodeOptions): Packet {
  void bytes;
  void version;
  void options;
  throw new Error('decode: not implemented yet');
}
