/**
 * `mq probe` end to end: what the user sees (the text report, --json, exit codes, usage errors),
 * that it cleans up after itself, that a broker dropping connections or answering too slowly fails
 * checks without ending the probe, Ctrl-C, and the fall back to MQTT 3.1.1.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Broker } from '../../src/broker/index.js';
import { MqttClient } from '../../src/client/index.js';
import { startFakeBroker } from '../helpers/fake-broker.js';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';
import { checks, type ProbeJson, probeJson } from '../probe/probe-json.js';

let broker: MqBroker;

beforeAll(async () => {
  broker = await startMqBroker(['-q']);
});

afterAll(async () => {
  await broker?.stop();
  await killAll();
});

const probe = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnMq(['probe', '-h', '127.0.0.1', '-p', String(broker.port), ...args], { env }).exit(30_000);

describe('the text report', () => {
  test('a heading, sections, one line per check with its status, a summary; no colour off a TTY', async () => {
    const r = await probe(['--only', 'versions,identity']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(`^mq probe 127\\.0\\.0\\.1:${broker.port}: MQTT 5\\.0, topics under mq-probe/[0-9a-f]{8}$`),
    );
    expect(lines).toContain('Versions');
    expect(lines).toContain('Identity');
    expect(lines).not.toContain('Delivery');
    expect(lines.find((l) => l.includes('MQTT 3.1 (MQIsdp)'))).toMatch(
      /^ {2}MQTT 3\.1 \(MQIsdp\) +pass +accepted$/,
    );
    expect(lines.find((l) => l.includes('$SYS/broker/version'))).toMatch(/ info +"mq broker"$/);
    expect(lines.find((l) => l.startsWith('  TLS'))).toMatch(/skipped +not a TLS connection/);
    expect(lines.at(-2)).toMatch(/^3 pass, 0 fail, 0 not supported, 1 skipped, 2 info in \d+\.\d s$/);
    expect(r.stdout).not.toMatch(/\x1b\[/);
  });

  test('colour when forced (FORCE_COLOR), never with NO_COLOR', async () => {
    const coloured = await probe(['--only', 'versions'], { NO_COLOR: '', FORCE_COLOR: '1' });
    expect(coloured.stdout).toMatch(/\x1b\[32mpass/);
    const plain = await probe(['--only', 'versions'], { NO_COLOR: '1', FORCE_COLOR: '1' });
    expect(plain.stdout).not.toMatch(/\x1b\[/);
  });

  test('--help has examples and the exit codes', async () => {
    const r = await spawnMq(['probe', '--help']).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n {2}mq probe /);
    expect(r.stdout).toMatch(/--only limits --max-probe 64k/);
    expect(r.stdout).toMatch(/Exit codes: 0 the report was printed/);
  });
});

describe('--json and the choice of sections', () => {
  test('one object: sections as keys, checks under their ids, the CONNACK as decode --json prints it', async () => {
    const report = await probeJson(broker.port, ['--skip', 'limits,identity,sessions']);
    expect(Object.keys(report)).toEqual([
      'target',
      'transport',
      'version',
      'prefix',
      'durationMs',
      'interrupted',
      'summary',
      'versions',
      'announces',
      'delivery',
      'connack',
    ]);
    expect(report.connack).toEqual({
      type: 'CONNACK',
      version: '5.0',
      sessionPresent: false,
      reasonCode: 0,
      // The probe asks for Response Information: mq broker's holds the probe's client id.
      properties: {
        topicAliasMaximum: 10,
        responseInformation: expect.stringMatching(/^resp\/mqp[0-9a-f]{8}-0\/$/),
      },
    });
    const all = checks(report);
    expect(all.get('announces.topicAliasMaximum')).toMatchObject({
      status: 'pass',
      value: 10,
      announced: true,
    });
    expect(all.get('announces.maximumQoS')).toMatchObject({ status: 'pass', value: 2, announced: false });
    expect(all.get('delivery.qos1')).toMatchObject({ status: 'pass', value: 10 });
    expect(all.get('delivery.qos1')?.numbers).toMatchObject({ delivered: 10 });
  });

  test('-V 3.1.1: the checks run in 3.1.1, MQTT 5 ones are skipped', async () => {
    const report = await probeJson(broker.port, ['-V', '3.1.1', '--only', 'announces,delivery']);
    expect(report.version).toBe('3.1.1');
    const all = [...checks(report)];
    const skipped = all.filter(([, c]) => c.status === 'skipped').map(([k]) => k);
    expect(skipped).toEqual(
      expect.arrayContaining(['announces.maximumQoS', 'delivery.noLocal', 'delivery.messageExpiry']),
    );
    expect(all.find(([k]) => k === 'announces.maximumQoS')?.[1].detail).toBe(
      'MQTT 5 only (the probe runs in MQTT 3.1.1)',
    );
    expect(checks(report).get('delivery.qos2')).toMatchObject({ status: 'pass' });
    expect(checks(report).get('delivery.sharedSubscriptions')).toMatchObject({ status: 'pass' });
  });

  test.each([
    [
      ['--only', 'bogus'],
      "mq: --only: unknown section 'bogus' (sections: versions, announces, delivery, sessions, limits, identity)",
    ],
    [['--only', 'limits', '--skip', 'delivery'], 'mq: --only and --skip cannot be combined'],
    [['--timeout', '0'], 'mq: --timeout must be more than 0 seconds'],
    [['--max-probe', '12q'], "mq: --max-probe: '12q' is not a size in bytes (e.g. 65536, 64k, 1M)"],
    [
      ['-i', 'me'],
      'mq: -i (use -I PREFIX: the probe opens many connections): not for mq probe (each check makes its own sessions and wills)',
    ],
    [['--prefix', 'a/#'], "mq: --prefix: topic name 'a/#' contains the wildcard '#'"],
  ])('usage error %j: exit 1, one line', async (args, message) => {
    const r = await probe(args);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr.split('\n')[0]).toBe(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('nothing listening: exit 2 with the reason', async () => {
    const closed = await startMqBroker(['-q']);
    await closed.stop();
    const r = await spawnMq(['probe', '-p', String(closed.port)]).exit(15_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mq: could not connect to localhost:\d+: connection refused/);
  });
});

describe('cleanup and prefix', () => {
  test('no retained message and no session is left behind; every topic is under --prefix', async () => {
    const inproc = new Broker({ port: 0, sysInterval: 0, log: () => {} });
    const { tcp } = await inproc.listen();
    try {
      const topics = new Set<string>();
      const watcher = await MqttClient.connect({
        transport: 'mqtt',
        host: '127.0.0.1',
        port: tcp!.port,
        version: 5,
        clientId: 'watcher',
        keepalive: 60,
        clean: true,
      });
      watcher.on('message', (p) => topics.add(p.topic));
      await watcher.subscribe([{ topicFilter: '#', qos: 0 }]);
      const report = await probeJson(tcp!.port, ['--prefix', 'e2e/probe']);
      await watcher.end();
      expect(report.prefix).toBe('e2e/probe');
      expect(report.summary.fail).toBe(0);
      for (const [key, c] of checks(report)) expect(c.cleanupError, key).toBeUndefined();
      expect([...topics].filter((t) => !t.startsWith('e2e/probe/'))).toEqual([]);
      expect(topics.size).toBeGreaterThan(20);
      // Sessions are ended at once (expiry 0 on the last connection); none may linger.
      expect(inproc.stats).toMatchObject({ retainedCount: 0, clientsTotal: 0, clientsConnected: 0 });
    } finally {
      await inproc.close();
    }
  });
});

describe('a broker that misbehaves fails checks, not the probe', () => {
  test('--disconnect-after 1: the checks that outlive it fail with the reason; the probe completes', async () => {
    const dropping = await startMqBroker(['-q', '--disconnect-after', '1']);
    try {
      const report: ProbeJson = await probeJson(dropping.port, ['--only', 'sessions,limits']);
      expect(report.interrupted).toBe(false);
      expect(report.summary.pass).toBeGreaterThan(5);
      const failed = [...checks(report)].filter(([, c]) => c.status === 'fail');
      // The keepalive check stays silent for 1.5 s on one connection: cut at 1 s.
      expect(failed.map(([k]) => k)).toContain('limits.keepalive');
      expect(checks(report).get('limits.keepalive')?.detail).toMatch(
        /closed with DISCONNECT 0x98 Administrative action after .* not for the keepalive$/,
      );
      for (const [key, c] of failed) expect(c.detail, key).toMatch(/0x98 Administrative action/);
    } finally {
      await dropping.stop();
    }
  });

  test('--max-connections 6: refusals at 8 checks at once are failures; --concurrency 1 probes it', async () => {
    const small = await startMqBroker(['-q', '--max-connections', '6']);
    try {
      const crowded = await probeJson(small.port, ['--only', 'delivery']);
      expect(crowded.summary.fail).toBeGreaterThan(0);
      const failed = [...checks(crowded)].filter(([, c]) => c.status === 'fail');
      for (const [key, c] of failed) expect(c.detail, key).toMatch(/0x89 Server busy/);
      const oneByOne = await probeJson(small.port, ['--only', 'delivery', '--concurrency', '1']);
      expect(oneByOne.summary.fail).toBe(0);
    } finally {
      await small.stop();
    }
  });

  test('--delay 1500 with --timeout 0.3: each check fails at its time limit; the probe ends in time', async () => {
    const slow = await startMqBroker(['-q', '--delay', '1500']);
    try {
      const started = Date.now();
      const report = await probeJson(slow.port, ['--only', 'delivery', '--timeout', '0.3']);
      expect(Date.now() - started).toBeLessThan(15_000);
      const all = [...checks(report)];
      expect(all.length).toBeGreaterThan(10);
      for (const [key, c] of all) {
        expect(c.status, key).toBe('fail');
        expect(c.detail, key).toMatch(/within 0\.3 s|no answer within/);
      }
    } finally {
      await slow.stop();
    }
  });
});

test('Ctrl-C: the report so far is printed, the rest marked interrupted, exit 130', async () => {
  const p = spawnMq(['probe', '-h', '127.0.0.1', '-p', String(broker.port), '--trace']);
  // The keepalive check (1.5 s of silence) is under way once its CONNECT is traced.
  await p.waitForLine(/^\[keepalive#1\] -> CONNECT/, 10_000, 'stderr');
  p.proc.kill('SIGINT');
  const r = await p.exit(15_000);
  expect(r.code).toBe(130);
  expect(r.stdout).toMatch(/Keepalive enforced at 1\.5x +skipped +interrupted/);
  expect(r.stdout).toMatch(/\nInterrupted: \d+ pass, 0 fail/);
});

test('a broker that answers MQTT 5 in 3.1.1 is probed in 3.1.1', async () => {
  const old = await startFakeBroker(
    (packet, session) => {
      if (packet.type === 'CONNECT' && packet.protocolVersion === 5) {
        session.socket.end(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      } else if (packet.type === 'CONNECT') {
        session.send({ type: 'CONNACK', sessionPresent: false, reasonCode: 0 });
      } else if (packet.type === 'DISCONNECT') {
        session.close();
      }
    },
    { autoConnack: false },
  );
  try {
    const report = await probeJson(old.port, ['--only', 'versions']);
    expect(report.version).toBe('3.1.1');
    expect(report.fallback).toBe('the broker answered in 3.1.1 to an MQTT 5 CONNECT');
    expect(checks(report).get('versions.mqtt5')).toMatchObject({
      status: 'unsupported',
      detail: 'answered in MQTT 3.1.1: return code 1 (unacceptable protocol version)',
    });
    expect(checks(report).get('versions.mqtt311')).toMatchObject({ status: 'pass' });
  } finally {
    await old.stop();
  }
});
