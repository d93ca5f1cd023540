import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import { jsonToPacket, packetToJson, parseProtocolVersion } from '../../src/cli/packet-json.js';
import { decode, encode, type Packet } from '../../src/protocol/index.js';
import { FIXTURES } from '../fixtures/packets.js';

/** decode -> packetToJson -> JSON text -> jsonToPacket -> encode. */
function roundTrip(bytes: Buffer, version: 3 | 4 | 5): { json: Record<string, unknown>; again: Buffer } {
  const packet = decode(bytes, version);
  const json = JSON.parse(
    JSON.stringify(packetToJson(packet, { version, remainingLength: bytes.length - 2 })),
  );
  const back = jsonToPacket(json);
  expect(back.version).toBe(version);
  return { json, again: encode(back.packet, back.version) };
}

describe('decode -> JSON -> encode gives the same bytes, for every golden fixture', () => {
  it.each(FIXTURES.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    const bytes = Buffer.from(f.bytes);
    const { again } = roundTrip(bytes, f.version);
    // The JSON loses nothing the Packet holds: the input bytes themselves come back (the codec
    // re-encodes every decoded packet to its own bytes, short forms and empty property blocks too).
    expect(again.toString('hex')).toBe(bytes.toString('hex'));
  });
});

describe('property order', () => {
  it('JSON keeps the order properties had on the wire, and gives it back', () => {
    const packet: Packet = {
      type: 'PUBLISH',
      dup: false,
      qos: 0,
      retain: false,
      topic: 'a',
      payload: Buffer.alloc(0),
      properties: { contentType: 'x', userProperties: [['k', 'v']], messageExpiryInterval: 60 },
    };
    const json = JSON.parse(JSON.stringify(packetToJson(packet, { version: 5 })));
    expect(Object.keys(json.properties)).toEqual(['contentType', 'userProperties', 'messageExpiryInterval']);
    const back = jsonToPacket(json).packet;
    expect(back.type === 'PUBLISH' && Object.keys(back.properties ?? {})).toEqual([
      'contentType',
      'userProperties',
      'messageExpiryInterval',
    ]);
  });
});

describe('packetToJson', () => {
  it('PUBLISH: spec field names, flags first, payload last with its encoding', () => {
    const packet: Packet = {
      type: 'PUBLISH',
      dup: false,
      qos: 1,
      retain: true,
      topic: 'a/b',
      packetId: 7,
      payload: Buffer.from('hello'),
      properties: {
        messageExpiryInterval: 60,
        userProperties: [['k', 'v']],
        correlationData: Buffer.from([0, 255]),
      },
    };
    const json = packetToJson(packet, { version: 5, remainingLength: 30 });
    expect(JSON.stringify(json)).toBe(
      JSON.stringify({
        type: 'PUBLISH',
        version: '5.0',
        dup: false,
        qos: 1,
        retain: true,
        remainingLength: 30,
        topic: 'a/b',
        packetId: 7,
        properties: {
          messageExpiryInterval: 60,
          userProperties: [['k', 'v']],
          correlationData: '00ff',
          correlationDataEncoding: 'hex',
        },
        payload: 'hello',
        payloadEncoding: 'utf8',
      }),
    );
  });

  it('binary payloads as hex or base64; text with control characters is binary', () => {
    const packet: Packet = {
      type: 'PUBLISH',
      dup: false,
      qos: 0,
      retain: false,
      topic: 't',
      payload: Buffer.from([1, 2]),
    };
    expect(packetToJson(packet, { version: 4 })).toMatchObject({ payload: '0102', payloadEncoding: 'hex' });
    expect(packetToJson(packet, { version: 4, binaryEncoding: 'base64' })).toMatchObject({
      payload: 'AQI=',
      payloadEncoding: 'base64',
    });
    const text: Packet = { ...packet, payload: Buffer.from('line 1\nünïcode\t😀') };
    expect(packetToJson(text, { version: 4 })).toMatchObject({
      payload: 'line 1\nünïcode\t😀',
      payloadEncoding: 'utf8',
    });
    const invalid: Packet = { ...packet, payload: Buffer.from([0xc3, 0x28]) };
    expect(packetToJson(invalid, { version: 4 })).toMatchObject({ payload: 'c328', payloadEncoding: 'hex' });
  });

  it('keeps a reason code and an empty property list that were on the wire', () => {
    expect(packetToJson({ type: 'DISCONNECT', reasonCode: 0, properties: {} }, { version: 5 })).toEqual({
      type: 'DISCONNECT',
      version: '5.0',
      reasonCode: 0,
      properties: {},
    });
    expect(packetToJson({ type: 'DISCONNECT' }, { version: 5 })).toEqual({
      type: 'DISCONNECT',
      version: '5.0',
    });
  });
});

