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
