/**
 * What a user (or a file, or an environment) hands to mq that a plain program would trip on
 * (issue 12, items 10, 12, 13, 14): names that are Object.prototype's own (`__proto__`,
 * `constructor`), huge -F widths, endless input files, deep JSON, numbers out of range. Each is one
 * line on stderr and a documented exit code: never a stack trace, never exit 70, never a hang.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { type ExitResult, killAll, MQ_BIN, spawnMq, spawnProcess, startMqBroker } from '../helpers/spawn.js';

const dir = mkdtempSync(join(tmpdir(), 'mq-hostile-input-'));

afterAll(async () => {
  await killAll();
});

/** One line on stderr, no stack trace. */
function oneLine(r: ExitResult): string {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

function config(profiles: unknown): string {
  const file = join(dir, `config-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ profiles }));
  return file;
}

describe("names that are Object.prototype's (item 10)", () => {
  it.each(['__proto__', 'constructor'])('--profile %s names no profile: exit 1', async (name) => {
    const r = await spawnMq(['pub', '-t', 't', '-m', 'x', '-p', '1', '--profile', name], {
      env: { MQ_CONFIG: config({ p: { host: '127.0.0.1' } }) },
    }).exit(10_000);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(new RegExp(`--profile ${name}: no such profile in .* \\(profiles: p\\)`));
  });

  it.each(['__proto__', 'constructor'])(
    'a profile field named %s is an unknown field: exit 1',
    async (field) => {
      const file = join(dir, `fields-${field}.json`);
      writeFileSync(file, `{"profiles": {"p": {"${field}": {"port": 1}}}}`);
      const r = await spawnMq(['pub', '-t', 't', '-m', 'x', '--profile', 'p'], {
        env: { MQ_CONFIG: file },
      }).exit(10_000);
      expect(r.code).toBe(1);
      expect(oneLine(r)).toMatch(new RegExp(`unknown field "${field}" .*\\(fields: url, host, port`));
    },
  );

  it.each(['constructor'])('-L %s://host is an unknown scheme: exit 1', async (scheme) => {
    const r = await spawnMq(['pub', '-t', 't', '-m', 'x', '-L', `${scheme}://h`]).exit(10_000);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(/unknown scheme '.*:\/\/' \(use mqtt, mqtts, ws, wss or unix\)/);
  });

  it("mq broker --auth '__proto__:pw' still refuses anonymous clients", async () => {
    const b = await startMqBroker(['--auth', '__proto__:pw']);
    try {
      const refused = await mqtt
        .connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, reconnectPeriod: 0 })
        .then(
          async (c) => {
            await c.endAsync();
            return 'accepted';
          },
          (err: Error) => err.message,
        );
      expect(refused).toMatch(/Bad User Name or Password|Not authorized/i);
      const user = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        username: '__proto__',
        password: 'pw',
      });
      await user.endAsync();
    } finally {
      await b.stop();
    }
  });
});

describe('-F widths and precisions are bounded (item 12)', () => {
  it.each([
    ['%999999999999t', /'%999999999999t': the width of %t is over the limit of 65535/],
    ['%300000000t', /'%300000000t': the width of %t is over the limit of 65535/],
    ['%-0300000000p', /the width of %p is over the limit of 65535/],
    ['%10.99999999R', /the precision of %R is over the limit of 65535/],
    [`%${'9'.repeat(400)}x`, /'%9{19}\.\.\.9{9}x': the width of %x is over the limit/],
  ])('-F %s is a usage error before connecting (sub and req): exit 1', async (format, message) => {
    const sub = await spawnMq(['sub', '-t', 'x', '-p', '1', '-F', format]).exit(10_000);
    const req = await spawnMq(['req', '-t', 'x', '-m', 'x', '-p', '1', '-F', format]).exit(10_000);
    for (const r of [sub, req]) {
      expect(r.code).toBe(1);
      expect(oneLine(r)).toMatch(message);
    }
  });
});

/** `bin/mq ARGS < FILE` (stdin is the file itself, as a shell redirection makes it). */
function mqWithStdinFrom(file: string, args: string[]) {
  return spawnProcess('sh', [
    '-c',
    'f=$1; shift; exec "$@" < "$f"',
    'sh',
    file,
    process.execPath,
    MQ_BIN,
    ...args,
  ]);
}