describe('jsonToPacket', () => {
  it('fills defaults a person would leave out', () => {
    expect(jsonToPacket({ type: 'publish', topic: 'a', payload: 'x' })).toEqual({
      version: 5,
      packet: { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic: 'a', payload: Buffer.from('x') },
    });
    expect(jsonToPacket({ type: 'CONNECT', clientId: 'c' }, 4)).toEqual({
      version: 4,
      packet: { type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'c' },
    });
    expect(jsonToPacket({ type: 'SUBSCRIBE', packetId: 1, subscriptions: ['a/#'] }).packet).toEqual({
      type: 'SUBSCRIBE',
      packetId: 1,
      subscriptions: [{ topicFilter: 'a/#', qos: 0 }],
    });
  });

  it('version: the field, a CONNECT protocolVersion, or the default', () => {
    expect(jsonToPacket({ type: 'PINGREQ', version: '3.1.1' }).version).toBe(4);
    expect(jsonToPacket({ type: 'PINGREQ', version: 'mqttv5' }).version).toBe(5);
    expect(jsonToPacket({ type: 'CONNECT', protocolVersion: 3 }).version).toBe(3);
    expect(jsonToPacket({ type: 'PINGREQ' }, 4).version).toBe(4);
  });

  it('binary values in every encoding', () => {
    const { packet } = jsonToPacket({
      type: 'PUBLISH',
      topic: 't',
      payload: 'AQI=',
      payloadEncoding: 'base64',
      properties: { correlationData: '00 ff', correlationDataEncoding: 'hex' },
    });
    expect(packet).toMatchObject({
      payload: Buffer.from([1, 2]),
      properties: { correlationData: Buffer.from([0, 255]) },
    });
  });

  it('ignores what decode --json adds around a packet', () => {
    const { packet } = jsonToPacket({
      type: 'PINGRESP',
      version: '5.0',
      remainingLength: 0,
      offset: 12,
      length: 2,
      client: 'c1',
      direction: 'out',
      time: 't',
      note: 'x',
    });
    expect(packet).toEqual({ type: 'PINGRESP' });
  });

  it.each([
    [{ type: 'PUBLISH', topic: 'a', qos: 3 }, 'PUBLISH.qos: expected an integer from 0 to 2, got 3'],
    [{ type: 'PUBLISH', topic: 'a', qos: 1 }, 'PUBLISH.packetId: a QoS 1 PUBLISH needs a packetId'],
    [{ type: 'PUBLISH', qos: 0 }, 'PUBLISH.topic: expected a string, got nothing'],
    [{ type: 'PUBLISH', topic: 'a', topc: 'b' }, 'PUBLISH.topc: unknown field'],
    [{ type: 'PUBLISH', topic: 'a', payload: 'zz', payloadEncoding: 'hex' }, "PUBLISH.payload: not hex: 'z'"],
    [
      { type: 'PUBLISH', topic: 'a', payload: 'x', payloadEncoding: 'utf16' },
      'PUBLISH.payloadEncoding: expected',
    ],
    [
      { type: 'PUBLISH', topic: 'a', properties: { messageExpiry: 1 } },
      'PUBLISH.properties.messageExpiry: unknown property',
    ],
    [
      { type: 'PUBLISH', topic: 'a', properties: { 'message expiry interval': 1 } },
      "unknown property (did you mean 'messageExpiryInterval'?)",
    ],
    [
      { type: 'PUBLISH', topic: 'a', properties: { userProperties: [['k']] } },
      'PUBLISH.properties.userProperties[0]: expected a [key, value] pair',
    ],
    [
      { type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'a', qos: 1, retainHandling: 3 }] },
      'SUBSCRIBE.subscriptions[0].retainHandling: expected an integer from 0 to 2, got 3',
    ],
    [
      { type: 'SUBACK', packetId: 70000, reasonCodes: [] },
      'SUBACK.packetId: expected an integer from 0 to 65535',
    ],
    [{ type: 'PUBLSH' }, 'type: expected a packet type'],
    [{ type: 'PINGREQ', version: '6' }, "version: expected '3.1', '3.1.1' or '5.0'"],
    [{ type: 'PUBLISH', errors: [] }, 'this object records a malformed packet'],
    [[1, 2], 'packet: expected a JSON object'],
  ])('%j -> %s', (obj, message) => {
    expect(() => jsonToPacket(obj)).toThrow(UsageError);
    expect(() => jsonToPacket(obj)).toThrow(message);
  });
});

describe('parseProtocolVersion', () => {
  it.each([
    ['3.1', 3],
    ['31', 3],
    ['mqttv31', 3],
    ['3.1.1', 4],
    ['311', 4],
    ['mqttv311', 4],
    ['5', 5],
    ['5.0', 5],
    ['mqttv5', 5],
    [4, 4],
    ['6', undefined],
    ['auto', undefined],
  ])('%j -> %s', (input, expected) => {
    expect(parseProtocolVersion(input)).toBe(expected);
  });
});
