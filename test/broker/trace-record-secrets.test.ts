/**
 * Secrets and the broker's files (issue 12 item 6): a CONNECT's password and v5 Authentication Data
 * never reach --trace (line or full, mq's renderer or the default one) or --record, which masks
 * them byte for byte as the proxy does, so `mq decode -f FILE --line` still reads the recording;
 * the --record and --persist files are created mode 0600.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatPacketFull, formatPacketLine } from '../../src/cli/render.js';
import { type ConnectPacket, encode } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';
import { killAll, spawnMq } from '../helpers/spawn.js';

const PASSWORD = 'hunter2-pw';
const AUTH_DATA = 'scram-client-first';
const secrets = [PASSWORD, AUTH_DATA];
const hex = (s: string) => Buffer.from(s).toString('hex');

const h = brokerHarness();
const { client } = h;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-secrets-'));
});
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

const mode = (file: string) => statSync(file).mode & 0o777;

/** A CONNECT with a password, and one with an Authentication Method and Data (refused: 0x8C). */
async function sendSecrets(port: number): Promise<void> {
  const withPassword = await client(port, {
    version: 4,
    clientId: 'pw-client',
    username: 'u',
    password: PASSWORD,
  });
  withPassword.send({ type: 'PINGREQ' });
  await withPassword.nextPacket('PINGRESP');
  const withAuth = await client(port, { connect: false, version: 5 });
  const p: ConnectPacket = {
    type: 'CONNECT',
    protocolVersion: 5,
    clean: true,
    keepalive: 60,
    clientId: 'auth-client',
    username: 'u',
    password: Buffer.from(PASSWORD),
    properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from(AUTH_DATA) },
  };
  withAuth.send(p);
  expect((await withAuth.nextPacket('CONNACK')).reasonCode).toBe(0x8c);
  // An AUTH packet from a connected client (a protocol error here, traced first).
  const v5 = await client(port, { version: 5, clientId: 'auth-packet' });
  v5.socket.write(
    encode(
      {
        type: 'AUTH',
        reasonCode: 0x18,
        properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from(AUTH_DATA) },
      },
      5,
    ),
  );
  await v5.closed();
}

describe('--trace masks passwords and Authentication Data', () => {
  test.each([
    ['full, as mq broker renders it', 'full', true],
    ['line, as mq broker renders it', 'line', true],
    ['full, the default formatter', 'full', false],
  ] as const)('%s', async (_name, traceMode, cliRenderer) => {
    const lines: string[] = [];
    const b = await h.broker({ trace: traceMode, traceOut: (l) => lines.push(l) });
    if (cliRenderer) {
      b.broker.setTraceFormatter((packet, version, m) =>
        m === 'full' ? formatPacketFull(packet, version) : formatPacketLine(packet, version),
      );
    }
    await sendSecrets(b.port);
    const text = lines.join('\n');
    expect(text).toContain('pw-client');
    expect(text).toContain('auth-client');
    expect(text).toMatch(/AUTH/);
    for (const s of secrets) {
      expect(text).not.toContain(s);
      expect(text).not.toContain(hex(s));
    }
  });
});

describe('--record', () => {
  test('masks the password and Authentication Data (same length, as the proxy records), mode 0600; mq decode -f FILE --line reads it', async () => {
    const file = join(dir, 'traffic.ndjson');
    const b = await h.broker({ recordFile: file });
    await sendSecrets(b.port);
    await b.broker.close();
    expect(mode(file)).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    for (const s of secrets) expect(text).not.toContain(hex(s));
    // Masked in place, byte for byte: '*' (0x2a) as many times as the secret is long.
    expect(text).toContain('2a'.repeat(PASSWORD.length));
    expect(text).toContain('2a'.repeat(AUTH_DATA.length));
    const records = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { client: string; direction: string });
    expect(records.some((r) => r.client === 'pw-client' && r.direction === 'in')).toBe(true);

    const decoded = await spawnMq(['decode', '-f', file, '--line']).exit(10_000);
    expect(decoded.stderr).toBe('');
    expect(decoded.code).toBe(0);
    expect(decoded.stdout).toMatch(/CONNECT/);
    expect(decoded.stdout).toMatch(/AUTH/);
    for (const s of secrets) expect(decoded.stdout).not.toContain(s);
  });

  test('an existing recording is set to 0600 before anything is appended', async () => {
    const file = join(dir, 'old.ndjson');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    const b = await h.broker({ recordFile: file });
    await b.broker.close();
    expect(mode(file)).toBe(0o600);
  });
});

describe('--persist', () => {
  test('the log (sessions, user names, payloads) is written mode 0600', async () => {
    const file = join(dir, 'broker.db');
    const b = await h.broker({ persistFile: file });
    await client(b.port, {
      version: 5,
      clientId: 'kept',
      username: 'u',
      properties: { sessionExpiryInterval: 60 },
    });
    await b.broker.close();
    expect(readFileSync(file, 'utf8')).toContain('kept');
    expect(mode(file)).toBe(0o600);
  });
});
