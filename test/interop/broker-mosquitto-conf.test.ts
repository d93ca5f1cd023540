/**
 * One mosquitto.conf, two brokers: the same file run by a real Mosquitto (`mosquitto -c FILE`)
 * and by `mq broker -c FILE` (ports moved with --port 0 / --tls-port 0), with a password file made
 * by mosquitto_passwd ($7$ and $6$ lines), max_packet_size, retain_available false, an ACL, and a
 * TLS listener requiring client certificates whose CN is the user name. mosquitto_pub and
 * mosquitto_sub check both the same way.
 *
 * Known differences, asserted as such: a wrong password is CONNACK 5 "not authorised" on
 * Mosquitto 2.0 and 4 "bad user name or password" on mq; Mosquitto grants a SUBSCRIBE the ACL
 * denies (and delivers nothing), mq refuses it (0x80).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testPki } from '../helpers/certs.js';
import { freePort, MOSQUITTO_BIN, waitForPort } from '../helpers/mosquitto.js';
import { killAll, type Spawned, spawnProcess, startMqBroker } from '../helpers/spawn.js';

let dir: string;
/** Plain and TLS ports written in the file (Mosquitto binds them; mq is moved to free ones). */
let filePort: number;
let fileTlsPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-conf-interop-'));
  // Mosquitto (started as root) reads the files as the mosquitto user.
  chmodSync(dir, 0o755);
  const passwd = join(dir, 'passwd');
  const run = (args: string[]) => spawnProcess('mosquitto_passwd', args).exit(10_000);
  expect((await run(['-c', '-b', passwd, 'alice', 'secret'])).code).toBe(0);
  expect((await run(['-H', 'sha512', '-b', passwd, 'bob', 'hunter2'])).code).toBe(0);
  writeFileSync(join(dir, 'acl'), 'user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n');
  const pki = testPki(dir);
  pki.ca('ca', 'conf interop CA');
  pki.server('server', 'IP:127.0.0.1');
  pki.client('alice-cert', 'alice');
  for (const f of ['passwd', 'acl', 'ca.pem', 'server.pem', 'server.key', 'alice-cert.pem', 'alice-cert.key'])
    chmodSync(join(dir, f), 0o644);
  filePort = await freePort();
  fileTlsPort = await freePort();
  writeFileSync(
    join(dir, 'plain.conf'),
    [
      '# the same file for Mosquitto and mq broker',
      `listener ${filePort} 127.0.0.1`,
      `password_file ${passwd}`,
      `acl_file ${join(dir, 'acl')}`,
      'max_packet_size 100',
      'retain_available false',
      'log_type error',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'tls.conf'),
    [
      `listener ${fileTlsPort} 127.0.0.1`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      `cafile ${join(dir, 'ca.pem')}`,
      'require_certificate true',
      'use_identity_as_username true',
      `acl_file ${join(dir, 'acl')}`,
      '',
    ].join('\n'),
  );
}, 30_000);

afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  port: number;
  stop(): Promise<unknown>;
}

