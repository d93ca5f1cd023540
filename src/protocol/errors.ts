/**
 * Errors raised by the codec. Every one says what and where: the packet, the byte offset (counted
 * from the first byte of the packet's fixed header, or of the buffer given to the decoder), the spec
 * rule when there is one, and the MQTT 5 reason code a broker would answer with.
 */

export interface ViolationInit {
  /** Byte offset of the offending field. */
  offset: number;
  /** Packet type name when known ('PUBLISH'), for the message prefix. */
  packetType?: string;
  /** Spec conformance statement id, e.g. 'MQTT-3.8.1-1'. */
  rule?: string;
  /** MQTT 5 reason code a receiver answers with (0x81 Malformed Packet by default). */
  reasonCode?: number;
}

/** The bytes break the MQTT wire format or a MUST of the spec. reasonCode 0x81 or 0x82 (or 0x95 ...). */
export class MalformedPacketError extends Error {
  override name = 'MalformedPacketError';
  readonly offset: number;
  readonly packetType: string | undefined;
  readonly rule: string | undefined;
  readonly reasonCode: number;
  /** The message without the "PACKET at byte N:" prefix and rule suffix. */
  readonly detail: string;

  constructor(detail: string, init: ViolationInit) {
    const where = `${init.packetType ?? 'packet'} at byte ${init.offset}`;
    super(`${where}: ${detail}${init.rule ? ` [${init.rule}]` : ''}`);
    this.detail = detail;
    this.offset = init.offset;
    this.packetType = init.packetType;
    this.rule = init.rule;
    this.reasonCode = init.reasonCode ?? 0x81;
  }
}

/** A well-formed packet that breaks a protocol rule (reason code 0x82 Protocol Error by default). */
export class ProtocolError extends MalformedPacketError {
  override name = 'ProtocolError';
  constructor(detail: string, init: ViolationInit) {
    super(detail, { ...init, reasonCode: init.reasonCode ?? 0x82 });
  }
}

/** A packet whose announced size exceeds the receiver's maximum (reason code 0x95 Packet too large). */
export class PacketTooLargeError extends MalformedPacketError {
  override name = 'PacketTooLargeError';
  readonly size: number;
  readonly maximum: number;
  constructor(size: number, maximum: number, init: ViolationInit) {
    super(`packet of ${size} bytes exceeds the maximum packet size ${maximum}`, {
      ...init,
      reasonCode: 0x95,
    });
    this.size = size;
    this.maximum = maximum;
  }
}

/** A packet object that cannot be encoded (a missing packet id, a string over 65,535 bytes...). */
export class EncodeError extends Error {
  override name = 'EncodeError';
}
