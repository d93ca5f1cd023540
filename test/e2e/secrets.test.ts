/**
 * Secrets never reach a trace or an error line (issue 12, items 6 and 11): a CONNECT's password and
 * Authentication Data are shown by length only in every renderer (broker --trace line and full, the
 * client's --trace and --trace=hex, decode's views), and a password given in a URL (-L, MQ_URL, a
 * profile) is masked in every message that quotes the URL.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { killAll, spawnMq, startMqBroker } from '../helpers/spawn.js';

const PASSWORD = 'hunter2-secret';
const AUTH_DATA = 'topsecret-token';
const hexOf = (s: string) => Buffer.from(s).toString('hex');

afterAll(async () => {
  await killAll();
});

/** Asserts that `text` shows neither secret, as text or as hex. */
function expectNoSecret(text: string): void {
  for (const s of [PASSWORD, AUTH_DATA]) {
    expect(text).not.toContain(s);
    expect(text.replace(/\s/g, '')).not.toContain(hexOf(s));
  }
}

describe('broker --trace masks passwords and authentication data', () => {
  it.each(['line', 'full'])('--trace=%s', async (mode) => {
    const b = await startMqBroker(['--trace', mode, '--auth', `alice:${PASSWORD}`]);
    try {
      const ok = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, {
        protocolVersion: 5,
        username: 'alice',
        password: PASSWORD,
        reconnectPeriod: 0,
      });
      await ok.endAsync();
      const withAuth = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, {
        protocolVersion: 5,
        username: 'alice',
        password: PASSWORD,
        reconnectPeriod: 0,
        properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from(AUTH_DATA) },
      });
      withAuth.on('error', () => {});
      await b.proc.waitForLine(/SCRAM-SHA-1/, 10_000, 'stderr');
      withAuth.end(true);
    } finally {
      await b.stop();
    }
    const err = b.proc.stderr;
    expect(err).toMatch(/password.*\(14 bytes, masked\)/);
    expect(err).toMatch(/(authenticationData=|Authentication Data \(0x16\)\s+)\(15 bytes, masked\)/);
    expectNoSecret(err);
  });
});

describe("the client's --trace", () => {
  it('--trace=hex masks the bytes of the password too', async () => {
    const b = await startMqBroker(['--auth', `alice:${PASSWORD}`]);
    try {
      const r = await spawnMq([
        'pub',
        '-p',
        String(b.port),
        '-u',
        'alice',
        '-P',
        PASSWORD,
        '-t',
        't',
        '-m',
        'x',
        '--trace=hex',
      ]).exit(10_000);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/-> CONNECT .*password=\(14 bytes, masked\)/);
      expect(r.stderr).toContain(Array(14).fill('**').join(' '));
      expectNoSecret(r.stderr);
    } finally {
      await b.stop();
    }
  });
});

describe('mq decode', () => {
  const connect = encode(
    {
      type: 'CONNECT',
      protocolVersion: 5,
      clean: true,
      keepalive: 60,
      clientId: 'c',
      username: 'alice',
      password: Buffer.from(PASSWORD),
      properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from(AUTH_DATA) },
    },
    5,
  ).toString('hex');

  it.each([[[]], [['--line']], [['--bytes']]])('%j shows secrets by length only', async (flags) => {
    const r = await spawnMq(['decode', ...flags, connect]).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('(14 bytes, masked)');
    expect(r.stdout).toContain('(15 bytes, masked)');
    expectNoSecret(r.stdout);
  });

  it('--json keeps them (mq encode writes them back)', async () => {
    const r = await spawnMq(['decode', '--json', connect]).exit(10_000);
    expect(JSON.parse(r.stdout)).toMatchObject({ password: PASSWORD });
  });
});

describe('a password in a URL is masked in messages (item 11)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mq-secrets-'));

  it.each([
    ['-L without a scheme', ['-L', `alice:${PASSWORD}@127.0.0.1`], {}],
    ['-L with a bad host', ['-L', `mqtt://alice:${PASSWORD}@[::1/t`], {}],
    ['MQ_URL with a bad port', [], { MQ_URL: `mqtts://alice:${PASSWORD}@host:port` }],
  ] as [string, string[], Record<string, string>][])('%s', async (_what, args, env) => {
    const r = await spawnMq(['pub', '-t', 't', '-m', 'x', ...args], { env }).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('alice:***@');
    expectNoSecret(r.stderr);
  });

  it('a profile url', async () => {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ profiles: { p: { url: `mqtt://alice:${PASSWORD}@h:x` } } }));
    const r = await spawnMq(['pub', '-t', 't', '-m', 'x', '--profile', 'p'], {
      env: { MQ_CONFIG: config },
    }).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('alice:***@');
    expectNoSecret(r.stderr);
  });

  it('-d shows the connection without the password', async () => {
    const r = await spawnMq([
      'pub',
      '-t',
      't',
      '-m',
      'x',
      '-d',
      '-L',
      `mqtt://alice:${PASSWORD}@127.0.0.1:1`,
    ]).exit(10_000);
    expect(r.code).toBe(2);
    expectNoSecret(r.stderr);
  });
});
