/**
 * `mq decode` end to end: spawns bin/mq (build first: npx tsc -p tsconfig.build.json) with
 * NO_COLOR=1 and asserts stdout, stderr and the exit code.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { killAll, spawnMq } from '../helpers/spawn.js';

const dir = mkdtempSync(join(tmpdir(), 'mq-decode-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function mq(args: string[], input?: string | Buffer) {
  const p = spawnMq(args, input === undefined ? { input: '' } : { input });
  return p.exit(15_000);
}

/** PUBLISH QoS 0, topic "test", payload "hello!!": a 3.1.1 packet (no v5 property length). */
const PUBLISH_HEX = '300d00047465737468656c6c6f2121';
const PUBLISH_BLOCK = [
  'PUBLISH  #1 at byte 0, 15 bytes, MQTT 3.1.1 (guessed: valid only as 3.1.1; as 5.0: property length 104 overruns the packet (6 bytes remain) at byte 8)',
  '  flags              0x0  dup=0 qos=0 (at most once) retain=0',
  '  remaining length   13',
  '  topic              "test"',
  '  payload            "hello!!" (7 bytes, UTF-8)',
  '',
].join('\n');

describe('mq decode: input styles', () => {
  it.each([
    ['spaced hex, several arguments', PUBLISH_HEX.match(/../g) ?? []],
    ['a hex stream', [PUBLISH_HEX]],
    ['0x30,0x0d,...', [(PUBLISH_HEX.match(/../g) ?? []).map((b) => `0x${b}`).join(',')]],
    ['0x30 0x0d ...', [(PUBLISH_HEX.match(/../g) ?? []).map((b) => `0x${b}`).join(' ')]],
    ['\\x30\\x0d...', [(PUBLISH_HEX.match(/../g) ?? []).map((b) => `\\x${b}`).join('')]],
  ])('%s', async (_name, args) => {
    const r = await mq(['decode', ...args]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(PUBLISH_BLOCK);
    expect(r.code).toBe(0);
  });

  it('a Wireshark hex dump on stdin (offset and ASCII columns skipped)', async () => {
    const dump = '0000   30 0d 00 04 74 65 73 74 68 65 6c 6c 6f 21 21      0...testhello!!\n';
    const r = await mq(['decode'], dump);
    expect(r.stdout).toBe(PUBLISH_BLOCK);
    expect(r.code).toBe(0);
  });

  it('an xxd dump from a file with -f', async () => {
    const file = join(dir, 'dump.txt');
    writeFileSync(file, '00000000: 300d 0004 7465 7374 6865 6c6c 6f21 21    0...testhello!!\n');
    const r = await mq(['decode', '-f', file]);
    expect(r.stdout).toBe(PUBLISH_BLOCK);
    expect(r.code).toBe(0);
  });

  it('--base64', async () => {
    const r = await mq(['decode', '--base64', Buffer.from(PUBLISH_HEX, 'hex').toString('base64')]);
    expect(r.stdout).toBe(PUBLISH_BLOCK);
    expect(r.code).toBe(0);
  });

  it('--raw binary on stdin, several packets back to back', async () => {
    const bytes = Buffer.concat([
      Buffer.from(PUBLISH_HEX, 'hex'),
      encode(
        {
          type: 'PUBLISH',
          dup: false,
          qos: 0,
          retain: false,
          topic: 'bin',
          payload: Buffer.from([0, 0xff, 0x80]),
        },
        4,
      ),
      Buffer.from('c000', 'hex'),
    ]);
    const r = await mq(['decode', '--raw', '-V', '3.1.1'], bytes);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('PUBLISH  #1 at byte 0, 15 bytes, MQTT 3.1.1 (set by -V)');
    expect(r.stdout).toContain('PUBLISH  #2 at byte 15, 10 bytes, MQTT 3.1.1 (set by -V)');
    expect(r.stdout).toContain('  payload            hex:00ff80 (3 bytes, binary)');
    expect(r.stdout).toContain('PINGREQ  #3 at byte 25, 2 bytes, MQTT 3.1.1 (set by -V)');
  });

  it('a broker recording (NDJSON): client, direction and time shown; CONNECT sets the version per client', async () => {
    const connect = encode(
      { type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'c-01' },
      4,
    );
    const sub = encode({ type: 'SUBACK', packetId: 1, reasonCodes: [0, 1] }, 4); // also valid as 5.0
    const lines = [
      { time: '2026-01-01T00:00:00.000Z', client: 'c1', direction: 'in', hex: connect.toString('hex') },
      { time: '2026-01-01T00:00:00.001Z', client: 'c1', direction: 'out', hex: '20020000' },
      { time: '2026-01-01T00:00:00.002Z', client: 'c1', direction: 'out', hex: sub.toString('hex') },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n');
    const r = await mq(['decode'], `${lines}\n`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'CONNECT  #1 client "c1", in, 2026-01-01T00:00:00.000Z, line 1, at byte 0, 18 bytes, MQTT 3.1.1 (from its protocol level)',
    );
    expect(r.stdout).toContain(
      `CONNACK  #2 client "c1", out, 2026-01-01T00:00:00.001Z, line 2, at byte 0, 4 bytes, MQTT 3.1.1 (from client "c1"'s CONNECT)`,
    );
    expect(r.stdout).toContain('  return code        0x00 Connection Accepted');
    expect(r.stdout).toContain('SUBACK  #3 client "c1", out');
    expect(r.stdout).not.toContain('ambiguous');
  });
});

describe('mq decode: versions', () => {
  // SUBACK id 1 with two bytes after the id: 3.1.1 reads two return codes, 5.0 an empty property
  // list and one reason code. Both are valid.
  const AMBIGUOUS = ['90', '04', '00', '01', '00', '01'];

  it('without a CONNECT, bytes valid both ways are called ambiguous', async () => {
    const r = await mq(['decode', ...AMBIGUOUS]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'SUBACK  #1 at byte 0, 6 bytes, MQTT 5.0 (guessed)',
        '  note: ambiguous: valid as 3.1.1 and 5.0, showing 5.0; use -V',
        '  flags              0x0 (reserved)',
        '  remaining length   4',
        '  packet id          1',
        '  properties         none',
        '  reason codes       (1)',
        '    0x01 Granted QoS 1',
        '',
      ].join('\n'),
    );
  });

  it('-V 3.1.1 (and 311) chooses', async () => {
    for (const v of ['3.1.1', '311']) {
      const r = await mq(['decode', '-V', v, ...AMBIGUOUS]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('SUBACK  #1 at byte 0, 6 bytes, MQTT 3.1.1 (set by -V)');
      expect(r.stdout).toContain(
        '  reason codes       (2)\n    0x00 Granted QoS 0\n    0x01 Granted QoS 1\n',
      );
      expect(r.stdout).not.toContain('ambiguous');
    }
  });

  it('auto follows a CONNECT in the stream', async () => {
    const connect = encode(
      { type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 10, clientId: 'x' },
      4,
    );
    const r = await mq(['decode', connect.toString('hex'), ...AMBIGUOUS]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('CONNECT  #1 at byte 0, 15 bytes, MQTT 3.1.1 (from its protocol level)');
    expect(r.stdout).toContain('SUBACK  #2 at byte 15, 6 bytes, MQTT 3.1.1 (from the CONNECT at byte 0)');
    expect(r.stdout).not.toContain('ambiguous');
  });

  it('a packet that parses only one way says so', async () => {
    const r = await mq(['decode', '90', '03', '00', '01', '00']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'SUBACK  #1 at byte 0, 5 bytes, MQTT 3.1.1 (guessed: valid only as 3.1.1; as 5.0: no reason codes: a SUBACK carries one per topic filter at byte 5)',
    );
  });

  it('a bad -V is a usage error', async () => {
    const r = await mq(['decode', '-V', '6', 'c000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("mq: -V: expected 3.1, 3.1.1, 5 or auto, got '6'\n");
  });
});

describe('mq decode: output modes', () => {
  it('--bytes prints the annotated byte map', async () => {
    const r = await mq(['decode', '--bytes', '-V', '5', '82 09 00 01 00 00 03 61 2f 2b 01']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('SUBSCRIBE  #1 at byte 0, 11 bytes, MQTT 5.0 (set by -V)');
    expect(lines[1]).toMatch(/^ {2}offset {2}bytes +section +field +value$/);
    expect(r.stdout).toMatch(/\n +0 {2}82 +fixed header +packet type and flags +SUBSCRIBE, flags 0010\n/);
    expect(r.stdout).toMatch(/\n +1 {2}09 +fixed header +remaining length +9\n/);
    expect(r.stdout).toMatch(/\n +2 {2}00 01 +variable header +\S.* +1\n/);
    expect(r.stdout).toMatch(/\n +7 {2}61 2f 2b +payload +.*"a\/\+"/);
    expect(r.stdout).not.toContain('(not decoded)');
  });

  it('--json prints one object per packet', async () => {
    const r = await mq(['decode', '--json', '-V', '5', '3206000161000700', 'e0018e']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0] ?? '')).toEqual({
      type: 'PUBLISH',
      version: '5.0',
      dup: false,
      qos: 1,
      retain: false,
      remainingLength: 6,
      topic: 'a',
      packetId: 7,
      payload: '',
      payloadEncoding: 'utf8',
      offset: 0,
      length: 8,
    });
    expect(JSON.parse(lines[1] ?? '')).toEqual({
      type: 'DISCONNECT',
      version: '5.0',
      remainingLength: 1,
      reasonCode: 0x8e,
      offset: 8,
      length: 3,
    });
  });

  it('reason codes by name', async () => {
    const r = await mq(['decode', '-V', '5', '9004000100 87']);
    expect(r.stdout).toContain('    0x87 Not authorized\n');
  });

  it('--help has examples', async () => {
    const r = await mq(['decode', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('mq decode 30 0d 00 04');
  });
});

describe('mq decode: malformed input', () => {
  it('reports every violation with offset and rule id, the fields decoded, exit 4', async () => {
    // PUBLISH with QoS 3 (flags 0110) and the topic name "a/+".
    const r = await mq(['decode', '-V', '3.1.1', '36 08 00 03 61 2f 2b 00 01 68']);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe(
      [
        'PUBLISH  #1 at byte 0, 10 bytes, MQTT 3.1.1 (set by -V)',
        '  flags              0x6  dup=0 qos=3 (reserved: malformed) retain=0',
        '  remaining length   8',
        '  topic              "a/+"',
        '  packet id          1',
        '  payload            "h" (1 byte, UTF-8)',
        '  2 violations:',
        '    byte 0: QoS is 3 (both QoS bits set) [MQTT-3.3.1-4] (0x81 Malformed Packet)',
        "    byte 6: topic name 'a/+' contains the wildcard '+' [MQTT-3.3.2-2] (0x90 Topic Name invalid)",
        '',
      ].join('\n'),
    );
    expect(r.stderr).toBe('mq decode: malformed input: 2 violations in 1 of 1 packet\n');
  });

  it('--json lists the errors', async () => {
    const r = await mq(['decode', '--json', '-V', '3.1.1', '36 08 00 03 61 2f 2b 00 01 68']);
    expect(r.code).toBe(4);
    const obj = JSON.parse(r.stdout);
    expect(obj.errors).toEqual([
      { offset: 0, message: 'QoS is 3 (both QoS bits set)', rule: 'MQTT-3.3.1-4', reasonCode: 0x81 },
      {
        offset: 6,
        message: "topic name 'a/+' contains the wildcard '+'",
        rule: 'MQTT-3.3.2-2',
        reasonCode: 0x90,
      },
    ]);
  });

  it('a structural error shows the fields decoded before it', async () => {
    // v5 PUBLISH whose property length (0x20) overruns the packet.
    const r = await mq(['decode', '-V', '5', '30 06 00 01 61 20 01 02']);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('PUBLISH (malformed)  #1 at byte 0, 8 bytes, MQTT 5.0 (set by -V)');
    expect(r.stdout).toContain('  decoded before the error:');
    expect(r.stdout).toMatch(/ +4 {2}61 +variable header +topic name +"a"/);
    expect(r.stdout).toMatch(/ {4}byte 5: .*property length.*\(0x81 Malformed Packet\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('truncated input is reported as an incomplete packet', async () => {
    const r = await mq(['decode', 'c000', '30 0d 00 04 74']);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('PINGREQ  #1 at byte 0, 2 bytes');
    expect(r.stdout).toContain('PUBLISH (incomplete)  #2 at byte 2, 5 bytes');
    expect(r.stdout).toContain(
      'byte 7: incomplete packet: the fixed header announces 15 bytes (remaining length 13), the input has 5',
    );
    expect(r.stderr).toBe('mq decode: malformed input: 1 violation in 1 of 2 packets\n');
  });

  it('a remaining length over 4 bytes stops the decode', async () => {
    const r = await mq(['decode', '30 ff ff ff ff 01']);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('remaining length takes more than 4 bytes');
  });

  it('bad hex is a usage error naming the position', async () => {
    const r = await mq(['decode', '30 0g']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("mq: not hex: 'g' at column 5 (use --base64 or --raw for other input)\n");
  });

  it('an odd number of hex digits is a usage error', async () => {
    const r = await mq(['decode', '30 0d 0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "mq: odd number of hex digits (1) in '0' at column 7: each byte is two hex digits\n",
    );
  });

  it('no input is a usage error', async () => {
    const r = await mq(['decode'], '');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('mq: no bytes to decode\n');
  });
});

describe('mq decode: captured frames and --line', () => {
  it('a Wireshark hex dump of a whole Ethernet frame: headers skipped, said on stderr', async () => {
    const dump = [
      '0000   00 00 00 00 00 00 00 00 00 00 00 00 08 00 45 00   ..............E.',
      '0010   00 43 00 01 40 00 40 06 00 00 7f 00 00 01 7f 00   .C..@.@.........',
      '0020   00 01 c3 50 07 5b 00 00 00 01 00 00 00 01 80 18   ...P.[..........',
      '0030   02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   ................',
      '0040   00 00 30 0d 00 04 74 65 73 74 68 65 6c 6c 6f 21   ..0...testhello!',
      '0050   21                                                !',
      '',
    ].join('\n');
    const r = await mq(['decode'], dump);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(PUBLISH_BLOCK);
    expect(r.stderr).toBe(
      'mq decode: the input is a captured frame: skipped 66 bytes of Ethernet, IPv4, TCP headers; byte offsets count from the TCP payload (15 bytes)\n',
    );
  });

  it('--line prints one line per packet', async () => {
    const r = await mq(['decode', '--line', '-V', '5', '3206000161000700', 'e0018e', '30']);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe(
      [
        '@0 PUBLISH qos=1 id=7 topic="a" payload="" (0 B)',
        '@8 DISCONNECT 0x8e Session taken over',
        '@11 PUBLISH (incomplete) ! byte 12: the input ends inside the fixed header (1 byte: 30)',
        '',
      ].join('\n'),
    );
  });
});
