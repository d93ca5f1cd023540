import { isValidReasonCode } from '../constants.js';
import { decodeProperties, propertyBlockSize } from '../properties.js';
import type { Reader } from '../reader.js';
import type { ProtocolVersion, SubackPacket, UnsubackPacket } from '../types.js';
import { checkByte, checkU16 } from '../writer.js';
import { packetIdentifier, reservedFlags, writeIdAndProperties } from './fields.js';

function header(r: Reader, flags: number): number {
  reservedFlags(r, flags, 0);
  return packetIdentifier(r);
}

function reasonCodes(r: Reader, type: 'SUBACK' | 'UNSUBACK'): number[] {
  r.section = 'payload';
  const codes: number[] = [];
  if (r.remaining === 0) r.protocol(`no reason codes: a ${type} carries one per topic filter`, r.pos);
  while (r.remaining > 0) {
    const at = r.pos;
    const code = r.u8(r.version === 5 ? 'reason code' : 'return code');
    const valid =
      r.version === 5
        ? isValidReasonCode(code, type)
        : code === 0 || code === 1 || code === 2 || code === 0x80;
    if (!valid)
      r.malformed(
        `0x${code.toString(16).padStart(2, '0')} is not a ${type} ${r.version === 5 ? 'reason' : 'return'} code`,
        at,
        r.version === 5 ? undefined : 'MQTT-3.9.3-2',
      );
    codes.push(code);
  }
  return codes;
}

export function decodeSuback(r: Reader, flags: number): SubackPacket {
  const packetId = header(r, flags);
  const properties = r.version === 5 ? decodeProperties(r, 'SUBACK') : undefined;
  return { type: 'SUBACK', packetId, reasonCodes: reasonCodes(r, 'SUBACK'), properties };
}

export function decodeUnsuback(r: Reader, flags: number): UnsubackPacket {
  const packetId = header(r, flags);
  if (r.version !== 5) {
    r.expectEnd();
    return { type: 'UNSUBACK', packetId, reasonCodes: [], properties: undefined };
  }
  const properties = decodeProperties(r, 'UNSUBACK');
  return { type: 'UNSUBACK', packetId, reasonCodes: reasonCodes(r, 'UNSUBACK'), properties };
}

export function subackRemainingLength(p: SubackPacket | UnsubackPacket, v: ProtocolVersion): number {
  checkU16(p.packetId, `${p.type} packetId`);
  for (const c of p.reasonCodes) checkByte(c, `${p.type} reason code`);
  if (v !== 5) return p.type === 'SUBACK' ? 2 + p.reasonCodes.length : 2;
  return 2 + propertyBlockSize(p.properties, p.type) + p.reasonCodes.length;
}

export function writeSuback(
  p: SubackPacket | UnsubackPacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeIdAndProperties(buf, pos, p.type === 'SUBACK' ? 0x90 : 0xb0, rl, p, v);
  if (v === 5 || p.type === 'SUBACK') for (const c of p.reasonCodes) buf[pos++] = c;
  return pos;
}
