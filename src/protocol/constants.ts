import type { PacketTypeName } from './types.js';

/** Control packet type numbers, fixed header bits 7-4 (MQTT 5.0 2.1.2, 3.1.1 2.2.1). */
export const PACKET_TYPE_CODE: Readonly<Record<PacketTypeName, number>> = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
};

/** Index = type number; index 0 is reserved (a Malformed Packet). */
export const PACKET_TYPE_NAMES: readonly (PacketTypeName | undefined)[] = [
  undefined,
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'AUTH',
];

export const ALL_PACKET_TYPES: readonly PacketTypeName[] = PACKET_TYPE_NAMES.filter(
  (n): n is PacketTypeName => n !== undefined,
);

/** Protocol names by level: 3.1 uses 'MQIsdp', 3.1.1 and 5.0 use 'MQTT'. */
export const PROTOCOL_NAME: Readonly<Record<3 | 4 | 5, string>> = { 3: 'MQIsdp', 4: 'MQTT', 5: 'MQTT' };
export const VERSION_LABEL: Readonly<Record<3 | 4 | 5, string>> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

export interface ReasonCodeInfo {
  code: number;
  /** The spec's name; where one code has several names (0x00), one per packet group. */
  name: string;
  packets: readonly PacketTypeName[];
}

/** The packets that may carry the general errors 0x80, 0x83 and 0x87 (the same six for each in table 2-6). */
const ANY_REPLY: readonly PacketTypeName[] = [
  'CONNACK',
  'PUBACK',
  'PUBREC',
  'SUBACK',
  'UNSUBACK',
  'DISCONNECT',
];

/** MQTT 5.0 reason codes, table 2-6 (section 2.4). One row per (code, name). */
export const REASON_CODES: readonly ReasonCodeInfo[] = [
  {
    code: 0x00,
    name: 'Success',
    packets: ['CONNACK', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'UNSUBACK', 'AUTH'],
  },
  { code: 0x00, name: 'Normal disconnection', packets: ['DISCONNECT'] },
  { code: 0x00, name: 'Granted QoS 0', packets: ['SUBACK'] },
  { code: 0x01, name: 'Granted QoS 1', packets: ['SUBACK'] },
  { code: 0x02, name: 'Granted QoS 2', packets: ['SUBACK'] },
  { code: 0x04, name: 'Disconnect with Will Message', packets: ['DISCONNECT'] },
  { code: 0x10, name: 'No matching subscribers', packets: ['PUBACK', 'PUBREC'] },
  { code: 0x11, name: 'No subscription existed', packets: ['UNSUBACK'] },
  { code: 0x18, name: 'Continue authentication', packets: ['AUTH'] },
  { code: 0x19, name: 'Re-authenticate', packets: ['AUTH'] },
  { code: 0x80, name: 'Unspecified error', packets: ANY_REPLY },
  { code: 0x81, name: 'Malformed Packet', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x82, name: 'Protocol Error', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x83, name: 'Implementation specific error', packets: ANY_REPLY },
  { code: 0x84, name: 'Unsupported Protocol Version', packets: ['CONNACK'] },
  { code: 0x85, name: 'Client Identifier not valid', packets: ['CONNACK'] },
  { code: 0x86, name: 'Bad User Name or Password', packets: ['CONNACK'] },
  { code: 0x87, name: 'Not authorized', packets: ANY_REPLY },
  { code: 0x88, name: 'Server unavailable', packets: ['CONNACK'] },
  { code: 0x89, name: 'Server busy', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x8a, name: 'Banned', packets: ['CONNACK'] },
  { code: 0x8b, name: 'Server shutting down', packets: ['DISCONNECT'] },
  { code: 0x8c, name: 'Bad authentication method', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x8d, name: 'Keep Alive timeout', packets: ['DISCONNECT'] },
  { code: 0x8e, name: 'Session taken over', packets: ['DISCONNECT'] },
  { code: 0x8f, name: 'Topic Filter invalid', packets: ['SUBACK', 'UNSUBACK', 'DISCONNECT'] },
  { code: 0x90, name: 'Topic Name invalid', packets: ['CONNACK', 'PUBACK', 'PUBREC', 'DISCONNECT'] },
  { code: 0x91, name: 'Packet Identifier in use', packets: ['PUBACK', 'PUBREC', 'SUBACK', 'UNSUBACK'] },
  { code: 0x92, name: 'Packet Identifier not found', packets: ['PUBREL', 'PUBCOMP'] },
  { code: 0x93, name: 'Receive Maximum exceeded', packets: ['DISCONNECT'] },
  { code: 0x94, name: 'Topic Alias invalid', packets: ['DISCONNECT'] },
  { code: 0x95, name: 'Packet too large', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x96, name: 'Message rate too high', packets: ['DISCONNECT'] },
  { code: 0x97, name: 'Quota exceeded', packets: ['CONNACK', 'PUBACK', 'PUBREC', 'SUBACK', 'DISCONNECT'] },
  { code: 0x98, name: 'Administrative action', packets: ['DISCONNECT'] },
  { code: 0x99, name: 'Payload format invalid', packets: ['CONNACK', 'PUBACK', 'PUBREC', 'DISCONNECT'] },
  { code: 0x9a, name: 'Retain not supported', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x9b, name: 'QoS not supported', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x9c, name: 'Use another server', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x9d, name: 'Server moved', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0x9e, name: 'Shared Subscriptions not supported', packets: ['SUBACK', 'DISCONNECT'] },
  { code: 0x9f, name: 'Connection rate exceeded', packets: ['CONNACK', 'DISCONNECT'] },
  { code: 0xa0, name: 'Maximum connect time', packets: ['DISCONNECT'] },
  { code: 0xa1, name: 'Subscription Identifiers not supported', packets: ['SUBACK', 'DISCONNECT'] },
  { code: 0xa2, name: 'Wildcard Subscriptions not supported', packets: ['SUBACK', 'DISCONNECT'] },
];

