import { describe, expect, it } from 'vitest';
import {
  fixedHeaderFlags,
  formatByteMap,
  formatPacketFull,
  formatPacketLine,
  type Paint,
} from '../../src/cli/render.js';
import { decode, type FieldNote, type Packet } from '../../src/protocol/index.js';
import { FIXTURES } from '../fixtures/packets.js';

const publish: Packet = {
  type: 'PUBLISH',
  dup: false,
  qos: 1,
  retain: true,
  topic: 'a/b',
  packetId: 7,
  payload: Buffer.from('hello'),
  properties: { messageExpiryInterval: 60, userProperties: [['k', 'v']] },
};

describe('formatPacketLine', () => {
  it.each([
    [
      publish,
      5,
      'PUBLISH qos=1 id=7 retain topic="a/b" payload="hello" (5 B) props{messageExpiryInterval=60 userProperties=["k"="v"]}',
    ],
    [
      { type: 'PUBLISH', dup: true, qos: 0, retain: false, topic: 't', payload: Buffer.from([0, 0xff]) },
      4,
      'PUBLISH dup qos=0 topic="t" payload=hex:00ff (2 B)',
    ],
    [
      { type: 'CONNACK', sessionPresent: true, reasonCode: 5 },
      4,
      'CONNACK sessionPresent 0x05 not authorized',
    ],
    [{ type: 'CONNACK', sessionPresent: false, reasonCode: 0x87 }, 5, 'CONNACK 0x87 Not authorized'],
    [{ type: 'PUBACK', packetId: 3, reasonCode: 0x10 }, 5, 'PUBACK id=3 0x10 No matching subscribers'],
    [
      { type: 'SUBACK', packetId: 1, reasonCodes: [1, 0x80] },
      4,
      'SUBACK id=1 [0x01 Granted QoS 1, 0x80 Failure]',
    ],
    [{ type: 'DISCONNECT', reasonCode: 0x8e }, 5, 'DISCONNECT 0x8e Session taken over'],
    [{ type: 'PINGREQ' }, 4, 'PINGREQ'],
  ] as [Packet, 3 | 4 | 5, string][])('%j', (packet, version, line) => {
    expect(formatPacketLine(packet, version)).toBe(line);
  });

  it('cuts long payloads', () => {
    const p: Packet = { ...publish, payload: Buffer.alloc(300, 'a'), properties: undefined } as Packet;
    expect(formatPacketLine(p, 4)).toBe(
      `PUBLISH qos=1 id=7 retain topic="a/b" payload="${'a'.repeat(64)}"... (300 B)`,
    );
  });

  it('renders every fixture on one line, without throwing', () => {
    for (const f of FIXTURES) {
      const line = formatPacketLine(f.packet, f.version);
      expect(line.startsWith(f.packet.type)).toBe(true);
      expect(line).not.toContain('\n');
    }
  });

  it('colours only through the given paint', () => {
    const tag = (name: string) => (s: string) => `<${name}>${s}</${name}>`;
    const paint: Paint = {
      bold: tag('b'),
      dim: tag('d'),
      cyan: tag('c'),
      green: tag('g'),
      yellow: tag('y'),
      red: tag('r'),
      magenta: tag('m'),
    };
    expect(formatPacketLine({ type: 'PUBACK', packetId: 1, reasonCode: 0x87 }, 5, { colors: paint })).toBe(
      '<b>PUBACK</b> id=1 <r>0x87 Not authorized</r><d></d>',
    );
    // the colours alone (a chalk instance) as the third argument work too
    expect(formatPacketLine({ type: 'PINGREQ' }, 5, paint)).toBe('<b>PINGREQ</b>');
    expect(formatPacketFull({ type: 'PINGREQ' }, 5, paint).split('\n')[0]).toBe(
      '<b>PINGREQ</b> <d>(type 12, MQTT 5.0)</d>',
    );
  });
});

describe('formatPacketFull', () => {
  it('PUBLISH: flags with their meaning, every field, properties by spec name', () => {
    expect(formatPacketFull(publish, 5, { remainingLength: 20 })).toBe(
      [
        'PUBLISH (type 3, MQTT 5.0)',
        '  flags              0x3  dup=0 qos=1 (at least once) retain=1',
        '  remaining length   20',
        '  topic              "a/b"',
        '  packet id          7',
        '  properties         (2)',
        '    Message Expiry Interval (0x02)  60 s',
        '    User Property (0x26)            "k" = "v"',
        '  payload            "hello" (5 bytes, UTF-8)',
      ].join('\n'),
    );
  });

  it('reason codes by name; binary payload as hex', () => {
    const text = formatPacketFull({ type: 'SUBACK', packetId: 2, reasonCodes: [0, 0x87] }, 5);
    expect(text).toContain('    0x00 Granted QoS 0\n    0x87 Not authorized');
    const bin = formatPacketFull({ ...publish, payload: Buffer.from([1, 2, 3]) } as Packet, 4);
    expect(bin).toContain('  payload            hex:010203 (3 bytes, binary)');
    expect(bin).not.toContain('properties');
  });

  it('shows flags as received when they break the rules', () => {
    const text = formatPacketFull({ type: 'PUBREL', packetId: 1 }, 4, { flags: 3 });
    expect(text).toContain('  flags              0x3 (reserved, must be 0010)');
    expect(fixedHeaderFlags({ type: 'PUBREL', packetId: 1 })).toBe(2);
  });

  it('renders every fixture', () => {
    for (const f of FIXTURES)
      expect(formatPacketFull(f.packet, f.version).split('\n')[0]).toContain(f.packet.type);
  });
});

describe('formatByteMap', () => {
  it('one row per field; bytes no note covers are shown', () => {
    const bytes = Buffer.from('3004000161ff' + 'aa', 'hex');
    const notes: FieldNote[] = [];
    decode(bytes.subarray(0, 6), 4, { annotate: notes });
    const map = formatByteMap(notes, bytes);
    const lines = map.split('\n');
    expect(lines[0]).toMatch(/^offset {2}bytes +section +field +value$/);
    expect(map).toMatch(/\n {5}0 {2}30 +fixed header +packet type and flags +PUBLISH/);
    expect(map).toMatch(/\n {5}4 {2}61 +variable header +topic name +"a"/);
    expect(map).toMatch(/\n {5}6 {2}aa +\(not decoded\)$/);
  });

  it('cuts long fields to 8 bytes', () => {
    const bytes = Buffer.alloc(20, 0x61);
    const map = formatByteMap(
      [{ offset: 0, length: 20, section: 'payload', field: 'payload', value: 'a...' }],
      bytes,
    );
    expect(map).toContain('61 61 61 61 61 61 61 61 ... (20 B)');
  });
});
