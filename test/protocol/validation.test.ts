/**
 * Validation: every violation is a typed error with the byte offset of the offending field, the
 * spec rule id where the spec gives one (3.1.1 and 5.0 number some rules differently), and the
 * MQTT 5 reason code a receiver would answer with.
 */
import { describe, expect, it } from 'vitest';
import {
  decode,
  encode,
  MalformedPacketError,
  ProtocolError,
  type ProtocolVersion,
} from '../../src/protocol/index.js';
import { s } from '../fixtures/packets.js';

interface Violation {
  name: string;
  version: ProtocolVersion;
  bytes: number[];
  offset: number;
  /**
   * Expected rule id; an array lists ids the spec uses for the same rule; null: the spec has none;
   * 'any': the spec states the rule for the sender only, so citing it or not are both fine.
   */
  rule: string | readonly string[] | null | 'any';
  reasonCode: number;
}

/** A v4 (3.1.1) and a v5 variant of one violation. */
function both(
  name: string,
  rule: { 4: Violation['rule']; 5: Violation['rule'] },
  reasonCode: number,
  v4: { bytes: number[]; offset: number },
  v5: { bytes: number[]; offset: number },
): Violation[] {
  return [
    { name: `${name} (3.1.1)`, version: 4, rule: rule[4], reasonCode, ...v4 },
    { name: `${name} (5.0)`, version: 5, rule: rule[5], reasonCode, ...v5 },
  ];
}

/** A PUBLISH QoS 0 with topic `topic` (raw bytes) and payload 'x'. */
function publishWithTopicBytes(version: ProtocolVersion, topic: number[]): number[] {
  const props = version === 5 ? [0x00] : [];
  const body = [0x00, topic.length, ...topic, ...props, 0x78];
  return [0x30, body.length, ...body];
}

function subscribeWith(version: ProtocolVersion, filter: string, options = 0x00, flags = 0x82): number[] {
  const props = version === 5 ? [0x00] : [];
  const f = s(filter);
  const body = [0x00, 0x01, ...props, 0x00, f.length, ...f, options];
  return [flags, body.length, ...body];
}

function unsubscribeWith(version: ProtocolVersion, filter: string, flags = 0xa2): number[] {
  const props = version === 5 ? [0x00] : [];
  const f = s(filter);
  const body = [0x00, 0x01, ...props, 0x00, f.length, ...f];
  return [flags, body.length, ...body];
}

function connectWith(
  version: ProtocolVersion,
  flags: number,
  payload: number[],
  name = 'MQTT',
  level?: number,
) {
  const n = s(name);
  const props = version === 5 ? [0x00] : [];
  const body = [0x00, n.length, ...n, level ?? version, flags, 0x00, 0x3c, ...props, ...payload];
  return [0x10, body.length, ...body];
}

/** A v5 PUBLISH QoS 0 to topic 't' with the given property bytes. */
function publishWithProps(props: number[]): number[] {
  const body = [0x00, 0x01, 0x74, props.length, ...props, 0x78];
  return [0x30, body.length, ...body];
}

const CLIENT_ID_C = [0x00, 0x01, 0x63];
/** Offset of the connect flags byte for protocol name 'MQTT': 2 (fixed header) + 6 + 1 (level). */
const FLAGS_AT = 9;
/** Offset of the first byte after the filter / topic length prefix in subscribe packets. */
const FILTER_AT = { 4: 4, 5: 5 } as const;

