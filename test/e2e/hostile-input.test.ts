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
import { type ExitResult, killAll, spawnMq, startMqBroker } from '../helpers/spawn.js';

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
