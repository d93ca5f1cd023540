import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import {
  parseBase64,
  parseHex,
  parseInput,
  parseRecording,
  stripCaptureHeaders,
  toHex,
} from '../../src/cli/hex.js';

const PUBLISH = '300d00047465737468656c6c6f2121'; // PUBLISH "test" "hello!!"
const hexOf = (text: string): string => parseHex(text).toString('hex');

describe('parseHex: the ways people paste bytes', () => {
  it.each([
    ['spaced', '30 0d 00 04 74 65 73 74 68 65 6c 6c 6f 21 21'],
    ['Wireshark hex stream', '300d00047465737468656c6c6f2121'],
    ['upper case', '300D00047465737468656C6C6F2121'],
    ['0x with commas', '0x30,0x0d,0x00,0x04,0x74,0x65,0x73,0x74,0x68,0x65,0x6c,0x6c,0x6f,0x21,0x21'],
    ['0x with spaces', '0x30 0x0d 0x00 0x04 0x74 0x65 0x73 0x74 0x68 0x65 0x6c 0x6c 0x6f 0x21 0x21'],
    ['0x with single digits', '0x30 0xd 0x0 0x4 0x74 0x65 0x73 0x74 0x68 0x65 0x6c 0x6c 0x6f 0x21 0x21'],
    [
      'C array',
      '{ 0x30, 0x0d, 0x00, 0x04, 0x74, 0x65, 0x73, 0x74,\n  0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0x21 };',
    ],
    ['\\x escapes', '\\x30\\x0d\\x00\\x04\\x74\\x65\\x73\\x74\\x68\\x65\\x6c\\x6c\\x6f\\x21\\x21'],
    [
      'Python bytes literal',
      "b'\\x30\\x0d\\x00\\x04\\x74\\x65\\x73\\x74\\x68\\x65\\x6c\\x6c\\x6f\\x21\\x21'",
    ],
    ['colons', '30:0d:00:04:74:65:73:74:68:65:6c:6c:6f:21:21'],
    ['0x prefix on a stream', '0x300d00047465737468656c6c6f2121'],
    ['several lines', '300d 0004\n7465 7374\r\n68656c6c6f2121\n'],
    ['comments', '30 0d          # fixed header\n00 04 74 65 73 74 // topic\n68 65 6c 6c 6f 21 21'],
  ])('%s', (_name, text) => {
    expect(hexOf(text)).toBe(PUBLISH);
  });

  const BYTES18 = '300d00047465737468656c6c6f2121224142';
  it.each([
    [
      'Wireshark "Copy as Hex Dump"',
      '0000   30 0d 00 04 74 65 73 74 68 65 6c 6c 6f 21 21 22   0...testhello!!"\n0010   41 42                                             AB',
    ],
    [
      'Wireshark with a gap after 8 bytes',
      '0000  30 0d 00 04 74 65 73 74  68 65 6c 6c 6f 21 21 22   0...testhello!!"\n0010  41 42                                              AB',
    ],
    [
      'xxd',
      '00000000: 300d 0004 7465 7374 6865 6c6c 6f21 2122  0...testhello!!"\n00000010: 4142                                     AB',
    ],
    [
      'tcpdump -X',
      '\t0x0000:  300d 0004 7465 7374 6865 6c6c 6f21 2122  0...testhello!!"\n\t0x0010:  4142                                     AB',
    ],
    [
      'hexdump -C (with the final offset line)',
      '00000000  30 0d 00 04 74 65 73 74  68 65 6c 6c 6f 21 21 22  |0...testhello!!"|\n00000010  41 42                                             |AB|\n00000012\n',
    ],
  ])('hex dump: %s (offset and ASCII columns skipped)', (_name, text) => {
    expect(hexOf(text)).toBe(BYTES18);
  });

  it('an ASCII column that looks like hex is still skipped', () => {
    // "abcd" in the ASCII column is valid hex; the wide gap says it is not bytes.
    expect(hexOf('0000   30 0d 00 04 61 62 63 64                            0...abcd')).toBe(
      '300d000461626364',
    );
  });

  it('a plain line that starts with 8 hex digits is not taken for a dump offset', () => {
    expect(hexOf('300d0004 74657374')).toBe('300d000474657374');
  });

  it.each([
    ['30 0g', "not hex: 'g' at column 5"],
    ['zz', "not hex: 'z' at column 1"],
    ['300', "odd number of hex digits (3) in '300' at column 1"],
    ['30 0d\n00 4', "odd number of hex digits (1) in '4' at line 2, column 4"],
    ['0x', "'0x' without hex digits at column 1"],
    ['30\u00000d', "not hex: '\\x00' at column 3"],
    // C1 controls (U+009B is a CSI) and bidi overrides are escaped like C0 (escape.ts, one rule)
    ['30\u009b0d', "not hex: '\\x9b' at column 3"],
    ['30\u202e0d', "not hex: '\\u202e' at column 3"],
  ])('%j is a usage error naming the position: %s', (text, message) => {
    expect(() => parseHex(text)).toThrow(UsageError);
    expect(() => parseHex(text)).toThrow(message);
  });

  it('empty input gives no bytes', () => {
    expect(parseHex('  \n ').length).toBe(0);
  });
});

