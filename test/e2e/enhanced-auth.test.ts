/**
 * `--auth-method SCRAM-...` end to end: mq pub, sub and req (bin/mq) against `mq broker --auth`,
 * what a user sees (exit code, stdout, stderr), the trace masked, the usage errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttClient, scramAuth } from '../../src/client/index.js';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

let broker: MqBroker;
let open: MqBroker;
let responder: MqttClient;

beforeAll(async () => {
  [broker, open] = await Promise.all([
    startMqBroker(['--auth', 'alice:s3cret', '--auth', 'bob:builder']),
    startMqBroker(),
  ]);
  // A responder for mq req, itself logged in with SCRAM.
  responder = await MqttClient.connect({
    transport: 'mqtt',
    host: '127.0.0.1',
    port: broker.port,
    version: 5,
    clientId: 'responder',
    keepalive: 60,
    clean: true,
    auth: scramAuth('SCRAM-SHA-1', 'bob', 'builder'),
  });
  responder.on('message', (p) => {
    const responseTopic = p.properties?.responseTopic;
    if (responseTopic === undefined) return;
    const correlationData = p.properties?.correlationData;
    void responder.publish(responseTopic, `echo: ${p.payload.toString()}`, {
      qos: 1,
      ...(correlationData !== undefined ? { properties: { correlationData } } : {}),
    });
  });
  await responder.subscribe([{ topicFilter: 'svc/echo', qos: 1 }]);
});

afterAll(async () => {
  await responder?.end().catch(() => undefined);
  await broker?.stop();
  await open?.stop();
  await killAll();
});

const at = (b: MqBroker) => ['-p', String(b.port)];
/** -p PORT --auth-method METHOD -u USER [-P PASS] */
const scram = (b: MqBroker, method: string, user: string, pass?: string) => [
  ...at(b),
  '--auth-method',
  method,
  '-u',
  user,
  ...(pass !== undefined ? ['-P', pass] : []),
];
/** mq pub -t a -m x as USER with METHOD (and `extra` flags): its exit. */
const pubAs = (b: MqBroker, method: string, user: string, pass: string, extra: string[] = []) =>
  spawnMq(['pub', ...scram(b, method, user, pass), '-t', 'a', '-m', 'x', ...extra]).exit(10_000);

describe('mq pub / sub / req --auth-method', () => {
  it('sub with SCRAM-SHA-256 receives what pub with SCRAM-SHA-512 sends; the broker logs them as alice', async () => {
    const sub = spawnMq([
      'sub',
      ...scram(broker, 'SCRAM-SHA-256', 'alice', 's3cret'),
      '-t',
      'scram/#',
      '-C',
      '1',
      '-v',
      '-d',
    ]);
    await sub.waitForLine(/SUBACK/, 10_000, 'stderr');
    const pub = await spawnMq(
      ['pub', ...scram(broker, 'scram-sha-512', 'alice'), '-t', 'scram/a', '-m', 'hello', '-q', '1'],
      { env: { MQ_PASSWORD: 's3cret' } },
    ).exit(10_000);
    expect(pub).toMatchObject({ code: 0, stderr: '' });
    const r = await sub.exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('scram/a hello\n');
    // -d shows the exchange, its Authentication Data masked.
    expect(r.stderr).toMatch(
      /-> CONNECT .*authenticationMethod="SCRAM-SHA-256" authenticationData=\(\d+ bytes, masked\)/,
    );
    expect(r.stderr).toMatch(
      /<- AUTH 0x18 Continue authentication .*authenticationData=\(\d+ bytes, masked\)/,
    );
    expect(r.stderr).toMatch(/-> AUTH 0x18 Continue authentication/);
    expect(r.stderr).toMatch(
      /<- CONNACK 0x00 Success .*authenticationMethod="SCRAM-SHA-256" authenticationData=\(\d+ bytes, masked\)/,
    );
    expect(r.stderr).not.toMatch(/n=alice|r=|p=|v=|s3cret/);
    await broker.proc.waitForLine(/connected from .*user alice\)$/, 5000, 'stderr');
  });

  it('req with SCRAM-SHA-1 gets its reply', async () => {
    const r = await spawnMq([
      'req',
      ...scram(broker, 'SCRAM-SHA-1', 'alice', 's3cret'),
      '-t',
      'svc/echo',
      '-m',
      'ping',
    ]).exit(15_000);
    expect(r).toMatchObject({ code: 0, stdout: 'echo: ping\n', stderr: '' });
  });

  it('a wrong password: exit 2, 0x86 on one line', async () => {
    const r = await pubAs(broker, 'SCRAM-SHA-256', 'alice', 'nope');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^mq: connection refused by localhost:\d+: 0x86 Bad User Name or Password: check -u\/-P/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a broker that does not offer the method: exit 2, 0x8C with a hint', async () => {
    const r = await pubAs(open, 'SCRAM-SHA-256', 'alice', 's3cret');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /0x8c Bad authentication method: the broker does not offer that authentication method \(--auth-method\)/,
    );
  });

  it.each([
    [['-V', '3.1.1', '-u', 'a', '-P', 'b'], /--auth-method needs MQTT 5/],
    [['-u', 'a'], /--auth-method SCRAM-SHA-256 needs -u and -P/],
    [['-P', 'b'], /needs -u and -P/],
  ])('usage errors: %j -> exit 1', async (args, message) => {
    const r = await spawnMq([
      'pub',
      ...at(broker),
      '--auth-method',
      'SCRAM-SHA-256',
      ...args,
      '-t',
      'a',
      '-m',
      'x',
    ]).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });

  it('an unknown method is a usage error naming the three', async () => {
    const r = await spawnMq(['sub', ...scram(broker, 'PLAIN', 'a', 'b'), '-t', 'a']).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/'PLAIN' is not SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512/);
  });

  it('mq broker --make-passwd --scram writes a line that --passwd serves to SCRAM logins', async () => {
    const made = await spawnMq(['broker', '--make-passwd', 'erin:pa55', '--scram']).exit(10_000);
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/^erin:\$scram\$4096\$\S+\n$/);
    const dir = mkdtempSync(join(tmpdir(), 'mq-scram-e2e-'));
    try {
      writeFileSync(join(dir, 'passwd'), made.stdout);
      const b = await startMqBroker(['--passwd', join(dir, 'passwd')]);
      try {
        const ok = await pubAs(b, 'SCRAM-SHA-1', 'erin', 'pa55', ['-q', '1']);
        expect(ok).toMatchObject({ code: 0, stderr: '' });
        const bad = await pubAs(b, 'SCRAM-SHA-1', 'erin', 'pa56');
        expect(bad.code).toBe(2);
      } finally {
        await b.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const alone = await spawnMq(['broker', '--scram']).exit(10_000);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/--scram goes with --make-passwd/);
  });

  it('--help of pub, sub, req and broker describe it', async () => {
    for (const cmd of ['pub', 'sub', 'req']) {
      const r = await spawnMq([cmd, '--help']).exit(10_000);
      expect(r.stdout).toMatch(/--auth-method <method>\s+v5 enhanced authentication with -u\/-P/);
    }
    const b = await spawnMq(['broker', '--help']).exit(10_000);
    expect(b.stdout).toMatch(/--scram-iterations <n>/);
    expect(b.stdout).toMatch(/Enhanced authentication \(MQTT 5\)/);
  });
});
