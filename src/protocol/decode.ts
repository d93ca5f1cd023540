import { PACKET_TYPE_NAMES } from './constants.js';
import { MalformedPacketError } from './errors.js';
import { decodeAck } from './packets/ack.js';
import { decodeConnack } from './packets/connack.js';
import { decodeConnect } from './packets/connect.js';
import { decodeAuth, decodeDisconnect, decodePing } from './packets/disconnect.js';
import { decodePublish } from './packets/publish.js';
import { decodeSuback, decodeUnsuback } from './packets/suback.js';
import { decodeSubscribe, decodeUnsubscribe } from './packets/subscribe.js';
import { Reader } from './reader.js';
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
  /**
   * A receiver's limit on the user properties of one packet (all its property blocks together):
   * one more throws MalformedPacketError with reason code 0x97 (Quota exceeded). Default: none.
   */
  maxUserProperties?: number;
  /**
   * A receiver's limit on the topic filters of one SUBSCRIBE or UNSUBSCRIBE: one more throws
   * MalformedPacketError with reason code 0x97 (Quota exceeded), before it is decoded (a 7 MB
   * SUBSCRIBE of a million short filters once made ~700 MB of objects). Default: none.
   */
  maxTopicFilters?: number;
}

/** One reader reused by every decode without options: decoding is synchronous and never nested. */
const shared = new Reader(Buffer.alloc(0), 0, 0, 4, '');

/**
 * Decodes one whole packet: `bytes` holds exactly the fixed header and the remaining length it
 * announces (use Framer or readFixedHeader to cut a stream). Offsets in errors and notes count from
 * bytes[0]. A PUBLISH payload is a view into `bytes`.
 */
export function decode(bytes: Buffer, version: ProtocolVersion, options?: DecodeOptions): Packet {
  const first = bytes[0];
  if (first === undefined) throw new MalformedPacketError('no bytes to decode', { offset: 0 });
  const typeName = PACKET_TYPE_NAMES[first >> 4];
  // Remaining length (MQTT 5.0 1.5.5): at most 4 bytes.
  let rl = 0;
  let mult = 1;
  let pos = 1;
  for (;;) {
    const b = bytes[pos];
    if (b === undefined) {
      throw new MalformedPacketError('the fixed header ends inside the remaining length', {
        offset: pos,
        packetType: typeName,
      });
    }
    rl += (b & 0x7f) * mult;
    pos++;
    if ((b & 0x80) === 0) break;
    if (pos === 5) {
      throw new MalformedPacketError('remaining length takes more than 4 bytes', {
        offset: 1,
        packetType: typeName,
        rule: version === 5 ? 'MQTT-1.5.5-1' : undefined,
      });
    }
    mult *= 128;
  }
  return decodeBody(bytes, pos, rl, version, options);
}

/** Decodes the packet whose fixed header (headerLength bytes) starts at bytes[0]. */
export function decodeBody(
  bytes: Buffer,
  headerLength: number,
  remainingLength: number,
  version: ProtocolVersion,
  options?: DecodeOptions,
): Packet {
  const first = bytes[0]!;
  const code = first >> 4;
  const flags = first & 0x0f;
  const type = PACKET_TYPE_NAMES[code];
  const end = headerLength + remainingLength;
  const r =
    options === undefined || (options.errors === undefined && options.annotate === undefined)
      ? shared
      : new Reader(bytes, 0, 0, version, '');
  r.buf = bytes;
  r.pos = headerLength;
  r.end = end;
  r.version = version;
  r.packetType = type ?? 'packet';
  r.section = 'fixed header';
  r.errors = options?.errors;
  r.notes = options?.annotate;
  r.userProperties = 0;
  r.maxUserProperties = options?.maxUserProperties ?? Number.POSITIVE_INFINITY;
  r.topicFilters = 0;
  r.maxTopicFilters = options?.maxTopicFilters ?? Number.POSITIVE_INFINITY;
  if (r.notes) {
    r.note(
      0,
      1,
      'packet type and flags',
      `${type ?? `reserved type ${code}`}, flags ${flags.toString(2).padStart(4, '0')}`,
    );
    r.note(1, headerLength - 1, 'remaining length', String(remainingLength));
  }
  if (type === undefined) return r.fatal('packet type 0 is reserved', 0, undefined, 0x81);
  if (end > bytes.length) {
    r.fatal(
      `remaining length ${remainingLength} runs past the ${bytes.length - headerLength} bytes given`,
      1,
    );
  }
  if (end < bytes.length) {
    r.malformed(`${bytes.length - end} bytes after the end of the packet`, end);
  }
  if (headerLength > 2 && bytes[headerLength - 1] === 0) {
    r.malformed('remaining length is not minimally encoded', 1, version === 5 ? 'MQTT-1.5.5-1' : undefined);
  }
  r.section = 'variable header';
  try {
    // Deliberately alike: this switch and the two in encode.ts (size, write) list the same packet
    // types, one dispatch per direction on the hot path. Exhaustive: the compiler checks that
    // every type has its case.
    switch (type) {
      case 'PUBLISH':
        return decodePublish(r, flags);
      case 'PUBACK':
      case 'PUBREC':
      case 'PUBREL':
      case 'PUBCOMP':
        return decodeAck(r, flags, type);
      case 'CONNECT':
        return decodeConnect(r, flags);
      case 'CONNACK':
        return decodeConnack(r, flags);
      case 'SUBSCRIBE':
        return decodeSubscribe(r, flags);
      case 'SUBACK':
        return decodeSuback(r, flags);
      case 'UNSUBSCRIBE':
        return decodeUnsubscribe(r, flags);
      case 'UNSUBACK':
        return decodeUnsuback(r, flags);
      case 'PINGREQ':
      case 'PINGRESP':
        return decodePing(r, flags, type);
      case 'DISCONNECT':
        return decodeDisconnect(r, flags);
      case 'AUTH':
        if (version !== 5) r.fatal('AUTH (packet type 15) is reserved before MQTT 5.0', 0);
        return decodeAuth(r, flags);
      default: {
        const never: never = type;
        throw new Error(`unhandled packet type ${String(never)}`);
      }
    }
  } finally {
    r.errors = undefined;
    r.notes = undefined;
  }
}