const VIOLATIONS: Violation[] = [
  // Fixed header flags.
  ...both(
    'SUBSCRIBE with reserved flags 0000 instead of 0010',
    { 4: 'MQTT-3.8.1-1', 5: 'MQTT-3.8.1-1' },
    0x81,
    { bytes: subscribeWith(4, 't', 0, 0x80), offset: 0 },
    { bytes: subscribeWith(5, 't', 0, 0x80), offset: 0 },
  ),
  ...both(
    'UNSUBSCRIBE with reserved flags 0011',
    { 4: 'MQTT-3.10.1-1', 5: 'MQTT-3.10.1-1' },
    0x81,
    { bytes: unsubscribeWith(4, 't', 0xa3), offset: 0 },
    { bytes: unsubscribeWith(5, 't', 0xa3), offset: 0 },
  ),
  ...both(
    'PUBREL with reserved flags 0000',
    { 4: 'MQTT-3.6.1-1', 5: 'MQTT-3.6.1-1' },
    0x81,
    { bytes: [0x60, 0x02, 0x00, 0x01], offset: 0 },
    { bytes: [0x60, 0x02, 0x00, 0x01], offset: 0 },
  ),
  ...both(
    'PUBACK with a reserved flag bit set',
    { 4: 'MQTT-2.2.2-1', 5: 'MQTT-2.1.3-1' },
    0x81,
    { bytes: [0x41, 0x02, 0x00, 0x01], offset: 0 },
    { bytes: [0x41, 0x02, 0x00, 0x01], offset: 0 },
  ),
  ...both(
    'PINGREQ with a reserved flag bit set',
    { 4: 'MQTT-2.2.2-1', 5: 'MQTT-2.1.3-1' },
    0x81,
    { bytes: [0xc8, 0x00], offset: 0 },
    { bytes: [0xc8, 0x00], offset: 0 },
  ),
  ...both(
    'PUBLISH with QoS 3',
    { 4: 'MQTT-3.3.1-4', 5: 'MQTT-3.3.1-4' },
    0x81,
    { bytes: [0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01], offset: 0 },
    { bytes: [0x36, 0x06, 0x00, 0x01, 0x74, 0x00, 0x01, 0x00], offset: 0 },
  ),

  // Lengths.
  ...both(
    'remaining length over 4 bytes',
    // 3.1.1 has no rule id for it (2.2.3); 5.0 counts it under the Variable Byte Integer rule.
    { 4: null, 5: 'MQTT-1.5.5-1' },
    0x81,
    { bytes: [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], offset: 1 },
    { bytes: [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], offset: 1 },
  ),
  ...both(
    'remaining length not minimally encoded (0 in two bytes)',
    // 3.1.1 defines the encoding (2.2.3) without a rule id for it.
    { 4: null, 5: 'MQTT-1.5.5-1' },
    0x81,
    { bytes: [0xc0, 0x80, 0x00], offset: 1 },
    { bytes: [0xc0, 0x80, 0x00], offset: 1 },
  ),
  ...both(
    'remaining length past the data',
    { 4: null, 5: null },
    0x81,
    { bytes: [0x30, 0x0a, 0x00, 0x01, 0x74], offset: 1 },
    { bytes: [0x30, 0x0a, 0x00, 0x01, 0x74, 0x00], offset: 1 },
  ),
  ...both(
    'topic string length past the data',
    { 4: null, 5: null },
    0x81,
    { bytes: [0x30, 0x05, 0x00, 0x09, 0x61, 0x62, 0x63], offset: 2 },
    { bytes: [0x30, 0x05, 0x00, 0x09, 0x61, 0x62, 0x63], offset: 2 },
  ),
  ...both(
    'client id length past the data',
    { 4: null, 5: null },
    0x81,
    { bytes: connectWith(4, 0x02, [0x00, 0x05, 0x63]), offset: 12 },
    { bytes: connectWith(5, 0x02, [0x00, 0x05, 0x63]), offset: 13 },
  ),

  // UTF-8.
  ...both(
    'invalid UTF-8 (0xff) in a topic name',
    { 4: 'MQTT-1.5.3-1', 5: 'MQTT-1.5.4-1' },
    0x81,
    { bytes: publishWithTopicBytes(4, [0x61, 0xff, 0x62]), offset: 5 },
    { bytes: publishWithTopicBytes(5, [0x61, 0xff, 0x62]), offset: 5 },
  ),
  ...both(
    'UTF-16 surrogate U+D800 encoded in a topic name',
    { 4: 'MQTT-1.5.3-1', 5: 'MQTT-1.5.4-1' },
    0x81,
    { bytes: publishWithTopicBytes(4, [0xed, 0xa0, 0x80]), offset: 4 },
    { bytes: publishWithTopicBytes(5, [0xed, 0xa0, 0x80]), offset: 4 },
  ),
  ...both(
    'overlong UTF-8 encoding of "/" in a topic name',
    { 4: 'MQTT-1.5.3-1', 5: 'MQTT-1.5.4-1' },
    0x81,
    { bytes: publishWithTopicBytes(4, [0x61, 0xc0, 0xaf]), offset: 5 },
    { bytes: publishWithTopicBytes(5, [0x61, 0xc0, 0xaf]), offset: 5 },
  ),
  ...both(
    'U+0000 in a topic name',
    { 4: 'MQTT-1.5.3-2', 5: 'MQTT-1.5.4-2' },
    0x81,
    { bytes: publishWithTopicBytes(4, [0x61, 0x00, 0x62]), offset: 5 },
    { bytes: publishWithTopicBytes(5, [0x61, 0x00, 0x62]), offset: 5 },
  ),
  ...both(
    'U+0000 in a client id',
    { 4: 'MQTT-1.5.3-2', 5: 'MQTT-1.5.4-2' },
    0x81,
    { bytes: connectWith(4, 0x02, [0x00, 0x02, 0x63, 0x00]), offset: 15 },
    { bytes: connectWith(5, 0x02, [0x00, 0x02, 0x63, 0x00]), offset: 16 },
  ),
  {
    name: 'invalid UTF-8 in a user property value (5.0)',
    version: 5,
    bytes: publishWithProps([0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0xfe]),
    offset: 12, // the bad byte: 2 + topic 3 + property length 1 + id 1 + key 3 + value length 2
    rule: 'MQTT-1.5.4-1',
    reasonCode: 0x81,
  },

  // Topic names and filters.
  ...['a/#', 'a/+', '+', '#', 'a+b'].flatMap((topic) =>
    both(
      `wildcard in the PUBLISH topic name '${topic}'`,
      { 4: 'MQTT-3.3.2-2', 5: 'MQTT-3.3.2-2' },
      0x90,
      // The offset is the wildcard's: 4 (the topic's first byte) + its index.
      { bytes: publishWithTopicBytes(4, s(topic)), offset: 4 + topic.search(/[+#]/) },
      { bytes: publishWithTopicBytes(5, s(topic)), offset: 4 + topic.search(/[+#]/) },
    ),
  ),
  // 3.1.1 and 5.0 number the wildcard rules differently: '#' is 4.7.1-2 in 3.1.1 and 4.7.1-1 in 5.0,
  // '+' is 4.7.1-3 in 3.1.1 and 4.7.1-2 in 5.0 (5.0 moved "no wildcards in a Topic Name" to 4.7.0-1).
  ...(
    [
      ['a#', { 4: 'MQTT-4.7.1-2', 5: 'MQTT-4.7.1-1' }],
      ['a/#/b', { 4: 'MQTT-4.7.1-2', 5: 'MQTT-4.7.1-1' }],
      ['#/', { 4: 'MQTT-4.7.1-2', 5: 'MQTT-4.7.1-1' }],
      ['+a', { 4: 'MQTT-4.7.1-3', 5: 'MQTT-4.7.1-2' }],
      ['a+', { 4: 'MQTT-4.7.1-3', 5: 'MQTT-4.7.1-2' }],
      ['a/b+/c', { 4: 'MQTT-4.7.1-3', 5: 'MQTT-4.7.1-2' }],
      ['', { 4: 'MQTT-4.7.3-1', 5: 'MQTT-4.7.3-1' }],
    ] as const
  ).flatMap(([filter, rule]) => [
    ...both(
      `SUBSCRIBE with malformed filter '${filter}'`,
      rule,
      0x8f,
      { bytes: subscribeWith(4, filter), offset: FILTER_AT[4] },
      { bytes: subscribeWith(5, filter), offset: FILTER_AT[5] },
    ),
    ...both(
      `UNSUBSCRIBE with malformed filter '${filter}'`,
      rule,
      0x8f,
      { bytes: unsubscribeWith(4, filter), offset: FILTER_AT[4] },
      { bytes: unsubscribeWith(5, filter), offset: FILTER_AT[5] },
    ),
  ]),

  // Packet identifiers.
  ...both(
    'PUBLISH QoS 1 with packet id 0',
    { 4: 'MQTT-2.3.1-1', 5: 'MQTT-2.2.1-3' },
    0x81,
    { bytes: [0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x00], offset: 5 },
    { bytes: [0x32, 0x06, 0x00, 0x01, 0x74, 0x00, 0x00, 0x00], offset: 5 },
  ),
  ...both(
    'SUBSCRIBE with packet id 0',
    { 4: 'MQTT-2.3.1-1', 5: 'MQTT-2.2.1-3' },
    0x81,
    { bytes: [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x74, 0x00], offset: 2 },
    { bytes: [0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x74, 0x00], offset: 2 },
  ),
  ...both(
    'UNSUBSCRIBE with packet id 0',
    { 4: 'MQTT-2.3.1-1', 5: 'MQTT-2.2.1-3' },
    0x81,
    { bytes: [0xa2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x74], offset: 2 },
    { bytes: [0xa2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x74], offset: 2 },
  ),

  // SUBSCRIBE / UNSUBSCRIBE payloads.
  ...both(
    'SUBSCRIBE without any topic filter',
    { 4: 'MQTT-3.8.3-3', 5: 'MQTT-3.8.3-2' },
    0x82,
    { bytes: [0x82, 0x02, 0x00, 0x01], offset: 4 },
    { bytes: [0x82, 0x03, 0x00, 0x01, 0x00], offset: 5 },
  ),
  ...both(
    'UNSUBSCRIBE without any topic filter',
    { 4: 'MQTT-3.10.3-2', 5: 'MQTT-3.10.3-2' },
    0x82,
    { bytes: [0xa2, 0x02, 0x00, 0x01], offset: 4 },
    { bytes: [0xa2, 0x03, 0x00, 0x01, 0x00], offset: 5 },
  ),
  {
    name: 'SUBSCRIBE options with reserved bits 7-2 set (3.1.1)',
    version: 4,
    bytes: subscribeWith(4, 't', 0x04),
    offset: 7,
    // The 3.1.1 text prints this id as "MQTT-3-8.3-4".
    rule: ['MQTT-3-8.3-4', 'MQTT-3.8.3-4'],
    reasonCode: 0x81,
  },
  {
    name: 'SUBSCRIBE requesting QoS 3 (3.1.1)',
    version: 4,
    bytes: subscribeWith(4, 't', 0x03),
    offset: 7,
    rule: ['MQTT-3-8.3-4', 'MQTT-3.8.3-4'],
    reasonCode: 0x81,
  },
  {
    name: 'SUBSCRIBE options with reserved bits 7-6 set (5.0)',
    version: 5,
    bytes: subscribeWith(5, 't', 0xc0),
    offset: 8,
    rule: 'MQTT-3.8.3-5',
    reasonCode: 0x81,
  },
  {
    name: 'SUBSCRIBE with Retain Handling 3 (5.0: a Protocol Error)',
    version: 5,
    bytes: subscribeWith(5, 't', 0x30),
    offset: 8,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'SUBSCRIBE requesting QoS 3 (5.0: a Protocol Error)',
    version: 5,
    bytes: subscribeWith(5, 't', 0x03),
    offset: 8,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'SUBSCRIBE with No Local on a shared subscription (5.0)',
    version: 5,
    bytes: subscribeWith(5, '$share/g/t', 0x04),
    offset: 17,
    rule: 'MQTT-3.8.3-4',
    reasonCode: 0x82,
  },

  // MQTT 5 properties.
  {
    name: 'duplicate Message Expiry Interval',
    version: 5,
    bytes: publishWithProps([0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02]),
    offset: 11, // the second identifier: 2 + topic 3 + property length 1 + first property 5
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'duplicate Receive Maximum in CONNACK',
    version: 5,
    bytes: [0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x0a, 0x21, 0x00, 0x0b],
    offset: 8,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'duplicate Topic Alias',
    version: 5,
    bytes: publishWithProps([0x23, 0x00, 0x01, 0x23, 0x00, 0x02]),
    offset: 9,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'Session Expiry Interval in a PUBLISH (wrong packet)',
    version: 5,
    bytes: publishWithProps([0x11, 0x00, 0x00, 0x00, 0x01]),
    offset: 6,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'Topic Alias in a PUBACK (wrong packet)',
    version: 5,
    bytes: [0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01],
    offset: 6,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'Will Delay Interval among the CONNECT properties (a will property)',
    version: 5,
    bytes: (() => {
      const body = [0x00, 0x04, ...s('MQTT'), 0x05, 0x02, 0x00, 0x3c, 0x05, 0x18, 0, 0, 0, 1, ...CLIENT_ID_C];
      return [0x10, body.length, ...body];
    })(),
    offset: 13,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'unknown property identifier 0x7f',
    version: 5,
    bytes: publishWithProps([0x7f, 0x00]),
    offset: 6,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'property length past the end of the packet',
    version: 5,
    bytes: [0x30, 0x06, 0x00, 0x01, 0x74, 0x10, 0x01, 0x01],
    offset: 5,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'property value past the end of the property list',
    version: 5,
    // Property length 2, but the Content Type inside announces 5 bytes of string.
    bytes: [0x30, 0x0c, 0x00, 0x01, 0x74, 0x02, 0x03, 0x00, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65],
    offset: 7,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'Subscription Identifier 0 in SUBSCRIBE',
    version: 5,
    bytes: [0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x74, 0x00],
    offset: 6, // the value
    rule: null,
    reasonCode: 0x82,
  },
  {
    // Repeatable in PUBLISH (one per matching subscription), but a SUBSCRIBE carries at most one.
    name: 'Subscription Identifier twice in SUBSCRIBE',
    version: 5,
    bytes: [0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 0x74, 0x00],
    offset: 7, // the second identifier
    rule: null,
    reasonCode: 0x82,
  },

  // CONNECT.
  ...both(
    'CONNECT reserved flag bit 0 set',
    { 4: 'MQTT-3.1.2-3', 5: 'MQTT-3.1.2-3' },
    0x81,
    { bytes: connectWith(4, 0x03, CLIENT_ID_C), offset: FLAGS_AT },
    { bytes: connectWith(5, 0x03, CLIENT_ID_C), offset: FLAGS_AT },
  ),
  ...both(
    'CONNECT with Will QoS 1 but no will flag',
    { 4: ['MQTT-3.1.2-13', 'MQTT-3.1.2-11'], 5: 'MQTT-3.1.2-11' },
    0x81,
    { bytes: connectWith(4, 0x0a, CLIENT_ID_C), offset: FLAGS_AT },
    { bytes: connectWith(5, 0x0a, CLIENT_ID_C), offset: FLAGS_AT },
  ),
  ...both(
    'CONNECT with Will Retain but no will flag',
    { 4: ['MQTT-3.1.2-15', 'MQTT-3.1.2-11'], 5: 'MQTT-3.1.2-13' },
    0x81,
    { bytes: connectWith(4, 0x22, CLIENT_ID_C), offset: FLAGS_AT },
    { bytes: connectWith(5, 0x22, CLIENT_ID_C), offset: FLAGS_AT },
  ),
  ...both(
    'CONNECT with Will QoS 3',
    { 4: 'MQTT-3.1.2-14', 5: 'MQTT-3.1.2-12' },
    0x81,
    { bytes: connectWith(4, 0x1e, [...CLIENT_ID_C, 0x00, 0x01, 0x77, 0x00, 0x00]), offset: FLAGS_AT },
    { bytes: connectWith(5, 0x1e, [...CLIENT_ID_C, 0x00, 0x00, 0x01, 0x77, 0x00, 0x00]), offset: FLAGS_AT },
  ),
  {
    name: 'CONNECT with a password but no user name (3.1.1)',
    version: 4,
    bytes: connectWith(4, 0x42, [...CLIENT_ID_C, 0x00, 0x02, 0x70, 0x77]),
    offset: FLAGS_AT,
    rule: 'MQTT-3.1.2-22',
    reasonCode: 0x81,
  },
  ...both(
    'CONNECT with an unknown protocol name',
    { 4: 'MQTT-3.1.2-1', 5: 'MQTT-3.1.2-1' },
    0x84,
    { bytes: connectWith(4, 0x02, CLIENT_ID_C, 'MQTX'), offset: 2 },
    { bytes: connectWith(5, 0x02, CLIENT_ID_C, 'MQTX'), offset: 2 },
  ),
  ...both(
    'CONNECT with an unsupported protocol level',
    { 4: 'MQTT-3.1.2-2', 5: 'MQTT-3.1.2-2' },
    0x84,
    { bytes: connectWith(4, 0x02, CLIENT_ID_C, 'MQTT', 6), offset: 8 },
    { bytes: connectWith(5, 0x02, CLIENT_ID_C, 'MQTT', 6), offset: 8 },
  ),

  ...both(
    'CONNECT naming MQIsdp with level 4',
    { 4: 'MQTT-3.1.2-1', 5: 'MQTT-3.1.2-1' },
    0x84,
    { bytes: connectWith(4, 0x02, CLIENT_ID_C, 'MQIsdp', 4), offset: 2 },
    { bytes: connectWith(5, 0x02, CLIENT_ID_C, 'MQIsdp', 5), offset: 2 },
  ),
  {
    name: 'Subscription Identifier among the will properties',
    version: 5,
    bytes: connectWith(5, 0x06, [...CLIENT_ID_C, 0x02, 0x0b, 0x01, 0x00, 0x01, 0x77, 0x00, 0x00]),
    offset: 17,
    rule: null,
    reasonCode: 0x81,
  },

  // PUBLISH.
  ...both(
    'PUBLISH QoS 0 with DUP set',
    { 4: 'MQTT-3.3.1-2', 5: 'MQTT-3.3.1-2' },
    0x81,
    { bytes: [0x38, 0x04, 0x00, 0x01, 0x74, 0x78], offset: 0 },
    { bytes: [0x38, 0x05, 0x00, 0x01, 0x74, 0x00, 0x78], offset: 0 },
  ),
  {
    name: 'PUBLISH with an empty topic name (3.1.1)',
    version: 4,
    bytes: [0x30, 0x03, 0x00, 0x00, 0x78],
    offset: 2,
    rule: 'MQTT-4.7.3-1',
    reasonCode: 0x81,
  },
  {
    name: 'PUBLISH with an empty topic name and no Topic Alias (5.0)',
    version: 5,
    bytes: publishWithTopicBytes(5, []),
    offset: 2,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'PUBLISH with Topic Alias 0',
    version: 5,
    bytes: publishWithProps([0x23, 0x00, 0x00]),
    offset: 7,
    rule: 'any', // [MQTT-3.3.2-8] binds the sender
    reasonCode: 0x82,
  },
  {
    name: 'PUBLISH with Payload Format Indicator 2',
    version: 5,
    bytes: publishWithProps([0x01, 0x02]),
    offset: 7,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'PUBLISH with a Response Topic containing a wildcard',
    version: 5,
    bytes: publishWithProps([0x08, 0x00, 0x03, 0x61, 0x2f, 0x23]),
    offset: 11,
    rule: 'MQTT-3.3.2-14',
    reasonCode: 0x82,
  },
  {
    name: 'Subscription Identifier over 4 bytes',
    version: 5,
    bytes: publishWithProps([0x0b, 0x80, 0x80, 0x80, 0x80, 0x01]),
    offset: 7,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'Subscription Identifier not minimally encoded',
    version: 5,
    bytes: publishWithProps([0x0b, 0x81, 0x00]),
    offset: 7,
    rule: 'MQTT-1.5.5-1',
    reasonCode: 0x81,
  },

  // Packet lengths.
  ...both(
    'PINGREQ with a remaining length of 1',
    { 4: null, 5: null },
    0x81,
    { bytes: [0xc0, 0x01, 0x00], offset: 2 },
    { bytes: [0xc0, 0x01, 0x00], offset: 2 },
  ),
  {
    name: 'PUBACK with 3 bytes (3.1.1 has no reason code)',
    version: 4,
    bytes: [0x40, 0x03, 0x00, 0x01, 0x00],
    offset: 4,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'bytes after the end of the packet',
    version: 4,
    bytes: [0xc0, 0x00, 0x00],
    offset: 2,
    rule: null,
    reasonCode: 0x81,
  },

  // Reason codes.
  {
    name: 'PUBACK with reason code 0x05 (not a PUBACK reason code)',
    version: 5,
    bytes: [0x40, 0x03, 0x00, 0x01, 0x05],
    offset: 4,
    rule: 'any', // [MQTT-3.4.2-1] binds the sender
    reasonCode: 0x81,
  },
  {
    name: 'DISCONNECT with reason code 0x18 (an AUTH code)',
    version: 5,
    bytes: [0xe0, 0x01, 0x18],
    offset: 2,
    rule: 'any',
    reasonCode: 0x81,
  },
  {
    name: 'CONNACK return code 6 (3.1.1 defines 0-5)',
    version: 4,
    bytes: [0x20, 0x02, 0x00, 0x06],
    offset: 3,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'SUBACK return code 3 (3.1.1)',
    version: 4,
    bytes: [0x90, 0x03, 0x00, 0x01, 0x03],
    offset: 4,
    rule: 'MQTT-3.9.3-2',
    reasonCode: 0x81,
  },
  ...both(
    'SUBACK without reason codes',
    { 4: null, 5: null },
    0x82,
    { bytes: [0x90, 0x02, 0x00, 0x01], offset: 4 },
    { bytes: [0x90, 0x03, 0x00, 0x01, 0x00], offset: 5 },
  ),

  // CONNACK.
  {
    name: 'CONNACK without its property length (5.0 has no short form for it)',
    version: 5,
    bytes: [0x20, 0x02, 0x00, 0x00],
    offset: 4,
    rule: null,
    reasonCode: 0x81,
  },
  {
    name: 'CONNACK with Maximum QoS 2',
    version: 5,
    bytes: [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02],
    offset: 6,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'CONNACK with Receive Maximum 0',
    version: 5,
    bytes: [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00],
    offset: 6,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'CONNACK with Maximum Packet Size 0',
    version: 5,
    bytes: [0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00],
    offset: 6,
    rule: null,
    reasonCode: 0x82,
  },
  {
    name: 'CONNACK with reserved acknowledge flags set (5.0)',
    version: 5,
    bytes: [0x20, 0x03, 0x02, 0x00, 0x00],
    offset: 2,
    rule: 'MQTT-3.2.2-1',
    reasonCode: 0x81,
  },
];

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but decoding succeeded');
}

describe('decode rejects each violation with a typed error, offset, rule and reason code', () => {
  it.each(VIOLATIONS.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    const err = catchError(() => decode(Buffer.from(v.bytes), v.version));
    expect(err).toBeInstanceOf(MalformedPacketError);
    const e = err as MalformedPacketError;
    if (v.reasonCode === 0x81) expect(e).not.toBeInstanceOf(ProtocolError);
    if (v.reasonCode === 0x82) expect(e).toBeInstanceOf(ProtocolError);
    expect({ reasonCode: e.reasonCode, offset: e.offset }).toEqual({
      reasonCode: v.reasonCode,
      offset: v.offset,
    });
    if (v.rule === null) expect(e.rule).toBeUndefined();
    else if (v.rule === 'any') expect(typeof e.rule === 'string' || e.rule === undefined).toBe(true);
    else if (typeof v.rule === 'string') expect(e.rule).toBe(v.rule);
    else expect(v.rule).toContain(e.rule);
    // The message says where, and cites the rule.
    expect(e.message).toContain(`at byte ${v.offset}`);
    if (e.rule !== undefined) expect(e.message).toContain(`[${e.rule}]`);
  });
});

describe('valid edge cases are accepted', () => {
  const ok: [string, ProtocolVersion, number[]][] = [
    ['a topic with "$" and empty levels', 4, publishWithTopicBytes(4, s('$SYS//x/'))],
    ['a topic of one "/"', 5, publishWithTopicBytes(5, s('/'))],
    ['a 4-byte UTF-8 character in a topic', 5, publishWithTopicBytes(5, s('a/😀'))],
    ['a BOM in a topic (not stripped) [MQTT-1.5.4-3]', 5, publishWithTopicBytes(5, [0xef, 0xbb, 0xbf, 0x61])],
    ['filter "#"', 4, subscribeWith(4, '#')],
    ['filter "+"', 4, subscribeWith(4, '+')],
    ['filter "+/+"', 5, subscribeWith(5, '+/+')],
    ['filter "/#"', 5, subscribeWith(5, '/#')],
    ['filter "$SYS/#"', 4, subscribeWith(4, '$SYS/#')],
    ['shared subscription "$share/g/#"', 5, subscribeWith(5, '$share/g/#')],
  ];
  it.each(ok)('%s', (_name, version, bytes) => {
    expect(() => decode(Buffer.from(bytes), version)).not.toThrow();
  });

  it('MQTT 3.1: PUBREL, SUBSCRIBE and UNSUBSCRIBE sent again carry DUP (flags 1010), kept on re-encoding; 3.1.1 refuses it', () => {
    for (const bytes of [
      [0x6a, 0x02, 0x00, 0x07],
      subscribeWith(3, 't', 0, 0x8a),
      unsubscribeWith(3, 't', 0xaa),
    ]) {
      const p = decode(Buffer.from(bytes), 3);
      expect('dup' in p && p.dup).toBe(true);
      expect([...encode(p, 3)]).toEqual(bytes);
      expect(() => decode(Buffer.from(bytes), 4)).toThrow(MalformedPacketError);
    }
    expect(decode(Buffer.from([0x62, 0x02, 0x00, 0x07]), 3)).not.toHaveProperty('dup');
  });

  it('a PUBLISH whose remaining length takes 4 bytes decodes', () => {
    const payload = Buffer.alloc(2_097_152 - 3, 0x61); // remaining length 2,097,152 = 0x80 0x80 0x80 0x01
    const bytes = Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01, 0x00, 0x01, 0x74]), payload]);
    const p = decode(bytes, 4);
    expect(p.type === 'PUBLISH' && p.payload.length).toBe(payload.length);
  });
});

