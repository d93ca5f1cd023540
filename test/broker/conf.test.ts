/**
 * `mq broker -c mosquitto.conf` as a user runs it (bin/mq): the file's settings in effect, flags
 * given on the command line over them, warnings and errors naming file:line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConnectError, MqttClient } from '../../src/client/index.js';
import { testPki } from '../helpers/certs.js';
import { TestClient } from '../helpers/mqtt-test-client.js';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

// Made by mosquitto_passwd 2.0.11 (-b pw alice secret).
const ALICE_7 =
  'alice:$7$101$hcYPKOd1RKYLOcba$01yCu57xZcu6fKBzD7uTEwuuCWzy1V+i1nrnsEUk3+a5TYaf7FspdWqYe1gzrH5SW5YZo6p270bAE//M5iK6/g==';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-conf-'));
  writeFileSync(join(dir, 'passwd'), `${ALICE_7}\n`);
  writeFileSync(join(dir, 'acl'), 'user alice\ntopic readwrite alice/#\n');
});
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `lines` as a config file; returns its path. */
function conf(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** The port of the `scheme://` listening line. */
function portOf(broker: MqBroker, scheme: string): number {
  const m = new RegExp(`listening on ${scheme}://127\\.0\\.0\\.1:(\\d+)`).exec(broker.proc.stdout);
  if (m === null) throw new Error(`no ${scheme} listener in ${broker.proc.stdout}`);
  return Number(m[1]);
}

describe('mq broker -c', () => {
  test("the file's listeners, password_file, acl_file, limits and retain_available are in effect; --port 0 moves its listener", async () => {
    const file = conf('all.conf', [
      '# a Mosquitto config',
      'listener 1883 127.0.0.1',
      'listener 9001 lo',
      'protocol websockets',
      `password_file ${join(dir, 'passwd')}`,
      `acl_file ${join(dir, 'acl')}`,
      'max_packet_size 200',
      'retain_available false',
      'sys_interval 0',
      `persistence true`,
      `persistence_location ${dir}`,
      'persistence_file state.db',
      'log_type all',
    ]);
    const broker = await startMqBroker(['-c', file, '--ws-port', '0']);
    expect(broker.proc.stdout).toMatch(/listening on ws:\/\/127\.0\.0\.1:\d+\/mqtt/);
    expect(broker.proc.stderr).toMatch(
      /warning: .*all\.conf:13: log_type is not implemented by mq broker: ignored/,
    );
    // allow_anonymous defaults to false with a listener; the $7$ user logs in.
    const anon = await TestClient.connect(broker.port, { version: 5, expectSuccess: false });
    expect(anon.connack?.reasonCode).toBe(0x87);
    const c = await TestClient.connect(broker.port, { version: 5, username: 'alice', password: 'secret' });
    expect(c.connack?.properties).toMatchObject({ maximumPacketSize: 200, retainAvailable: 0 });
    c.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'bob/#', qos: 0 }] });
    expect((await c.nextPacket('SUBACK')).reasonCodes).toEqual([0x87]);
    c.send({
      type: 'PUBLISH',
      topic: 'alice/x',
      qos: 0,
      dup: false,
      retain: false,
      payload: Buffer.alloc(300),
    });
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x95);
    c.destroy();
    const ws = await MqttClient.connect({
      transport: 'ws',
      host: '127.0.0.1',
      port: portOf(broker, 'ws'),
      path: '/mqtt',
      version: 4,
      clientId: 'conf-ws',
      keepalive: 60,
      clean: false,
      username: 'alice',
      password: Buffer.from('secret'),
    });
    await ws.subscribe([{ topicFilter: 'alice/#', qos: 1 }]);
    await ws.end();
    expect((await broker.stop()).code).toBe(0);
    // persistence: mq's log, at persistence_location/persistence_file.
    expect(readFileSync(join(dir, 'state.db'), 'utf8')).toMatch(/conf-ws/);
  });

  test('a flag on the command line wins over the same setting from the file', async () => {
    const file = conf('override.conf', [
      'listener 1883 127.0.0.1',
      'allow_anonymous false',
      'max_packet_size 100',
      'retain_available true',
    ]);
    const broker = await startMqBroker([
      '-c',
      file,
      '--allow-anonymous',
      '--max-packet-size',
      '5000',
      '--no-retain',
    ]);
    const c = await TestClient.connect(broker.port, { version: 5 });
    expect(c.connack?.properties).toMatchObject({ maximumPacketSize: 5000, retainAvailable: 0 });
    c.destroy();
    await broker.stop();
  });

  test('TLS listeners from the file: certfile after listener applies to it; require_certificate refuses clients without one', async () => {
    const pki = testPki(dir);
    pki.ca('ca', 'conf CA');
    pki.server('server', 'IP:127.0.0.1');
    pki.client('alice-cert', 'alice');
    const tls = [
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      `cafile ${join(dir, 'ca.pem')}`,
      'require_certificate true',
      'use_identity_as_username true',
    ];
    const file = conf('tls.conf', [
      'listener 1883 127.0.0.1',
      'listener 8883 127.0.0.1',
      ...tls,
      'listener 8884 127.0.0.1',
      'protocol websockets',
      ...tls,
      `acl_file ${join(dir, 'acl')}`,
    ]);
    const broker = await startMqBroker(['-c', file, '--tls-port', '0', '--wss-port', '0']);
    const ca = readFileSync(join(dir, 'ca.pem'));
    const base = {
      host: '127.0.0.1',
      version: 5 as const,
      keepalive: 60,
      clean: true,
      connectTimeoutMs: 3000,
    };
    const cert = {
      ca,
      cert: readFileSync(join(dir, 'alice-cert.pem')),
      key: readFileSync(join(dir, 'alice-cert.key')),
    };
    for (const [transport, port] of [
      ['mqtts', portOf(broker, 'mqtts')],
      ['wss', portOf(broker, 'wss')],
    ] as const) {
      const c = await MqttClient.connect({
        ...base,
        transport,
        port,
        clientId: `conf-${transport}`,
        tls: cert,
      });
      const ack = await c.subscribe([
        { topicFilter: 'alice/#', qos: 0 },
        { topicFilter: 'bob/#', qos: 0 },
      ]);
      expect(ack.reasonCodes).toEqual([0, 0x87]);
      await c.end();
      const refused = await MqttClient.connect({
        ...base,
        transport,
        port,
        clientId: 'x',
        tls: { ca },
      }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConnectError);
    }
    await broker.proc.waitForLine(/TLS handshake refused/, 5000, 'stderr');
    await broker.stop();
  });
});

