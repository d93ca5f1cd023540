import { isValidReasonCode } from '../constants.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type {
  AuthPacket,
  DisconnectPacket,
  PingreqPacket,
  PingrespPacket,
  ProtocolVersion,
} from '../types.js';
import { checkByte, writeFixedHeader } from '../writer.js';

function zeroFlags(r: Reader, flags: number): void {
  if (flags !== 0) {
    r.malformed(
      `reserved flags are ${flags.toString(2).padStart(4, '0')}, must be 0000`,
      0,
      r.rule('MQTT-2.1.3-1', 'MQTT-2.2.2-1'),
    );
  }
}

export function decodePing<T extends 'PINGREQ' | 'PINGRESP'>(r: Reader, flags: number, type: T): { type: T } {
  zeroFlags(r, flags);
  r.expectEnd();
  return { type };
}

/** DISCONNECT and AUTH: (v5) an optional reason code, then optional properties. */
export function decodeDisconnect(r: Reader, flags: number): DisconnectPacket {
  zeroFlags(r, flags);
  if (r.version !== 5) {
    r.expectEnd();
    return { type: 'DISCONNECT', reasonCode: undefined, properties: undefined };
  }
  const [reasonCode, properties] = reasonAndProperties(r, 'DISCONNECT');
  return { type: 'DISCONNECT', reasonCode, properties };
}

export function decodeAuth(r: Reader, flags: number): AuthPacket {
  zeroFlags(r, flags);
  const [reasonCode, properties] = reasonAndProperties(r, 'AUTH');
  return { type: 'AUTH', reasonCode, properties };
}

function reasonAndProperties(
  r: Reader,
  type: 'DISCONNECT' | 'AUTH',
): [number | undefined, DisconnectPacket['properties']] {
  let reasonCode: number | undefined;
  let properties: DisconnectPacket['properties'];
  if (r.remaining > 0) {
    const at = r.pos;
    reasonCode = r.u8('reason code');
    if (!isValidReasonCode(reasonCode, type)) {
      r.malformed(`0x${reasonCode.toString(16).padStart(2, '0')} is not a ${type} reason code`, at);
    }
    if (r.remaining > 0) properties = decodeProperties(r, type) ?? {};
  }
  r.expectEnd();
  return [reasonCode, properties];
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