describe('collect mode (decode with {errors: []})', () => {
  // SUBSCRIBE with flags 0000 [MQTT-3.8.1-1] and the filter 'a#' [MQTT-4.7.1-2]: two independent
  // violations after which the packet is still readable.
  const bytes = Buffer.from(subscribeWith(4, 'a#', 0x01, 0x80));

  it('returns the packet and lists every violation, in byte order', () => {
    const errors: MalformedPacketError[] = [];
    const p = decode(bytes, 4, { errors });
    expect(p).toMatchObject({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: [{ topicFilter: 'a#', qos: 1 }],
    });
    expect(errors.map((e) => [e.rule, e.offset])).toEqual([
      ['MQTT-3.8.1-1', 0],
      ['MQTT-4.7.1-2', 4], // 3.1.1's id for a misplaced '#'
    ]);
    for (const e of errors) expect(e).toBeInstanceOf(MalformedPacketError);
  });

  it('without it, the first violation throws', () => {
    const err = catchError(() => decode(bytes, 4));
    expect(err).toBeInstanceOf(MalformedPacketError);
    expect((err as MalformedPacketError).rule).toBe('MQTT-3.8.1-1');
  });

  it('also collects across fields in v5: a wildcard topic name and a duplicate property', () => {
    const body = [0x00, 0x03, ...s('a/+'), 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02, 0x78];
    const errors: MalformedPacketError[] = [];
    const p = decode(Buffer.from([0x30, body.length, ...body]), 5, { errors });
    expect(p).toMatchObject({ type: 'PUBLISH', topic: 'a/+' });
    expect(errors.map((e) => [e.reasonCode, e.offset])).toEqual([
      [0x90, 6],
      [0x82, 11],
    ]);
  });

  it('a structural violation still throws: nothing can be read past it', () => {
    const errors: MalformedPacketError[] = [];
    expect(() => decode(Buffer.from([0x30, 0x05, 0x00, 0x09, 0x61, 0x62, 0x63]), 4, { errors })).toThrow(
      MalformedPacketError,
    );
  });

  it('a valid packet leaves the list empty', () => {
    const errors: MalformedPacketError[] = [];
    decode(Buffer.from(subscribeWith(4, 'a/#', 0x01)), 4, { errors });
    expect(errors).toEqual([]);
  });
});
