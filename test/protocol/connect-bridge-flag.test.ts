/** Mosquitto's bridge flag: CONNECT protocol level | 0x80 ("try_private"), 3.1 and 3.1.1 only. */
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { jsonToPacket, packetToJson } from '../../src/cli/packet-json.js';
import { formatPacketFull, formatPacketLine } from '../../src/cli/render.js';
import { decode, EncodeError, encode, MalformedPacketError } from '../../src/protocol/index.js';

// CONNECT, 'MQTT', level 0x84 (3.1.1 + bridge), clean, keepalive 60, client id "b"
const BRIDGE_311 = Buffer.from('100d00044d51545484 02 003c 000162'.replace(/ /g, ''), 'hex');

describe('CONNECT bridge flag', () => {
  it('level 0x84 decodes as MQTT 3.1.1 with bridge: true, and encodes back to the same bytes', () => {
    const p = decode(BRIDGE_311, 5);
    expect(p).toMatchObject({ type: 'CONNECT', protocolVersion: 4, bridge: true, clientId: 'b' });
    expect(encode(p, 4).toString('hex')).toBe(BRIDGE_311.toString('hex'));
  });

  it('reads and writes the same bytes as mqtt-packet bridgeMode (the oracle)', () => {
    const theirs = mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      bridgeMode: true,
      clean: true,
      keepalive: 60,
      clientId: 'b',
    } as mqttPacket.IConnectPacket);
    expect(theirs.toString('hex')).toBe(BRIDGE_311.toString('hex'));
    const mine = encode(
      { type: 'CONNECT', protocolVersion: 3, bridge: true, clean: true, keepalive: 5, clientId: 'x' },
      3,
    );
    const parsed = mqttPacket.parser({ protocolVersion: 3 });
    let got: mqttPacket.Packet | undefined;
    parsed.on('packet', (pk) => {
      got = pk;
    });
    parsed.parse(mine);
    expect(got).toMatchObject({ cmd: 'connect', protocolVersion: 3, bridgeMode: true, clientId: 'x' });
  });

  it('mq decode shows it (line and full view) and --json round-trips it through mq encode', () => {
    const p = decode(BRIDGE_311, 4);
    expect(formatPacketLine(p, 4)).toMatch(/ bridge\b/);
    expect(formatPacketFull(p, 4)).toMatch(/protocol level\s+0x84 \(MQTT 3\.1\.1 \+ 0x80: a bridge/);
    const json = packetToJson(p, { version: 4 });
    expect(json.bridge).toBe(true);
    expect(encode(jsonToPacket(json).packet, 4).toString('hex')).toBe(BRIDGE_311.toString('hex'));
  });

  it('a plain CONNECT has no bridge field', () => {
    const plain = Buffer.from(BRIDGE_311);
    plain[8] = 0x04;
    expect(decode(plain, 4)).not.toHaveProperty('bridge');
  });

  it('MQTT 5 has no bridge flag: 0x85 is an unsupported level, and encoding one is refused', () => {
    const v5 = Buffer.from(BRIDGE_311);
    v5[8] = 0x85;
    expect(() => decode(v5, 5)).toThrow(MalformedPacketError);
    expect(() =>
      encode(
        { type: 'CONNECT', protocolVersion: 5, bridge: true, clean: true, keepalive: 0, clientId: 'x' },
        5,
      ),
    ).toThrow(EncodeError);
  });
});
