import { isValidReasonCode } from '../constants.js';
import { decodeProperties, type PropertyPlace, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { PacketTypeName, Properties, ProtocolVersion } from '../types.js';
import { writeFixedHeader, writeU16 } from '../writer.js';

/** Fields several packet types read or write alike. */

function bin4(n: number): string {
  return n.toString(2).padStart(4, '0');
}

/**
 * The fixed header's flag bits, which every packet but PUBLISH fixes. `rule` defaults to the
 * general one [MQTT-2.1.3-1] (5.0: [MQTT-2.2.2-1]).
 */
export function reservedFlags(r: Reader, flags: number, expected: number, rule?: string): void {
  if (flags !== expected) {
    r.malformed(
      `reserved flags are ${bin4(flags)}, must be ${bin4(expected)}`,
      0,
      rule ?? r.rule('MQTT-2.1.3-1', 'MQTT-2.2.2-1'),
    );
  }
}

/**
 * PUBREL, SUBSCRIBE and UNSUBSCRIBE (flags 0010): MQTT 3.1 (MQIsdp) sets their DUP bit when it sends
 * one again (3.1 §2.1: they are QoS 1 packets, retried as PUBLISH is), so in 3.1 a 1010 is accepted
 * too, as Mosquitto does; 3.1.1 and 5.0 fix the flags at 0010. Returns the DUP flag.
 */
export function qos1Flags(r: Reader, flags: number, rule: string): boolean {
  const dup = r.version === 3 && (flags & 0b1000) !== 0;
  reservedFlags(r, dup ? flags & 0b0111 : flags, 2, rule);
  return dup;
}

/** The first byte of a PUBREL, SUBSCRIBE or UNSUBSCRIBE (`first`), with DUP when 3.1 sends it again. */
export function qos1FirstByte(first: number, p: { dup?: boolean }, v: ProtocolVersion): number {
  return p.dup === true && v === 3 ? first | 0b1000 : first;
}

/** A packet identifier, which is never 0 [MQTT-2.3.1-1] (5.0: [MQTT-2.2.1-3]). */
export function packetIdentifier(r: Reader): number {
  const at = r.pos;
  const id = r.u16('packet identifier');
  if (id === 0) r.malformed('packet identifier is 0', at, r.rule('MQTT-2.2.1-3', 'MQTT-2.3.1-1'));
  return id;
}

/**
 * 5.0 acks, DISCONNECT and AUTH: a reason code, or nothing when the packet ends here (then it is
 * 0, Success, and undefined in the packet object).
 */
export function optionalReasonCode(r: Reader, type: PacketTypeName): number | undefined {
  if (r.remaining === 0) return undefined;
  const at = r.pos;
  const code = r.u8('reason code');
  if (!isValidReasonCode(code, type)) {
    r.malformed(`0x${code.toString(16).padStart(2, '0')} is not a ${type} reason code`, at);
  }
  return code;
}

/**
 * The property block after an optional reason code: absent when the packet ends here. An empty
 * block that is on the wire stays `{}`, so the packet encodes back to the same bytes.
 */
export function optionalProperties(r: Reader, place: PropertyPlace): Properties | undefined {
  return r.remaining > 0 ? (decodeProperties(r, place) ?? {}) : undefined;
}

/**
 * How SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK begin: the fixed header, the packet identifier,
 * then (5.0) the property block. Returns the position after them.
 */
export function writeIdAndProperties(
  buf: Buffer,
  pos: number,
  first: number,
  rl: number,
  p: { packetId: number; properties?: Properties },
  v: ProtocolVersion,
): number {
  pos = writeFixedHeader(buf, pos, first, rl);
  pos = writeU16(buf, pos, p.packetId);
  return v === 5 ? writeProperties(buf, pos, p.properties) : pos;
}