/** `mosquitto -c FILE` on the file's port. */
async function mosquitto(file: string, port: number): Promise<Running> {
  const proc = spawnProcess(MOSQUITTO_BIN, ['-c', join(dir, file)]);
  await waitForPort(port, 5000, () => proc.exited).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.stderr}`);
  });
  return { port, stop: () => proc.kill('SIGTERM') };
}

/** `mq broker -c FILE` with the file's listener moved to a free port. */
async function mq(file: string, tls: boolean): Promise<Running> {
  const args = ['-c', join(dir, file), ...(tls ? ['--tls-port', '0'] : [])];
  const b = await startMqBroker(args);
  const m = tls ? /listening on mqtts:\/\/127\.0\.0\.1:(\d+)/.exec(b.proc.stdout) : undefined;
  return { port: m ? Number(m[1]) : b.port, stop: () => b.stop() };
}

const BROKERS = [
  ['mosquitto', (file: string, tls: boolean) => mosquitto(file, tls ? fileTlsPort : filePort)],
  ['mq broker', mq],
] as const;

/** alice (`auth`: her credentials or certificate) publishes to bob/x: v5 PUBACK Not authorized. */
async function refusedToBob(port: number, auth: string[]): Promise<void> {
  const r = await client('mosquitto_pub', port, [...auth, '-V', '5', '-t', 'bob/x', '-q', '1', '-m', 'no']);
  expect(r.stderr).toMatch(/Publish 1 failed: Not authorized/);
}

/** mosquitto_pub/_sub with `args`; resolves with the exit code and output. */
function client(tool: 'mosquitto_pub' | 'mosquitto_sub', port: number, args: string[]) {
  return spawnProcess(tool, ['-h', '127.0.0.1', '-p', String(port), ...args]).exit(10_000);
}

describe.each(BROKERS)('the same mosquitto.conf run by %s', (_name, start) => {
  let broker: Running;
  beforeAll(async () => {
    broker = await start('plain.conf', false);
  });
  afterAll(async () => {
    await broker?.stop();
  });
  const alice = ['-u', 'alice', '-P', 'secret'];

  test('allow_anonymous defaults to false: an anonymous client is refused, not authorised', async () => {
    const r = await client('mosquitto_sub', broker.port, ['-t', 'x', '-E']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Connection Refused: not authori[sz]ed/);
  });

  test("mosquitto_passwd's $7$ (alice) and $6$ (bob) users log in; a wrong password is refused", async () => {
    expect((await client('mosquitto_sub', broker.port, [...alice, '-t', 'alice/x', '-E'])).code).toBe(0);
    const bob = await client('mosquitto_sub', broker.port, [
      '-u',
      'bob',
      '-P',
      'hunter2',
      '-t',
      'bob/x',
      '-E',
      '-V',
      '5',
    ]);
    expect(bob.code).toBe(0);
    const wrong = await client('mosquitto_sub', broker.port, ['-u', 'alice', '-P', 'nope', '-t', 'x', '-E']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/Connection Refused/);
  });

  test('max_packet_size 100: a larger PUBLISH loses the connection, a small one goes through', async () => {
    const sub = await subscriber(broker.port, [...alice, '-t', 'alice/#']);
    const big = await client('mosquitto_pub', broker.port, [
      ...alice,
      '-t',
      'alice/big',
      '-q',
      '1',
      '-m',
      'x'.repeat(200),
    ]);
    expect(big.code).not.toBe(0);
    const small = await client('mosquitto_pub', broker.port, [
      ...alice,
      '-t',
      'alice/small',
      '-q',
      '1',
      '-m',
      'ok',
    ]);
    expect(small.code).toBe(0);
    await sub.waitForLine(/^MSG alice\/small ok$/, 10_000);
    expect(sub.lines().filter((l) => l.startsWith('MSG '))).toEqual(['MSG alice/small ok']);
    await sub.kill();
  });

  test('retain_available false: a retained PUBLISH loses the connection', async () => {
    const r = await client('mosquitto_pub', broker.port, [
      ...alice,
      '-t',
      'alice/r',
      '-q',
      '1',
      '-r',
      '-m',
      'kept',
    ]);
    expect(r.code).not.toBe(0);
  });

  test("acl_file: alice's publish to bob/x is refused (v5 PUBACK Not authorized)", async () => {
    await refusedToBob(broker.port, alice);
  });
});

/** mosquitto_sub (line-buffered, -d), printing `MSG topic payload`; resolves once it has its SUBACK. */
async function subscriber(port: number, args: string[]): Promise<Spawned> {
  const p = spawnProcess('stdbuf', [
    '-oL',
    'mosquitto_sub',
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-d',
    '-F',
    'MSG %t %p',
    ...args,
  ]);
  await p.waitForLine(/received SUBACK/, 10_000);
  return p;
}

describe.each(BROKERS)('the same TLS mosquitto.conf run by %s', (_name, start) => {
  let broker: Running;
  beforeAll(async () => {
    broker = await start('tls.conf', true);
  });
  afterAll(async () => {
    await broker?.stop();
  });
  const tls = () => ['--cafile', join(dir, 'ca.pem')];
  const aliceCert = () => [
    ...tls(),
    '--cert',
    join(dir, 'alice-cert.pem'),
    '--key',
    join(dir, 'alice-cert.key'),
  ];

  test('require_certificate: mosquitto_sub with --cert/--key connects, without is refused', async () => {
    expect((await client('mosquitto_sub', broker.port, [...aliceCert(), '-t', 'alice/x', '-E'])).code).toBe(
      0,
    );
    const none = await client('mosquitto_sub', broker.port, [...tls(), '-t', 'alice/x', '-E']);
    expect(none.code).not.toBe(0);
  });

  test('use_identity_as_username: the CN (alice) is the user for the ACL, no password given', async () => {
    await refusedToBob(broker.port, aliceCert());
    const ok = await client('mosquitto_pub', broker.port, [
      ...aliceCert(),
      '-V',
      '5',
      '-t',
      'alice/x',
      '-q',
      '1',
      '-m',
      'yes',
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
  });
});
