/**
 * `mq probe` against a real Mosquitto (Debian's 2.0.11): a restricted one (max_packet_size,
 * max_qos 1, retain_available false, allow_anonymous false with a mosquitto_passwd file) and a
 * stock one; and the TLS lines against mq broker over TLS with certificates made by openssl.
 *
 * What Mosquitto 2.0.11 does that the probe reports as it is:
 * - it takes packets up to 2 bytes over its max_packet_size (it compares the remaining length + 1,
 *   leaving out the remaining-length bytes): Maximum Packet Size "taken, and a 10001-byte one too";
 * - after one PUBACK it sends every queued message to a client announcing Receive Maximum 3
 *   [MQTT-3.3.4-9];
 * - it looks at keepalives only every 5 s or so: a 1 s keepalive is enforced after 2 to 7 s, so
 *   that line is pass or fail from run to run (its value, the keepalive, is always 1).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Broker } from '../../src/broker/index.js';
import { testPki } from '../helpers/certs.js';
import { type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { killAll, spawnMq } from '../helpers/spawn.js';
import { type CheckJson, checks, type ProbeJson } from '../probe/probe-json.js';

let dir: string;
let restricted: MosquittoHandle;
let stock: MosquittoHandle;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-probe-interop-'));
  const passwd = join(dir, 'passwd');
  execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'alice', 'secret']);
  // Mosquitto started as root reads its files after dropping to its own user.
  chmodSync(dir, 0o755);
  chmodSync(passwd, 0o644);
  restricted = await startMosquitto({
    extraConfig: [
      // After the helper's 'allow_anonymous true': the last one counts.
      'allow_anonymous false',
      `password_file ${passwd}`,
      'max_packet_size 10000',
      'max_qos 1',
      'retain_available false',
      'sys_interval 1',
    ],
  });
  stock = await startMosquitto({ extraConfig: ['sys_interval 1'] });
  // $SYS/broker/version is published (retained) on the first $SYS tick after start. (Not on the
  // restricted one: with retain_available false nothing is retained, $SYS included.)
  const sub = ['-p', String(stock.port), '-t', '$SYS/broker/version', '-C', '1', '-W', '5'];
  execFileSync('mosquitto_sub', sub, { timeout: 10_000 });
});

afterAll(async () => {
  await restricted?.stop();
  await stock?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function probe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return spawnMq(['probe', ...args]).exit(40_000);
}

async function probeJson(args: string[]): Promise<{ report: ProbeJson; get: (key: string) => CheckJson }> {
  const r = await probe([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const report = JSON.parse(r.stdout) as ProbeJson;
  return { report, get: (key) => checks(report).get(key)! };
}

const expectLine = (c: CheckJson, want: Omit<Partial<CheckJson>, 'detail'> & { detail?: RegExp }) => {
  const { detail, ...rest } = want;
  expect(c).toMatchObject(rest);
  if (detail !== undefined) expect(c.detail).toMatch(detail);
};

describe('a restricted Mosquitto', () => {
  test('without credentials: exit 2, the CONNACK reason', async () => {
    const r = await probe(['-h', '127.0.0.1', '-p', String(restricted.port)]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe(`mq: connection refused by 127.0.0.1:${restricted.port}: 0x87 Not authorized\n`);
  });

  test('with a user from the password file: every restriction found and checked', async () => {
    const { report, get } = await probeJson([
      '-h',
      '127.0.0.1',
      '-p',
      String(restricted.port),
      '-u',
      'alice',
      '-P',
      'secret',
    ]);
    expect(report.durationMs).toBeLessThan(15_000);
    for (const v of ['mqtt31', 'mqtt311', 'mqtt5']) expectLine(get(`versions.${v}`), { status: 'pass' });

    expectLine(get('announces.maximumQoS'), {
      status: 'pass',
      value: 1,
      announced: true,
      detail: /granted QoS 1; a QoS 2 PUBLISH got DISCONNECT 0x9b QoS not supported/,
    });
    expectLine(get('announces.retainAvailable'), {
      status: 'pass',
      value: false,
      announced: true,
      detail: /DISCONNECT 0x9a Retain not supported/,
    });
    expectLine(get('announces.maximumPacketSize'), {
      status: 'fail',
      value: 10_000,
      announced: true,
      detail: /a 10000-byte PUBLISH taken, and a 10001-byte one too/,
    });
    expectLine(get('announces.receiveMaximum'), { status: 'skipped', value: 20, announced: true });
    expectLine(get('announces.topicAliasMaximum'), { status: 'pass', value: 10 });
    expectLine(get('announces.assignedClientIdentifier'), { status: 'pass', detail: /assigned "auto-/ });

    expectLine(get('delivery.qos0'), { status: 'pass', value: 10 });
    expectLine(get('delivery.qos1'), { status: 'pass', value: 10 });
    expectLine(get('delivery.qos2'), { status: 'unsupported', detail: /Maximum QoS is 1/ });
    for (const key of ['delivery.retained', 'delivery.retainAsPublished', 'delivery.retainHandling']) {
      expectLine(get(key), { status: 'unsupported', detail: /Retain Available 0/ });
    }
    for (const key of [
      'ordering',
      'qosDowngrade',
      'noLocal',
      'wildcardPlus',
      'wildcardHash',
      'dollarTopics',
    ]) {
      expectLine(get(`delivery.${key}`), { status: 'pass' });
    }
    expectLine(get('delivery.sharedSubscriptions'), { status: 'pass', detail: /split 10\/10/ });
    expectLine(get('delivery.subscriptionIdentifiers'), { status: 'pass' });
    expectLine(get('delivery.messageExpiry'), { status: 'pass' });
    for (const key of [
      'persistentSession',
      'sessionExpiry',
      'willOnDrop',
      'noWillOnDisconnect',
      'willDelay',
    ]) {
      expectLine(get(`sessions.${key}`), { status: 'pass' });
    }

    // Packet limits: 2 bytes over max_packet_size (see the top of the file), and what that leaves
    // for a topic (10002 - 7) and for a client id beside alice/secret (10002 - 16 - 15).
    expectLine(get('limits.maximumPacketSize'), { status: 'pass', value: 10_002, bounded: false });
    expectLine(get('limits.maximumTopicLength'), { status: 'pass', value: 9995 });
    expectLine(get('limits.maximumClientIdLength'), { status: 'pass', value: 9971 });
    expectLine(get('limits.inflight'), {
      status: 'fail',
      value: 20,
      detail: /Receive Maximum 3: 3, then 3 more after one PUBACK \[MQTT-3\.3\.4-9\]/,
    });
    const keepalive = get('limits.keepalive');
    expect(keepalive.value).toBe(1);
    expect(keepalive.numbers?.closedAfterMs).toBeGreaterThan(900);
    expect(keepalive.numbers?.closedAfterMs).toBeLessThan(9000);

    expectLine(get('identity.anonymous'), {
      status: 'info',
      value: false,
      detail: /refused: 0x87 Not authorized/,
    });
    expectLine(get('identity.sysVersion'), { status: 'unsupported', detail: /not published/ });
    expectLine(get('identity.tls'), { status: 'skipped' });
  });
});

describe('a stock Mosquitto', () => {
  test('everything passes but what it does not do', async () => {
    const { report, get } = await probeJson(['-h', '127.0.0.1', '-p', String(stock.port)]);
    const notPassing = [...checks(report)]
      .filter(([, c]) => c.status !== 'pass' && c.status !== 'info')
      .map(([key, c]) => `${key} ${c.status}`)
      .filter((l) => l !== 'limits.keepalive fail');
    expect(notPassing).toEqual([
      'delivery.topicAliasFromBroker unsupported',
      'limits.inflight fail',
      'identity.tls skipped',
    ]);
    expectLine(get('announces.receiveMaximum'), {
      status: 'pass',
      value: 20,
      detail:
        /took 20 unreleased QoS 2 messages; one more got PUBREC 0x97 Quota exceeded \(the spec's answer is DISCONNECT 0x93/,
    });
    expectLine(get('identity.anonymous'), { status: 'info', value: true });
    expectLine(get('identity.sysVersion'), { status: 'info', value: 'mosquitto version 2.0.11' });
  });
});

describe('TLS (mq broker, certificates from openssl)', () => {
  let tlsDir: string;
  let broker: Broker;
  let expired: Broker;
  let port: number;
  let expiredPort: number;

  beforeAll(async () => {
    tlsDir = mkdtempSync(join(tmpdir(), 'mq-probe-tls-'));
    const pki = testPki(tlsDir);
    pki.ca('ca', 'mq probe test CA');
    pki.server('server', 'DNS:localhost,IP:127.0.0.1');
    pki.server('old', 'DNS:localhost', { days: -1 });
    const files = (name: string) => ({
      cert: readFileSync(join(tlsDir, `${name}.pem`)),
      key: readFileSync(join(tlsDir, `${name}.key`)),
    });
    broker = new Broker({ port: null, tlsPort: 0, ...files('server'), sysInterval: 0, log: () => {} });
    port = (await broker.listen()).tls!.port;
    expired = new Broker({ port: null, tlsPort: 0, ...files('old'), sysInterval: 0, log: () => {} });
    expiredPort = (await expired.listen()).tls!.port;
  });

  afterAll(async () => {
    await broker?.close();
    await expired?.close();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  test('version, cipher, chain, expiry, host name, ALPN', async () => {
    const ca = join(tlsDir, 'ca.pem');
    const { report, get } = await probeJson([
      '-L',
      `mqtts://localhost:${port}`,
      '--cafile',
      ca,
      '--only',
      'identity',
    ]);
    expect(report.transport).toBe('mqtts');
    expectLine(get('identity.tlsVersion'), { status: 'info', value: 'TLSv1.3' });
    expectLine(get('identity.tlsCipher'), { status: 'info', detail: /^TLS_/ });
    expectLine(get('identity.tlsChain'), {
      status: 'pass',
      value: 2,
      detail: /^"server" <- "mq probe test CA": trusted$/,
    });
    expectLine(get('identity.tlsExpiry'), { status: 'pass', value: 1, detail: /\(1 days left\)$/ });
    expectLine(get('identity.tlsHostname'), { status: 'pass', detail: /valid for "localhost"/ });
    expectLine(get('identity.tlsAlpn'), { status: 'info', value: false, detail: /none offered/ });
  });

  test('an expired certificate for another name, probed with --insecure: both found', async () => {
    const { get } = await probeJson([
      '-L',
      `mqtts://127.0.0.1:${expiredPort}`,
      '--insecure',
      '--servername',
      'broker.example',
      '--alpn',
      'mqtt',
      '--only',
      'identity',
    ]);
    expectLine(get('identity.tlsChain'), { status: 'fail', detail: /not trusted \(CERT_HAS_EXPIRED/ });
    expectLine(get('identity.tlsExpiry'), { status: 'fail', detail: /expired \d+ days ago/ });
    expectLine(get('identity.tlsHostname'), { status: 'fail', value: false, detail: /broker\.example/ });
    expectLine(get('identity.tlsAlpn'), {
      status: 'info',
      value: false,
      detail: /none of "mqtt" negotiated/,
    });
  });

  test('without --insecure the same broker is refused: exit 2 with the TLS reason', async () => {
    const r = await probe(['-L', `mqtts://localhost:${expiredPort}`, '--cafile', join(tlsDir, 'ca.pem')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/certificate has expired \(CERT_HAS_EXPIRED\)/);
  });
});
