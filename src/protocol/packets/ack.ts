import { isValidReasonCode } from '../constants.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import type { AckPacket, ProtocolVersion } from '../types.js';
import { checkByte, checkU16, writeFixedHeader } from '../writer.js';

type AckType = 'PUBACK' | 'PUBREC' | 'PUBREL' | 'PUBCOMP';

const FIRST_BYTE: Record<AckType, number> = { PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70 };

/** PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then (v5) an optional reason code and properties. */
export function decodeAck<T extends AckType>(r: Reader, flags: number, type: T): AckPacket<T> {
  const expected = type === 'PUBREL' ? 2 : 0;
  if (flags !== expected) {
    const rule = type === 'PUBREL' ? 'MQTT-3.6.1-1' : r.rule('MQTT-2.1.3-1', 'MQTT-2.2.2-1');
    r.malformed(
      `reserved flags are ${flags.toString(2).padStart(4, '0')}, must be ${expected.toString(2).padStart(4, '0')}`,
      0,
      rule,
    );
  }
  const at = r.pos;
  const packetId = r.u16('packet identifier');
  if (packetId === 0) r.malformed('packet identifier is 0', at, r.rule('MQTT-2.2.1-3', 'MQTT-2.3.1-1'));
  let reasonCode: number | undefined;
  let properties: AckPacket<T>['properties'];
  if (r.version === 5 && r.remaining > 0) {
    const codeAt = r.pos;
    reasonCode = r.u8('reason code');
    if (!isValidReasonCode(reasonCode, type)) {
      r.malformed(`0x${reasonCode.toString(16).padStart(2, '0')} is not a ${type} reason code`, codeAt);
    }
    // An empty block that is on the wire stays `{}`, so the packet encodes back to the same bytes.
    if (r.remaining > 0) properties = decodeProperties(r, type) ?? {};
  }
  r.expectEnd();
  return { type, packetId, reasonCode, properties };
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

export function writeAck(p: AckPacket<AckType>, buf: Buffer, pos: number, rl: number): number {
  pos = writeFixedHeader(buf, pos, FIRST_BYTE[p.type], rl);
  const id = p.packetId;
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  if (rl > 2) buf[pos++] = p.reasonCode ?? 0;
  if (rl > 3) pos = writeProperties(buf, pos, p.properties);
  return pos;
}
