/**
 * `mq encode` end to end, and `mq decode --json | mq encode` for every packet type in every
 * version (the golden fixtures), through the built binary (npx tsc -p tsconfig.build.json first).
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { decode, encode } from '../../src/protocol/index.js';
import { FIXTURES } from '../fixtures/packets.js';
import { killAll, MQ_BIN, spawnMq } from '../helpers/spawn.js';

afterAll(async () => {
  await killAll();
});

async function mq(args: string[], input?: string | Buffer) {
  const p = spawnMq(args, input === undefined ? { input: '' } : { input });
  return p.exit(15_000);
}

describe('mq decode --json | mq encode gives back the same bytes', () => {
  it.each([3, 4, 5] as const)('every packet type, version level %i', async (version) => {
    const fixtures = FIXTURES.filter((f) => f.version === version);
    // every packet type of the version is covered
    const types = new Set(fixtures.map((f) => f.packet.type));
    expect(types.size).toBe(version === 5 ? 15 : 14);
    const stream = fixtures.map((f) => Buffer.from(f.bytes).toString('hex')).join('\n');
    const label = version === 3 ? '3.1' : version === 4 ? '3.1.1' : '5';
    const decoded = await mq(['decode', '--json', '-V', label], stream);
    expect(decoded.stderr).toBe('');
    expect(decoded.code).toBe(0);
    expect(decoded.stdout.trimEnd().split('\n')).toHaveLength(fixtures.length);

    const encoded = await mq(['encode'], decoded.stdout);
    expect(encoded.stderr).toBe('');
    expect(encoded.code).toBe(0);
    // every fixture comes back as it was, byte for byte
    const expected = fixtures.map((f) => Buffer.from(f.bytes).toString('hex'));
    expect(encoded.stdout.trimEnd().split('\n')).toEqual(expected);
  });

  it.each([
    ['PUBACK with an explicit Success code and an empty property list', '40 04 00 06 00 00'],
    [
      'PUBLISH with Content Type before Message Expiry Interval',
      '30 0d 00 01 61 09 03 00 01 78 02 00 00 00 3c',
    ],
  ])('decode says when bytes are not what encode writes back: %s', async (_name, hex) => {
    const bytes = Buffer.from(hex.replace(/ /g, ''), 'hex');
    const again = encode(decode(bytes, 5), 5);
    const r = await mq(['decode', '-V', '5', hex]);
    expect(r.code).toBe(0);
    if (again.equals(bytes)) {
      expect(r.stdout).not.toContain('not in canonical form');
    } else {
      const spaced = (again.toString('hex').match(/../g) ?? []).join(' ');
      expect(r.stdout).toContain(
        `  note: not in canonical form: mq encode writes these fields as ${spaced}\n`,
      );
    }
  });
});

describe('mq encode', () => {
  it('a JSON argument, hex out', async () => {
    const r = await mq(['encode', '{"type":"PUBLISH","topic":"a/b","qos":1,"packetId":7,"payload":"hi"}']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('320a 0003612f62 0007 00 6869\n'.replace(/ /g, ''));
  });

  it('-V 3.1.1 for packets without a version; --spaced', async () => {
    const r = await mq(['encode', '-V', '3.1.1', '--spaced', '{"type":"PUBLISH","topic":"a","payload":"x"}']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('30 04 00 01 61 78\n');
  });

  it('NDJSON on stdin, one hex line per packet; --raw writes the bytes', async () => {
    const input = '{"type":"PINGREQ"}\n\n{"type":"DISCONNECT","version":"5.0","reasonCode":4}\n';
    const hex = await mq(['encode'], input);
    expect(hex.stdout).toBe('c000\ne00104\n');
    // stdout as bytes (the spawn helper decodes it as text)
    const raw = spawnSync(process.execPath, [MQ_BIN, 'encode', '--raw'], {
      input,
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 15_000,
    });
    expect(raw.status).toBe(0);
    expect(raw.stdout.toString('hex')).toBe('c000e00104');
  });

  it('a list of objects, --base64', async () => {
    const r = await mq(['encode', '--base64', '[{"type":"PINGREQ"},{"type":"PINGRESP"}]']);
    expect(r.stdout).toBe('wAA=\n0AA=\n');
  });

  it.each([
    [['{"type":"PUBLISH","topic":"a","qos":3}'], 'mq: PUBLISH.qos: expected an integer from 0 to 2, got 3\n'],
    [['{"type":"PUBLISH","topc":"a"}'], 'mq: PUBLISH.topc: unknown field'],
    [
      ['{"type":"SUBSCRIBE","packetId":1,"subscriptions":[{"qos":1}]}'],
      'mq: SUBSCRIBE.subscriptions[0].topicFilter: expected a string, got nothing\n',
    ],
    [['{"type":"PUBLISH"'], 'mq: line 1 is not JSON'],
    [
      ['{"type":"PUBLISH","topic":"a","properties":{"topicAlias":70000}}'],
      'mq: PUBLISH.properties.topicAlias: expected an integer from 0 to 65535, got 70000\n',
    ],
  ])('%j is a usage error naming the field', async (args, message) => {
    const r = await mq(['encode', ...args]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(r.stderr.split('\n')).toHaveLength(2); // one line
  });

  it('NDJSON errors name the line', async () => {
    const r = await mq(['encode'], '{"type":"PINGREQ"}\n{"type":"PUBACK"}\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('mq: line 2: PUBACK.packetId: expected an integer from 0 to 65535, got nothing\n');
  });

  it('a packet the codec refuses is a usage error, not a crash', async () => {
    const r = await mq(['encode', '-V', '3.1.1', '{"type":"AUTH"}']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mq: cannot encode AUTH: .*5\.0.*\n$/);
  });

  it('--help has examples', async () => {
    const r = await mq(['encode', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('mq decode --json');
  });
});
