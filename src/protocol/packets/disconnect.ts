import { propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type {
  AuthPacket,
  DisconnectPacket,
  PingreqPacket,
  PingrespPacket,
  ProtocolVersion,
} from '../types.js';
import { checkByte, writeFixedHeader } from '../writer.js';
import { optionalProperties, optionalReasonCode, reservedFlags } from './fields.js';

export function decodePing<T extends 'PINGREQ' | 'PINGRESP'>(r: Reader, flags: number, type: T): { type: T } {
  reservedFlags(r, flags, 0);
  r.expectEnd();
  return { type };
}

/** DISCONNECT and AUTH: (v5) an optional reason code, then optional properties. */
export function decodeDisconnect(r: Reader, flags: number): DisconnectPacket {
  reservedFlags(r, flags, 0);
  if (r.version !== 5) {
    r.expectEnd();
    return { type: 'DISCONNECT', reasonCode: undefined, properties: undefined };
  }
  const reasonCode = optionalReasonCode(r, 'DISCONNECT');
  const properties = optionalProperties(r, 'DISCONNECT');
  r.expectEnd();
  return { type: 'DISCONNECT', reasonCode, properties };
}

export function decodeAuth(r: Reader, flags: number): AuthPacket {
  reservedFlags(r, flags, 0);
  const reasonCode = optionalReasonCode(r, 'AUTH');
  const properties = optionalProperties(r, 'AUTH');
  r.expectEnd();
  return { type: 'AUTH', reasonCode, properties };
}

export function pingWrite(p: PingreqPacket | PingrespPacket, buf: Buffer, pos: number): number {
  buf[pos++] = p.type === 'PINGREQ' ? 0xc0 : 0xd0;
  buf[pos++] = 0;
  return pos;
}

export function disconnectRemainingLength(p: DisconnectPacket | AuthPacket, v: ProtocolVersion): number {
  if (v !== 5) return 0;
  if (p.reasonCode !== undefined) checkByte(p.reasonCode, `${p.type} reasonCode`);
  // As for acks: reason code and property block are written exactly when the packet has them.
  if (p.properties !== undefined) return 1 + propertyBlockSize(p.properties, p.type);
  return p.reasonCode === undefined ? 0 : 1;
}

export function writeDisconnect(
  p: DisconnectPacket | AuthPacket,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeFixedHeader(buf, pos, p.type === 'DISCONNECT' ? 0xe0 : 0xf0, rl);
  if (rl > 0) buf[pos++] = p.reasonCode ?? 0;
  if (rl > 1) pos = writeProperties(buf, pos, p.properties);
  return pos;
}
