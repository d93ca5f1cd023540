import { propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { AckPacket, ProtocolVersion } from '../types.js';
import { checkByte, checkU16, writeFixedHeader } from '../writer.js';
import {
  optionalProperties,
  optionalReasonCode,
  packetIdentifier,
  qos1FirstByte,
  qos1Flags,
  reservedFlags,
} from './fields.js';

type AckType = 'PUBACK' | 'PUBREC' | 'PUBREL' | 'PUBCOMP';

const FIRST_BYTE: Record<AckType, number> = { PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70 };

/** PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then (v5) an optional reason code and properties. */
export function decodeAck<T extends AckType>(r: Reader, flags: number, type: T): AckPacket<T> {
  let dup = false;
  if (type === 'PUBREL') dup = qos1Flags(r, flags, 'MQTT-3.6.1-1');
  else reservedFlags(r, flags, 0);
  const packetId = packetIdentifier(r);
  let reasonCode: number | undefined;
  let properties: AckPacket<T>['properties'];
  if (r.version === 5) {
    reasonCode = optionalReasonCode(r, type);
    properties = optionalProperties(r, type);
  }
  r.expectEnd();
  const p: AckPacket<T> = { type, packetId, reasonCode, properties };
  if (dup) p.dup = true;
  return p;
}

export function ackRemainingLength(p: AckPacket<AckType>, v: ProtocolVersion): number {
  checkU16(p.packetId, `${p.type} packetId`);
  if (v !== 5) return 2;
  if (p.reasonCode !== undefined) checkByte(p.reasonCode, `${p.type} reasonCode`);
  // 5.0 3.4.2.1: the reason code may be omitted when it is 0 (Success) and there are no properties,
  // and the property block when it is empty. Each is omitted exactly when the packet object has
  // none (reasonCode undefined means 0), so every decoded packet encodes back to its own bytes.
  if (p.properties !== undefined) return 3 + propertyBlockSize(p.properties, p.type);
  return p.reasonCode === undefined ? 2 : 3;
}

export function writeAck(
  p: AckPacket<AckType>,
  v: ProtocolVersion,
  buf: Buffer,
  pos: number,
  rl: number,
): number {
  pos = writeFixedHeader(buf, pos, qos1FirstByte(FIRST_BYTE[p.type], p, v), rl);
  const id = p.packetId;
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  if (rl > 2) buf[pos++] = p.reasonCode ?? 0;
  if (rl > 3) pos = writeProperties(buf, pos, p.properties);
  return pos;
}