test('--help describes -c, the client-certificate flags, --wss-port and mosquitto_passwd files, with examples', async () => {
  const help = await spawnMq(['broker', '--help']).exit(10_000);
  expect(help.code).toBe(0);
  for (const flag of [
    '-c, --config <file>',
    '--wss-port <port>',
    '--cafile <file>',
    '--require-certificate',
    '--use-identity-as-username',
    '--allow-anonymous [bool]',
  ]) {
    expect(help.stdout).toContain(flag);
  }
  expect(help.stdout).toMatch(/mq broker -c \/etc\/mosquitto\/mosquitto\.conf/);
  expect(help.stdout).toMatch(/mosquitto_passwd -c -b passwd alice secret && mq broker --passwd passwd/);
  expect(help.stdout).toMatch(/Mosquitto's config file \(-c\)/);
});

describe('mq broker -c: mistakes', () => {
  test.each([
    [
      ['listener 1883', 'max_packet_size lots'],
      "bad.conf:2: max_packet_size: 'lots' is not a whole number from 20 to 2147483647",
    ],
    [
      ['listener 1883', 'alow_anonymous true'],
      "bad.conf:2: unknown directive 'alow_anonymous' (not a Mosquitto option either)",
    ],
    [
      ['listener 1883 127.0.0.1', 'listener 1884 127.0.0.1'],
      'bad.conf:2: a second mqtt listener (the first is on line 1)',
    ],
    [['listener 1883', 'protocol http'], "bad.conf:2: protocol: 'http' is not mqtt or websockets"],
  ])('%j: exit 1, one line naming file:line', async (lines, message) => {
    const r = await spawnMq(['broker', '-c', conf('bad.conf', lines)]).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
  });

  test('a missing file: exit 1', async () => {
    const r = await spawnMq(['broker', '-c', join(dir, 'nope.conf')]).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/-c: cannot read .*nope\.conf: no such file/);
  });

  test('new flags checked: --require-certificate needs --cafile, --use-identity-as-username needs it, --cafile needs a TLS listener', async () => {
    const tls = ['--tls-port', '0', '--cert', 'c.pem', '--key', 'k.pem'];
    for (const [args, message] of [
      [['--cafile', 'ca.pem'], /--cafile needs --tls-port or --wss-port/],
      [['--allow-anonymous', 'maybe'], /--allow-anonymous: 'maybe' is not true or false/],
      [['--wss-port', '0'], /--wss-port needs --cert and --key/],
    ] as const) {
      const r = await spawnMq(['broker', ...args]).exit(10_000);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
    }
    writeFileSync(join(dir, 'c.pem'), 'x');
    writeFileSync(join(dir, 'k.pem'), 'x');
    for (const [args, message] of [
      [['--require-certificate'], /--require-certificate needs --cafile/],
      [['--use-identity-as-username'], /--use-identity-as-username needs --require-certificate/],
    ] as const) {
      const r = await spawnMq(['broker', ...tls, ...args], { cwd: dir }).exit(10_000);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
    }
  });

  test('allow_anonymous false without users: a warning that every client will be refused', async () => {
    const broker = await startMqBroker(['-c', conf('nobody.conf', ['listener 1883 127.0.0.1'])]);
    await broker.proc.waitForLine(
      /warning: anonymous clients are not allowed and no users are configured/,
      5000,
      'stderr',
    );
    await broker.stop();
  });
});
