import { CONNACK_RETURN_CODES_V4, isValidReasonCode } from '../constants.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { ConnackPacket, ProtocolVersion } from '../types.js';
import { checkByte, writeFixedHeader } from '../writer.js';
import { reservedFlags } from './fields.js';

export function decodeConnack(r: Reader, flags: number): ConnackPacket {
  reservedFlags(r, flags, 0);
  const at = r.pos;
  const ackFlags = r.u8('connect acknowledge flags');
  if ((ackFlags & 0xfe) !== 0) {
    r.malformed(
      `connect acknowledge flags 0x${ackFlags.toString(16)}: bits 7-1 are reserved`,
      at,
      r.rule('MQTT-3.2.2-1'),
    );
  }
  const codeAt = r.pos;
  const reasonCode = r.u8(r.version === 5 ? 'reason code' : 'return code');
  if (r.version === 5) {
    if (!isValidReasonCode(reasonCode, 'CONNACK')) {
      r.malformed(`0x${reasonCode.toString(16)} is not a CONNACK reason code`, codeAt);
    }
  } else if (reasonCode >= CONNACK_RETURN_CODES_V4.length) {
    r.malformed(`return code ${reasonCode} is reserved (0-5 are defined)`, codeAt);
  }
  // v5 has no short form of CONNACK: the property length is always there.
  const properties = r.version === 5 ? decodeProperties(r, 'CONNACK') : undefined;
  r.expectEnd();
  return { type: 'CONNACK', sessionPresent: (ackFlags & 1) === 1, reasonCode, properties };
}

export function connackRemainingLength(p: ConnackPacket, v: ProtocolVersion): number {
  checkByte(p.reasonCode, 'CONNACK reasonCode');
  if (v !== 5) return 2;
  return 2 + propertyBlockSize(p.properties, 'CONNACK');
}

export function writeConnack(
  p: ConnackPacket,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeFixedHeader(buf, pos, 0x20, rl);
  buf[pos++] = p.sessionPresent ? 1 : 0;
  buf[pos++] = p.reasonCode;
  if (v === 5) pos = writeProperties(buf, pos, p.properties);
  return pos;
}