/** MQTT 3.1 / 3.1.1 CONNACK return codes (3.1.1 table 3.1). */
export const CONNACK_RETURN_CODES_V4: readonly string[] = [
  'Connection Accepted',
  'unacceptable protocol version',
  'identifier rejected',
  'Server unavailable',
  'bad user name or password',
  'not authorized',
];

/** Well-known reason codes by name, for code that sends them. */
export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/**
 * The spec name of a reason code as used in `packet` ('Granted QoS 1' in SUBACK, 'Normal
 * disconnection' in DISCONNECT). For 3.1/3.1.1 CONNACK pass version 4 to get the return-code name.
 * Unknown codes come back as 'unknown reason code 0xNN'.
 */
export function reasonCodeName(code: number, packet?: PacketTypeName, version: 3 | 4 | 5 = 5): string {
  if (version !== 5 && packet === 'CONNACK') {
    return CONNACK_RETURN_CODES_V4[code] ?? `unknown return code ${code}`;
  }
  if (version !== 5 && packet === 'SUBACK') {
    if (code === 0x80) return 'Failure';
  }
  let fallback: ReasonCodeInfo | undefined;
  for (const rc of REASON_CODES) {
    if (rc.code !== code) continue;
    if (packet === undefined || rc.packets.includes(packet)) return rc.name;
    fallback ??= rc;
  }
  return fallback?.name ?? `unknown reason code 0x${code.toString(16).padStart(2, '0')}`;
}

/** True when `code` is a v5 reason code the spec allows in `packet`. */
export function isValidReasonCode(code: number, packet: PacketTypeName): boolean {
  for (const rc of REASON_CODES) if (rc.code === code && rc.packets.includes(packet)) return true;
  return false;
}

/** `0x87 Not authorized`: how reason codes are shown to people everywhere in mq. */
export function formatReasonCode(code: number, packet?: PacketTypeName, version: 3 | 4 | 5 = 5): string {
  return `0x${code.toString(16).padStart(2, '0')} ${reasonCodeName(code, packet, version)}`;
}