describe('parseBase64', () => {
  it('standard, URL-safe, unpadded, wrapped', () => {
    expect(parseBase64('MA0ABHRlc3Q=').toString('hex')).toBe('300d000474657374');
    expect(parseBase64('MA0ABHRlc3Q').toString('hex')).toBe('300d000474657374');
    expect(parseBase64('MA0A\nBHRl\nc3Q=').toString('hex')).toBe('300d000474657374');
    expect(parseBase64('-_8').toString('hex')).toBe('fbff');
  });
  it('bad characters name their position', () => {
    expect(() => parseBase64('MA0$')).toThrow("not base64: '$' at column 4");
    expect(() => parseBase64('MA0\u009b')).toThrow("not base64: '\\x9b' at column 4");
    expect(() => parseBase64('MA==MA')).toThrow("not base64: 'M' at column 5 (after the = padding)");
    expect(() => parseBase64('MA0AB')).toThrow('cut short');
  });
});

describe('parseRecording (mq broker --record)', () => {
  const lines = [
    '{"time":"2026-01-01T00:00:00.000Z","client":"c1","direction":"in","hex":"c000"}',
    '',
    '{"time":"2026-01-01T00:00:00.001Z","client":"c1","direction":"out","hex":"d000"}',
  ].join('\n');

  it('reads hex, time, client and direction per line', () => {
    expect(parseRecording(lines)).toEqual([
      {
        bytes: Buffer.from('c000', 'hex'),
        time: '2026-01-01T00:00:00.000Z',
        client: 'c1',
        direction: 'in',
        line: 1,
      },
      {
        bytes: Buffer.from('d000', 'hex'),
        time: '2026-01-01T00:00:00.001Z',
        client: 'c1',
        direction: 'out',
        line: 3,
      },
    ]);
  });

  it('parseInput takes input starting with { as a recording', () => {
    expect(parseInput(lines, 'hex').map((r) => r.client)).toEqual(['c1', 'c1']);
    expect(parseInput('c0 00', 'hex')).toEqual([{ bytes: Buffer.from('c000', 'hex') }]);
    // a C array also starts with '{'
    expect(parseInput('{0xc0, 0x00}', 'hex')).toEqual([{ bytes: Buffer.from('c000', 'hex') }]);
  });

  it('names the line of a bad record', () => {
    expect(() => parseRecording('{"hex":"c000"}\n{"hex":"c0 0"}')).toThrow(
      "recording line 2, field 'hex': odd number of hex digits",
    );
    expect(() => parseRecording('{"hex":"c000"}\nnot json')).toThrow('recording line 2 is not JSON');
    expect(() => parseRecording('{"client":"c1"}')).toThrow("recording line 1 has no 'hex' field");
  });
});

