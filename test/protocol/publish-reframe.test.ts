/**
 * Forwarding a PUBLISH by its bytes (the broker's fan-out path): locatePublish finds the parts of
 * the bytes as received, writeReframedPublish writes them again with other flags, another packet
 * identifier, and the properties section added or dropped between 3.1.1 and 5.0. Every result must
 * be the bytes the encoder makes of the same message.
 */
import { describe, expect, it } from 'vitest';
import { decode, encode, type Properties, type PublishPacket, type QoS } from '../../src/protocol/index.js';
import {
  locatePublish,
  type PublishLayout,
  publishFirstByte,
  reframedPublishLength,
  writeReframedPublish,
} from '../../src/protocol/packets/publish.js';

const layout = (): PublishLayout => ({ topicOffset: 0, pidOffset: 0, propsOffset: 0, payloadOffset: 0 });

function publish(
  topic: string,
  payload: Buffer,
  qos: QoS,
  properties?: Properties,
  packetId = 7,
): PublishPacket {
  const p: PublishPacket = { type: 'PUBLISH', dup: false, qos, retain: false, topic, payload };
  if (qos > 0) p.packetId = packetId;
  if (properties !== undefined) p.properties = properties;
  return p;
}

describe('locatePublish', () => {
  it('finds the topic, packet id, properties and payload of a v5 QoS 1 PUBLISH', () => {
    const raw = Buffer.from(
      [
        '32 0c', // PUBLISH QoS 1, remaining length 12
        '0003 612f62', // topic 'a/b' (offset 2)
        '0007', // packet identifier 7 (offset 7)
        '02 0101', // properties: Payload Format Indicator 1 (offset 9)
        '6869', // payload 'hi' (offset 12)
      ]
        .join('')
        .replaceAll(' ', ''),
      'hex',
    );
    const at = layout();
    locatePublish(raw, 2, at);
    expect(at).toEqual({ topicOffset: 2, pidOffset: 7, propsOffset: 9, payloadOffset: 12 });
  });

  it('QoS 0 has no packet identifier; a 2-byte remaining length moves everything by one', () => {
    const raw = encode(publish('t', Buffer.alloc(200, 1), 0), 4);
    expect(raw.subarray(0, 3).toString('hex')).toBe('30cb01'); // remaining length 203 in two bytes
    const at = layout();
    locatePublish(raw, 200, at);
    expect(at).toEqual({ topicOffset: 3, pidOffset: 6, propsOffset: 6, payloadOffset: 6 });
  });
});

describe('writeReframedPublish: the bytes the encoder makes of the same message', () => {
  const props: Properties = { contentType: 'text/plain', userProperties: [['k', 'v']] };
  const messages: [string, PublishPacket][] = [
    ['QoS 0, empty payload', publish('a', Buffer.alloc(0), 0)],
    ['QoS 1, small', publish('sensors/1/temp', Buffer.from('21.5'), 1)],
    ['QoS 2, small', publish('x/y', Buffer.from('two'), 2, undefined, 65_535)],
    // 120 + header fields: adding a packet id or a properties section crosses 127, and the
    // remaining length grows to two bytes (and shrinks back the other way).
    ['QoS 0, at the 1-byte remaining length edge', publish('edge', Buffer.alloc(120, 0x61), 0)],
    ['QoS 1, at the 1-byte remaining length edge', publish('edge', Buffer.alloc(119, 0x62), 1)],
    ['QoS 1, 70 KiB (3-byte remaining length)', publish('big', Buffer.alloc(70_000, 0x63), 1)],
    ['a multi-byte UTF-8 topic', publish('é/ü', Buffer.from('u'), 1)],
  ];
  const cases: [string, PublishPacket, 4 | 5][] = [];
  for (const [name, p] of messages) {
    cases.push([`${name}, received as 3.1.1`, p, 4]);
    cases.push([`${name}, received as 5.0`, p, 5]);
    if (p.qos > 0) cases.push([`${name}, received as 5.0 with properties`, { ...p, properties: props }, 5]);
  }

  it.each(cases)('%s', (_name, sent, receivedAs) => {
    const raw = encode(sent, receivedAs);
    const received = decode(raw, receivedAs) as PublishPacket;
    const at = layout();
    locatePublish(raw, received.payload.length, at);
    const rawV5 = receivedAs === 5;
    for (const to of [4, 5] as const) {
      for (const qos of [0, 1, 2] as const) {
        for (const [retain, dup] of [
          [false, false],
          [true, false],
          [false, true],
        ] as const) {
          if (dup && qos === 0) continue; // [MQTT-3.3.1-2]
          const v5 = to === 5;
          const expected = encode(
            {
              ...publish(received.topic, received.payload, qos, v5 ? received.properties : undefined, 300),
              retain,
              dup,
            },
            to,
          );
          const length = reframedPublishLength(raw, at, rawV5, qos, v5);
          expect(length).toBe(expected.length);
          // Written into a larger buffer at an offset, as the broker batches its writes.
          const buf = Buffer.alloc(length + 10, 0xee);
          const end = writeReframedPublish(
            raw,
            at,
            rawV5,
            buf,
            4,
            publishFirstByte(qos, retain, dup),
            300,
            v5,
          );
          expect(end).toBe(4 + length);
          expect(buf.subarray(4, end).toString('hex')).toBe(expected.toString('hex'));
          expect(buf[3]).toBe(0xee);
          expect(buf[end]).toBe(0xee);
        }
      }
    }
  });
});

describe('publishFirstByte', () => {
  it.each([
    [0, false, false, 0x30],
    [1, false, false, 0x32],
    [2, true, false, 0x35],
    [1, true, true, 0x3b],
  ] as const)('QoS %i, retain %s, dup %s', (qos, retain, dup, first) => {
    expect(publishFirstByte(qos, retain, dup)).toBe(first);
  });
});
