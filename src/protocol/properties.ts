import type { PacketTypeName, Properties } from './types.js';

/** Wire types of MQTT 5 properties (5.0 section 1.5). */
export type PropertyType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

/** Where a property may appear: a packet type, or 'WILL' for the will properties in CONNECT. */
export type PropertyPlace = PacketTypeName | 'WILL';

export interface PropertyInfo {
  id: number;
  /** The field name in `Properties` (camelCase of the spec name; plural for repeatable ones). */
  key: keyof Properties;
  /** The spec's name, e.g. 'Message Expiry Interval'. */
  name: string;
  /** The kebab-case name used on the command line (`-D publish message-expiry-interval 60`). */
  flag: string;
  type: PropertyType;
  places: readonly PropertyPlace[];
  /** May appear more than once (User Property; Subscription Identifier in PUBLISH). */
  repeatable: boolean;
  /** For byte properties whose only legal values are 0 and 1. */
  boolean?: boolean;
}

const ACKS: readonly PropertyPlace[] = ['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'];

function p(
  id: number,
  key: keyof Properties,
  name: string,
  type: PropertyType,
  places: readonly PropertyPlace[],
  extra: { repeatable?: boolean; boolean?: boolean } = {},
): PropertyInfo {
  const flag = name.toLowerCase().replace(/ /g, '-');
  return { id, key, name, flag, type, places, repeatable: extra.repeatable ?? false, boolean: extra.boolean };
}

/** MQTT 5.0 table 2-4: all 27 properties. This one table drives decode, encode and size. */
export const PROPERTIES: readonly PropertyInfo[] = [
  p(0x01, 'payloadFormatIndicator', 'Payload Format Indicator', 'byte', ['PUBLISH', 'WILL'], {
    boolean: true,
  }),
  p(0x02, 'messageExpiryInterval', 'Message Expiry Interval', 'u32', ['PUBLISH', 'WILL']),
  p(0x03, 'contentType', 'Content Type', 'string', ['PUBLISH', 'WILL']),
  p(0x08, 'responseTopic', 'Response Topic', 'string', ['PUBLISH', 'WILL']),
  p(0x09, 'correlationData', 'Correlation Data', 'binary', ['PUBLISH', 'WILL']),
  p(0x0b, 'subscriptionIdentifiers', 'Subscription Identifier', 'varint', ['PUBLISH', 'SUBSCRIBE'], {
    repeatable: true,
  }),
  p(0x11, 'sessionExpiryInterval', 'Session Expiry Interval', 'u32', ['CONNECT', 'CONNACK', 'DISCONNECT']),
  p(0x12, 'assignedClientIdentifier', 'Assigned Client Identifier', 'string', ['CONNACK']),
  p(0x13, 'serverKeepAlive', 'Server Keep Alive', 'u16', ['CONNACK']),
  p(0x15, 'authenticationMethod', 'Authentication Method', 'string', ['CONNECT', 'CONNACK', 'AUTH']),
  p(0x16, 'authenticationData', 'Authentication Data', 'binary', ['CONNECT', 'CONNACK', 'AUTH']),
  p(0x17, 'requestProblemInformation', 'Request Problem Information', 'byte', ['CONNECT'], { boolean: true }),
  p(0x18, 'willDelayInterval', 'Will Delay Interval', 'u32', ['WILL']),
  p(0x19, 'requestResponseInformation', 'Request Response Information', 'byte', ['CONNECT'], {
    boolean: true,
  }),
  p(0x1a, 'responseInformation', 'Response Information', 'string', ['CONNACK']),
  p(0x1c, 'serverReference', 'Server Reference', 'string', ['CONNACK', 'DISCONNECT']),
  p(0x1f, 'reasonString', 'Reason String', 'string', [
    'CONNACK',
    ...ACKS,
    'SUBACK',
    'UNSUBACK',
    'DISCONNECT',
    'AUTH',
  ]),
  p(0x21, 'receiveMaximum', 'Receive Maximum', 'u16', ['CONNECT', 'CONNACK']),
  p(0x22, 'topicAliasMaximum', 'Topic Alias Maximum', 'u16', ['CONNECT', 'CONNACK']),
  p(0x23, 'topicAlias', 'Topic Alias', 'u16', ['PUBLISH']),
  p(0x24, 'maximumQoS', 'Maximum QoS', 'byte', ['CONNACK']),
  p(0x25, 'retainAvailable', 'Retain Available', 'byte', ['CONNACK'], { boolean: true }),
  p(
    0x26,
    'userProperties',
    'User Property',
    'pair',
    [
      'CONNECT',
      'CONNACK',
      'PUBLISH',
      'WILL',
      ...ACKS,
      'SUBSCRIBE',
      'SUBACK',
      'UNSUBSCRIBE',
      'UNSUBACK',
      'DISCONNECT',
      'AUTH',
    ],
    { repeatable: true },
  ),
  p(0x27, 'maximumPacketSize', 'Maximum Packet Size', 'u32', ['CONNECT', 'CONNACK']),
  p(0x28, 'wildcardSubscriptionAvailable', 'Wildcard Subscription Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
  p(0x29, 'subscriptionIdentifierAvailable', 'Subscription Identifier Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
  p(0x2a, 'sharedSubscriptionAvailable', 'Shared Subscription Available', 'byte', ['CONNACK'], {
    boolean: true,
  }),
];

/** Lookup by identifier: PROPERTY_BY_ID[0x26] is User Property. Sparse. */
export const PROPERTY_BY_ID: readonly (PropertyInfo | undefined)[] = (() => {
  const byId: (PropertyInfo | undefined)[] = new Array(256).fill(undefined);
  for (const info of PROPERTIES) byId[info.id] = info;
  return byId;
})();

/** Lookup by `Properties` key, spec name or flag name ('user-property'), case-insensitive for names. */
export const PROPERTY_BY_NAME: ReadonlyMap<string, PropertyInfo> = (() => {
  const byName = new Map<string, PropertyInfo>();
  for (const info of PROPERTIES) {
    byName.set(info.key, info);
    byName.set(info.name.toLowerCase(), info);
    byName.set(info.flag, info);
  }
  return byName;
})();