describe('parseInput', () => {
  it('raw keeps the bytes as they are', () => {
    const bytes = Buffer.from([0x30, 0x00, 0xff]);
    expect(parseInput(bytes, 'raw')).toEqual([{ bytes }]);
  });
  it('base64', () => {
    expect(parseInput('wAA=', 'base64')[0]?.bytes.toString('hex')).toBe('c000');
  });
  it('toHex', () => {
    expect(toHex(Buffer.from([0x30, 0x0d]))).toBe('300d');
    expect(toHex(Buffer.from([0x30, 0x0d]), true)).toBe('30 0d');
  });
});

/** A captured frame: link header, IPv4 or IPv6, TCP with options, then `payload`. */
function frame(
  payload: Buffer,
  link: 'ethernet' | 'vlan' | 'sll' | 'loopback' | 'raw',
  ip: 4 | 6 = 4,
): Buffer {
  const tcp = Buffer.alloc(32); // data offset 8 (12 bytes of options)
  tcp.writeUInt16BE(50000, 0);
  tcp.writeUInt16BE(1883, 2);
  tcp[12] = 0x80;
  tcp[13] = 0x18;
  let ipHeader: Buffer;
  if (ip === 4) {
    ipHeader = Buffer.alloc(20);
    ipHeader[0] = 0x45;
    ipHeader.writeUInt16BE(20 + tcp.length + payload.length, 2);
    ipHeader[8] = 64;
    ipHeader[9] = 6;
  } else {
    ipHeader = Buffer.alloc(40);
    ipHeader[0] = 0x60;
    ipHeader.writeUInt16BE(tcp.length + payload.length, 4);
    ipHeader[6] = 6;
    ipHeader[7] = 64;
  }
  const type = ip === 4 ? [0x08, 0x00] : [0x86, 0xdd];
  const links: Record<typeof link, Buffer> = {
    ethernet: Buffer.from([...Array(12).fill(0), ...type]),
    vlan: Buffer.from([...Array(12).fill(0), 0x81, 0x00, 0x00, 0x05, ...type]),
    sll: Buffer.from([...Array(14).fill(0), ...type]),
    loopback: Buffer.from([ip === 4 ? 2 : 30, 0, 0, 0]),
    raw: Buffer.alloc(0),
  };
  return Buffer.concat([links[link], ipHeader, tcp, payload]);
}

describe('stripCaptureHeaders (Wireshark "Copy as Hex Dump" of a whole frame)', () => {
  const mqtt = Buffer.from(PUBLISH, 'hex');
  it.each([
    ['ethernet', 4, 66, 'Ethernet, IPv4, TCP'],
    ['vlan', 4, 70, 'Ethernet, IPv4, TCP'],
    ['sll', 4, 68, 'Linux cooked capture, IPv4, TCP'],
    ['loopback', 4, 56, 'loopback, IPv4, TCP'],
    ['raw', 4, 52, 'IPv4, TCP'],
    ['ethernet', 6, 86, 'Ethernet, IPv6, TCP'],
    ['loopback', 6, 76, 'loopback, IPv6, TCP'],
  ] as const)('%s %s', (link, ip, skipped, layers) => {
    const found = stripCaptureHeaders(frame(mqtt, link, ip));
    expect(found?.payload.toString('hex')).toBe(PUBLISH);
    expect(found?.skipped).toBe(skipped);
    expect(found?.layers).toBe(layers);
  });

  it('ignores Ethernet padding after the IP packet', () => {
    const padded = Buffer.concat([frame(Buffer.from('c000', 'hex'), 'ethernet'), Buffer.alloc(6)]);
    expect(stripCaptureHeaders(padded)?.payload.toString('hex')).toBe('c000');
  });

  it('MQTT bytes are not a frame', () => {
    expect(stripCaptureHeaders(Buffer.from(PUBLISH.repeat(4), 'hex'))).toBeUndefined();
    expect(stripCaptureHeaders(Buffer.from('62020001'.repeat(12), 'hex'))).toBeUndefined();
    expect(stripCaptureHeaders(Buffer.alloc(64))).toBeUndefined();
  });
});
