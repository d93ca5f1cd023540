/**
 * Golden fixtures (test/fixtures/packets.ts): each yields decode, encode, round-trip and size
 * tests, and mqtt-packet is asked to agree with the fixture's bytes and object.
 */
import { describe, expect, it } from 'vitest';
import {
  ALL_PACKET_TYPES,
  decode,
  EncodeError,
  encode,
  encodeInto,
  MalformedPacketError,
  type Packet,
  type ProtocolVersion,
  packetSize,
} from '../../src/protocol/index.js';
import { bytesOf, FIXTURES, type PacketFixture, typeExistsIn } from '../fixtures/packets.js';
import { hex, withoutEmptyProperties } from '../helpers/codec.js';
import { canonical, mpGenerate, mpParse } from '../helpers/mqtt-packet-adapter.js';

const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];

describe.each(FIXTURES.map((f) => [f.name, f] as const))('%s', (_name, f: PacketFixture) => {
  const bytes = bytesOf(f);

  it('fixture is self-consistent: remaining length matches the bytes', () => {
    let i = 1;
    let value = 0;
    let mul = 1;
    for (;;) {
      const byte = f.bytes[i++] ?? 0;
      value += (byte & 0x7f) * mul;
      mul *= 128;
      if ((byte & 0x80) === 0) break;
    }
    expect(value).toBe(f.bytes.length - i);
  });

  it('decodes to the expected packet', () => {
    expect(withoutEmptyProperties(decode(bytes, f.version))).toEqual(withoutEmptyProperties(f.packet));
  });

  it('encodes to exactly the fixture bytes', () => {
    expect(hex(encode(f.packet, f.version))).toBe(hex(bytes));
  });

  it('round trips from the bytes: encode(decode(bytes)) gives the same bytes', () => {
    expect(hex(encode(decode(bytes, f.version), f.version))).toBe(hex(bytes));
  });

  it('round trips from the packet: decode(encode(packet)) equals the packet', () => {
    expect(withoutEmptyProperties(decode(encode(f.packet, f.version), f.version))).toEqual(
      withoutEmptyProperties(f.packet),
    );
  });

  it('packetSize() === encode().length === fixture length', () => {
    expect(packetSize(f.packet, f.version)).toBe(bytes.length);
    expect(encode(f.packet, f.version).length).toBe(bytes.length);
  });

  it('encodeInto writes the same bytes at an offset and returns their count', () => {
    const target = Buffer.alloc(bytes.length + 16, 0xaa);
    const written = encodeInto(f.packet, f.version, target, 7);
    expect(written).toBe(bytes.length);
    expect(hex(target.subarray(7, 7 + written))).toBe(hex(bytes));
    expect(target[6]).toBe(0xaa);
    expect(target[7 + written]).toBe(0xaa);
  });

  it('mqtt-packet decodes the fixture bytes to the same packet', (ctx) => {
    // mqtt-packet cannot parse an AUTH without a reason code (remaining length 0).
    if (f.packet.type === 'AUTH' && f.bytes[1] === 0) ctx.skip();
    const [theirs] = mpParse(bytes, f.version);
    expect(theirs).toBeDefined();
    expect(canonical(theirs as Packet, f.version)).toEqual(canonical(f.packet, f.version));
  });

  it('mqtt-packet encodes the fixture packet to the same bytes (where its output is canonical)', (ctx) => {
    // Without properties, mqtt-packet always writes a v5 DISCONNECT/AUTH reason code and property
    // length, drops an ack's 0x00 reason code and adds a property length after any other; mq writes
    // the reason code (and an empty property list) exactly when the packet has one.
    const p = f.packet;
    const noProps =
      !('properties' in p) || p.properties === undefined || Object.keys(p.properties).length === 0;
    const isAck = p.type === 'PUBACK' || p.type === 'PUBREC' || p.type === 'PUBREL' || p.type === 'PUBCOMP';
    const shortForm =
      f.version === 5 &&
      noProps &&
      (p.type === 'DISCONNECT' || p.type === 'AUTH' || (isAck && p.reasonCode !== undefined));
    if (shortForm) ctx.skip();
    expect(hex(mpGenerate(f.packet, f.version))).toBe(hex(bytes));
  });
});

describe('PUBLISH payload', () => {
  it('is a view into the decoded bytes, not a copy (zero-copy)', () => {
    const f = FIXTURES.find((x) => x.name === 'PUBLISH 3.1.1 QoS 2 retain, binary payload');
    if (!f) throw new Error('fixture missing');
    const bytes = bytesOf(f);
    const p = decode(bytes, f.version);
    if (p.type !== 'PUBLISH') throw new Error('not a PUBLISH');
    expect(p.payload.buffer).toBe(bytes.buffer);
    bytes[bytes.length - 1] = 0x42;
    expect(p.payload[p.payload.length - 1]).toBe(0x42);
  });
});

describe('CONNECT carries its own protocol level', () => {
  for (const f of FIXTURES.filter((x) => x.packet.type === 'CONNECT')) {
    it(`${f.name} decodes the same whatever version the caller passes`, () => {
      for (const v of VERSIONS) expect(withoutEmptyProperties(decode(bytesOf(f), v))).toEqual(f.packet);
    });
  }
});

describe('every packet type has a decoder and an encoder in every version it exists in', () => {
  for (const version of VERSIONS) {
    for (const type of ALL_PACKET_TYPES) {
      if (!typeExistsIn(type, version)) continue;
      it(`${type} in version ${version}`, () => {
        const fixtures = FIXTURES.filter((f) => f.version === version && f.packet.type === type);
        expect(fixtures.length, `no fixture for ${type} v${version}`).toBeGreaterThan(0);
        for (const f of fixtures) {
          const decoded = decode(bytesOf(f), version);
          expect(decoded.type).toBe(type);
          expect(hex(encode(decoded, version))).toBe(hex(bytesOf(f)));
        }
      });
    }
  }

  for (const version of [3, 4] as const) {
    it(`AUTH does not exist in version ${version}: decode and encode refuse it`, () => {
      expect(() => decode(Buffer.from([0xf0, 0x00]), version)).toThrow(MalformedPacketError);
      expect(() => encode({ type: 'AUTH', reasonCode: 0 }, version)).toThrow(EncodeError);
    });
  }

  it('packet type 0 is reserved in every version', () => {
    for (const v of VERSIONS)
      expect(() => decode(Buffer.from([0x00, 0x00]), v)).toThrow(MalformedPacketError);
  });
});
