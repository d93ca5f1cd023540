/**
 * The encoder refuses what it cannot write faithfully: every value is range-checked before it is
 * narrowed to its wire width, so nothing is silently truncated (an EncodeError instead).
 */
import { describe, expect, it } from 'vitest';
import {
  decode,
  EncodeError,
  encode,
  encodeInto,
  type Packet,
  type ProtocolVersion,
  packetSize,
} from '../../src/protocol/index.js';

const big = 'x'.repeat(65_536);
const publish = (extra: Record<string, unknown>): Packet =>
  ({
    type: 'PUBLISH',
    dup: false,
    qos: 0,
    retain: false,
    topic: 't',
    payload: Buffer.alloc(0),
    ...extra,
  }) as Packet;

const REFUSED: [string, ProtocolVersion, Packet][] = [
  ['PUBLISH QoS 1 without a packet id', 4, publish({ qos: 1 })],
  ['PUBLISH QoS 3', 4, publish({ qos: 3, packetId: 1 })],
  ['a topic of 65,536 bytes', 4, publish({ topic: big })],
  ['a User Property value of 65,536 bytes', 5, publish({ properties: { userProperties: [['k', big]] } })],
  [
    'a password of 65,536 bytes',
    4,
    {
      type: 'CONNECT',
      protocolVersion: 4,
      clean: true,
      keepalive: 1,
      clientId: 'c',
      username: 'u',
      password: Buffer.alloc(65_536),
    },
  ],
  ['packet id 65,536', 4, { type: 'PUBACK', packetId: 65_536 }],
  ['packet id -1', 4, { type: 'PUBACK', packetId: -1 }],
  ['packet id 1.5', 4, { type: 'PUBACK', packetId: 1.5 }],
  [
    'keep alive 65,536',
    4,
    { type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 65_536, clientId: 'c' },
  ],
  ['reason code 256', 5, { type: 'PUBACK', packetId: 1, reasonCode: 256 }],
  ['Message Expiry Interval -1', 5, publish({ properties: { messageExpiryInterval: -1 } })],
  ['Message Expiry Interval 2^32', 5, publish({ properties: { messageExpiryInterval: 2 ** 32 } })],
  ['Topic Alias 65,536', 5, publish({ properties: { topicAlias: 65_536 } })],
  [
    'Subscription Identifier 268,435,456',
    5,
    publish({ properties: { subscriptionIdentifiers: [268_435_456] } }),
  ],
  ['SUBSCRIBE without subscriptions', 4, { type: 'SUBSCRIBE', packetId: 1, subscriptions: [] }],
  ['UNSUBSCRIBE without topic filters', 4, { type: 'UNSUBSCRIBE', packetId: 1, topicFilters: [] }],
  ['AUTH in 3.1.1', 4, { type: 'AUTH', reasonCode: 0 }],
];

describe('encode refuses packets it cannot write faithfully', () => {
  it.each(REFUSED)('%s', (_name, version, packet) => {
    expect(() => encode(packet, version)).toThrow(EncodeError);
  });
});

describe('encodeInto', () => {
  it('writes several packets back to back into one buffer (batched writes)', () => {
    const packets: Packet[] = [
      { type: 'PINGREQ' },
      publish({ topic: 'a/b', payload: Buffer.from('hello') }),
      { type: 'PUBACK', packetId: 7, reasonCode: 0x10 },
    ];
    const total = packets.reduce((n, p) => n + packetSize(p, 5), 0);
    const target = Buffer.alloc(total);
    let offset = 0;
    for (const p of packets) offset += encodeInto(p, 5, target, offset);
    expect(offset).toBe(total);
    expect(target).toEqual(Buffer.concat(packets.map((p) => encode(p, 5))));
  });
});

describe('a property block of 128 bytes or more (a length prefix of two or three bytes)', () => {
  // A block holding one Content Type of n bytes is 1 (identifier) + 2 (length) + n bytes long.
  const contentType = (block: number) => 'c'.repeat(block - 3);
  const varint = (n: number) => {
    const out: number[] = [];
    do {
      out.push((n & 0x7f) | (n >= 128 ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
    return out;
  };

  it.each([127, 128, 129, 16_383, 16_384])('PUBLISH whose property block is %i bytes', (size) => {
    // The block: a Content Type and a User Property of 1 + (2 + 1) + (2 + 1) bytes. Around it: the
    // topic (2 + 3 bytes) after the fixed header, then the payload (2 bytes) at the end.
    const properties = {
      contentType: contentType(size - 7),
      userProperties: [['k', 'v']] as [string, string][],
    };
    const packet = publish({ topic: 'a/b', payload: Buffer.from('hi'), properties });
    const bytes = encode(packet, 5);
    expect(bytes.length).toBe(packetSize(packet, 5));
    const prefix = varint(size);
    const at = bytes.length - 2 - size - prefix.length;
    expect([...bytes.subarray(at, at + prefix.length)], `prefix of ${size}`).toEqual(prefix);
    const back = decode(bytes, 5);
    expect(back).toMatchObject({ topic: 'a/b', properties });
    expect((back as { payload: Buffer }).payload.toString()).toBe('hi');
  });

  it('CONNECT with two long blocks (its own and the will), written into a larger buffer', () => {
    const packet: Packet = {
      type: 'CONNECT',
      protocolVersion: 5,
      clean: true,
      keepalive: 30,
      clientId: 'c',
      properties: { authenticationMethod: 'm'.repeat(300) },
      will: {
        topic: 'w',
        payload: Buffer.from('bye'),
        qos: 1,
        retain: false,
        properties: { contentType: contentType(200) },
      },
    };
    const size = packetSize(packet, 5);
    const target = Buffer.alloc(size + 20, 0xee);
    expect(encodeInto(packet, 5, target, 10)).toBe(size);
    expect(target.subarray(0, 10).every((b) => b === 0xee)).toBe(true);
    expect(target.subarray(10 + size).every((b) => b === 0xee)).toBe(true);
    expect(decode(target.subarray(10, 10 + size), 5)).toMatchObject({
      clientId: 'c',
      properties: packet.properties,
      will: { topic: 'w', properties: { contentType: contentType(200) } },
    });
  });
});