describe('inputs are read within a limit (item 13)', () => {
  const payload = /is larger than 268435455 bytes \(the largest MQTT payload\)/;

  it.each([
    [
      ['pub', '-t', 'x', '-m', '@/dev/zero'],
      /^mq: -m: \/dev\/zero is larger than 268435455 bytes \(the largest MQTT payload\)$/,
    ],
    [['pub', '-t', 'x', '-f', '/dev/zero'], /^mq: -f: \/dev\/zero /],
    [['pub', '-t', 'x', '-m', 'x', '--will-topic', 'w', '--will-payload', '@/dev/zero'], /--will-payload: /],
    [
      ['pub', '-t', 'x', '-m', 'x', '--correlation-data', '@/dev/zero'],
      /larger than 65535 bytes \(the largest MQTT binary value\)/,
    ],
    [['req', '-t', 'x', '-m', 'x', '--correlation-data', '@/dev/zero'], /larger than 65535 bytes/],
    [
      ['pub', '-t', 'x', '-m', 'x', '-D', 'connect', 'authentication-data', '@/dev/zero'],
      /larger than 65535 bytes/,
    ],
    [
      ['pub', '-t', 'x', '-m', 'x', '--cafile', '/dev/zero'],
      /--cafile: \/dev\/zero is larger than 16777216 bytes/,
    ],
    [['decode', '--raw', '-f', '/dev/zero'], /^mq: -f: \/dev\/zero is larger than 67108864 bytes/],
    [['encode', '-f', '/dev/zero'], /larger than 67108864 bytes/],
    [['decode', '-f', '/dev/zero', '--max-input', '1k'], /larger than 1024 bytes \(--max-input\)/],
    [
      ['broker', '--port', '0', '--tls-port', '0', '--cert', '/dev/zero', '--key', '/dev/zero'],
      /--cert: \/dev\/zero is larger/,
    ],
  ])('%j: exit 1, one line', async (args, message) => {
    const r = await spawnMq([...args, ...(args[0] === 'pub' || args[0] === 'req' ? ['-p', '1'] : [])]).exit(
      20_000,
    );
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(message);
  });

  it('a profiles file that never ends: exit 1', async () => {
    const r = await spawnMq(['pub', '-t', 'x', '-m', 'x', '--profile', 'p'], {
      env: { MQ_CONFIG: '/dev/zero' },
    }).exit(20_000);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(/--profile p: \/dev\/zero is larger than 1048576 bytes/);
  });

  it.each([
    [['pub', '-t', 'x', '-s', '-p', '1'], payload],
    [['decode', '--raw'], /input: stdin is larger than 67108864 bytes/],
  ])('stdin that never ends: %j exits 1', async (args, message) => {
    const r = await mqWithStdinFrom('/dev/zero', args).exit(20_000);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(message);
  });

  it('pub -l and --ndjson: a line that never ends is refused once it passes the limit', async () => {
    const b = await startMqBroker();
    try {
      const lines = await mqWithStdinFrom('/dev/zero', ['pub', '-t', 'x', '-l', '-p', String(b.port)]).exit(
        20_000,
      );
      expect(lines.code).toBe(1);
      expect(oneLine(lines)).toMatch(/-l: line 1 is longer than 268435455 bytes/);
      const ndjson = await mqWithStdinFrom('/dev/zero', ['pub', '--ndjson', '-p', String(b.port)]).exit(
        20_000,
      );
      expect(ndjson.code).toBe(1);
      expect(oneLine(ndjson)).toMatch(/--ndjson: line 1 is longer than 402653184 bytes/);
    } finally {
      await b.stop();
    }
  });

  it('--max-input raises or lowers the limit of decode', async () => {
    const input = `${'c000'.repeat(600)}\n`;
    const low = await spawnMq(['decode', '--line', '--max-input', '1000'], { input }).exit(10_000);
    expect(low.code).toBe(1);
    const ok = await spawnMq(['decode', '--line', '--max-input', '1M'], { input }).exit(10_000);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trimEnd().split('\n')).toHaveLength(600);
  });
});

describe('deep JSON and numbers out of range are documented errors, never exit 70 (item 14)', () => {
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

  it('mq encode of JSON nested 100,000 deep: malformed input, exit 4', async () => {
    for (const input of [deep(100_000), `{"type":"PUBLISH","topic":"a","properties":${deep(100_000)}}`]) {
      const r = await spawnMq(['encode'], { input }).exit(10_000);
      expect(r.code).toBe(4);
      expect(oneLine(r)).toBe(
        'mq: malformed input: the JSON nests more than 256 levels deep (a packet needs 5)',
      );
    }
  });

  it('mq pub --ndjson with a deeply nested payload: the line is refused, exit 1', async () => {
    const b = await startMqBroker();
    try {
      const input = `{"topic":"a","payload":${deep(100_000)}}\n`;
      const r = await spawnMq(['pub', '--ndjson', '-p', String(b.port)], { input }).exit(10_000);
      expect(r.code).toBe(1);
      expect(oneLine(r)).toMatch(/--ndjson line 1: the JSON nests more than 256 levels deep/);
    } finally {
      await b.stop();
    }
  });

  it.each([
    ['port', 1.5],
    ['port', 99999],
    ['port', 0],
    ['keepalive', 1.5],
    ['keepalive', 70000],
  ])('a profile with %s: %d is a usage error, exit 1', async (field, value) => {
    const r = await spawnMq(['pub', '-t', 't', '-m', 'x', '--profile', 'p'], {
      env: { MQ_CONFIG: config({ p: { host: '127.0.0.1', [field]: value } }) },
    }).exit(10_000);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(new RegExp(`profile p ${field}: '${value}' is not a whole number`));
  });

  it.each([
    [
      ['pub', '-t', 't', '-m', 'x', '--connect-timeout', '4294967296'],
      /--connect-timeout: '4294967296' seconds is more than 2147483/,
    ],
    [
      ['sub', '-t', 't', '-W', '99999999999999999999'],
      /-W: '99999999999999999999' seconds is more than 2147483/,
    ],
    [['req', '-t', 't', '-m', 'x', '-W', '4294967296'], /-W: .* is more than 2147483/],
    [
      ['pub', '-t', 't', '-m', 'x', '--repeat', '2', '--repeat-delay', '4294967296'],
      /--repeat-delay: .* is more than 2147483/,
    ],
    [['sub', '-t', 't', '--reconnect', '1..4294967296'], /--reconnect: .* <= 2147483/],
    [['broker', '--sys-interval', '4294967296'], /--sys-interval: .* is more than 2147483/],
  ])('%j: a wait longer than a timer can hold is refused, exit 1', async (args, message) => {
    const r = await spawnMq([...args, ...(args[0] === 'broker' ? ['--port', '0'] : ['-p', '1'])]).exit(
      10_000,
    );
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(message);
  });
});
