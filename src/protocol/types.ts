/**
 * MQTT control packets as a discriminated union (discriminant: `type`).
 *
 * One shape serves MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0 (level 5); fields that only exist
 * in v5 (`properties`, reason codes on acks, subscription options) are optional and ignored when
 * encoding for an older version. Binary fields are Buffers; a decoded PUBLISH payload is a view
 * into the bytes it was decoded from (zero-copy): copy it (`Buffer.from(p.payload)`) if you keep it
 * beyond the read that produced it and the reader reuses its buffer.
 */

/** Protocol level as carried in CONNECT: 3 = MQTT 3.1, 4 = MQTT 3.1.1, 5 = MQTT 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;

export type PacketTypeName =
  | 'CONNECT'
  | 'CONNACK'
  | 'PUBLISH'
  | 'PUBACK'
  | 'PUBREC'
  | 'PUBREL'
  | 'PUBCOMP'
  | 'SUBSCRIBE'
  | 'SUBACK'
  | 'UNSUBSCRIBE'
  | 'UNSUBACK'
  | 'PINGREQ'
  | 'PINGRESP'
  | 'DISCONNECT'
  | 'AUTH';

/**
 * Every MQTT 5 property, named after the spec in camelCase. Repeatable properties are arrays kept
 * in wire order: `userProperties` (0x26) as [key, value] pairs, `subscriptionIdentifiers` (0x0B).
 */
export interface Properties {
  payloadFormatIndicator?: number; // 0x01 byte
  messageExpiryInterval?: number; // 0x02 u32
  contentType?: string; // 0x03
  responseTopic?: string; // 0x08
  correlationData?: Buffer; // 0x09
  subscriptionIdentifiers?: number[]; // 0x0B varint, repeatable in PUBLISH
  sessionExpiryInterval?: number; // 0x11 u32
  assignedClientIdentifier?: string; // 0x12
  serverKeepAlive?: number; // 0x13 u16
  authenticationMethod?: string; // 0x15
  authenticationData?: Buffer; // 0x16
  requestProblemInformation?: number; // 0x17 byte
  willDelayInterval?: number; // 0x18 u32
  requestResponseInformation?: number; // 0x19 byte
  responseInformation?: string; // 0x1A
  serverReference?: string; // 0x1C
  reasonString?: string; // 0x1F
  receiveMaximum?: number; // 0x21 u16
  topicAliasMaximum?: number; // 0x22 u16
  topicAlias?: number; // 0x23 u16
  maximumQoS?: number; // 0x24 byte
  retainAvailable?: number; // 0x25 byte
  userProperties?: [string, string][]; // 0x26, repeatable
  maximumPacketSize?: number; // 0x27 u32
  wildcardSubscriptionAvailable?: number; // 0x28 byte
  subscriptionIdentifierAvailable?: number; // 0x29 byte
  sharedSubscriptionAvailable?: number; // 0x2A byte
}

export interface Will {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: Properties;
}

export interface ConnectPacket {
  type: 'CONNECT';
  /** 'MQTT' for 3.1.1 and 5.0, 'MQIsdp' for 3.1. Defaulted from protocolVersion when encoding. */
  protocolName?: string;
  protocolVersion: ProtocolVersion;
  /**
   * Mosquitto's bridge flag ("try_private"): the protocol level byte has 0x80 set (3.1 and 3.1.1
   * only). A broker that knows it treats the client as a bridge: no copies of its own messages
   * back, retain flags as published.
   */
  bridge?: boolean;
  /** Clean Session (3.1, 3.1.1) / Clean Start (5.0). */
  clean: boolean;
  keepalive: number;
  clientId: string;
  will?: Will;
  username?: string;
  password?: Buffer;
  properties?: Properties;
}

export interface ConnackPacket {
  type: 'CONNACK';
  sessionPresent: boolean;
  /** v5 reason code; for 3.1/3.1.1 the CONNACK return code (0-5). */
  reasonCode: number;
  properties?: Properties;
}

export interface PublishPacket {
  type: 'PUBLISH';
  dup: boolean;
  qos: QoS;
  retain: boolean;
  /** May be '' in v5 when a Topic Alias property stands in for it. */
  topic: string;
  /** Present when qos > 0. */
  packetId?: number;
  payload: Buffer;
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP share one shape. */
export interface AckPacket<T extends 'PUBACK' | 'PUBREC' | 'PUBREL' | 'PUBCOMP'> {
  type: T;
  packetId: number;
  /** v5 only; 0 (Success) when absent. */
  reasonCode?: number;
  properties?: Properties;
  /** MQTT 3.1 PUBREL only: the DUP flag, set when it is sent again (3.1.1 and 5.0 have none). */
  dup?: boolean;
}
export type PubackPacket = AckPacket<'PUBACK'>;
export type PubrecPacket = AckPacket<'PUBREC'>;
export type PubrelPacket = AckPacket<'PUBREL'>;
export type PubcompPacket = AckPacket<'PUBCOMP'>;

export interface Subscription {
  topicFilter: string;
  qos: QoS;
  /** v5 subscription options (ignored for 3.1/3.1.1). */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: 'SUBSCRIBE';
  packetId: number;
  subscriptions: Subscription[];
  properties?: Properties;
  /** MQTT 3.1 only: the DUP flag, set when it is sent again (3.1.1 and 5.0 have none). */
  dup?: boolean;
}

export interface SubackPacket {
  type: 'SUBACK';
  packetId: number;
  /** Granted QoS (0, 1, 2) or a failure code (>= 0x80), one per subscription. */
  reasonCodes: number[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  type: 'UNSUBSCRIBE';
  packetId: number;
  topicFilters: string[];
  properties?: Properties;
  /** MQTT 3.1 only: the DUP flag, set when it is sent again (3.1.1 and 5.0 have none). */
  dup?: boolean;
}

export interface UnsubackPacket {
  type: 'UNSUBACK';
  packetId: number;
  /** v5 only: one per topic filter. Empty for 3.1/3.1.1. */
  reasonCodes: number[];
  properties?: Properties;
}

export interface PingreqPacket {
  type: 'PINGREQ';
}
export interface PingrespPacket {
  type: 'PINGRESP';
}

export interface DisconnectPacket {
  type: 'DISCONNECT';
  /** v5 only; 0 (Normal disconnection) when absent. */
  reasonCode?: number;
  properties?: Properties;
}

/** v5 only. */
export interface AuthPacket {
  type: 'AUTH';
  reasonCode?: number;
  properties?: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;

/** The packet of a given type name: `PacketOf<'PUBLISH'>` is PublishPacket. */
export type PacketOf<T extends PacketTypeName> = Extract<Packet, { type: T }>;

/**
 * A byte-map annotation recorded while decoding (only when asked for, see DecodeOptions.annotate):
 * `length` bytes at `offset` (absolute, within the buffer given to decode) hold `field`, whose
 * decoded value is `value`. `section` says which part of the packet the bytes belong to.
 */
export interface FieldNote {
  offset: number;
  length: number;
  section: 'fixed header' | 'variable header' | 'properties' | 'payload';
  field: string;
  value: string;
}
