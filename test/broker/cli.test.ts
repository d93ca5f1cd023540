/** `mq broker` as a user runs it (bin/mq, built dist/): output, --help, signals, --trace. */
import { afterAll, describe, expect, test } from 'vitest';
import { TestClient } from '../helpers/mqtt-test-client.js';
import { killAll, spawnMq, startMqBroker } from '../helpers/spawn.js';

afterAll(async () => {
  await killAll();
});

describe('mq broker', () => {
  test('prints where it listens; SIGTERM publishes the wills of connected clients to those still connected, then sends v5 clients DISCONNECT 0x8B and exits 0', async () => {
    const broker = await startMqBroker(['--ws-port', '0', '--ws-path', '/ws']);
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.wsPort).toBeGreaterThan(0);
    expect(broker.proc.stdout).toMatch(/listening on ws:\/\/127\.0\.0\.1:\d+\/ws\n/);
    const c = await TestClient.connect(broker.port, { version: 5, clientId: 'cli-client' });
    await broker.proc.waitForLine(/\[cli-client\] connected from 127\.0\.0\.1 over tcp/, 5000, 'stderr');
    c.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'bye/#', qos: 1 }] });
    await c.nextPacket('SUBACK');
    const will = { payload: Buffer.from('gone'), qos: 1 as const, retain: false };
    const w4 = await TestClient.connect(broker.port, { version: 4, will: { ...will, topic: 'bye/v4' } });
    const w5 = await TestClient.connect(broker.port, {
      version: 5,
      properties: { sessionExpiryInterval: 60 },
      will: { ...will, topic: 'bye/delayed', properties: { willDelayInterval: 60 } },
    });
    const result = await broker.stop();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/SIGTERM: closing every connection\n.*stopping: 2 will\(s\) published\n/);
    await c.closed();
    const got = c.pending();
    expect(got.flatMap((p) => (p.type === 'PUBLISH' ? [p.topic] : [])).sort()).toEqual([
      'bye/delayed',
      'bye/v4',
    ]);
    expect(got.at(-1)).toMatchObject({ type: 'DISCONNECT', reasonCode: 0x8b });
    for (const x of [c, w4, w5]) x.destroy();
  });

  test('no deprecation warning on stderr, also with pending deprecations asked for (it then serves on node:net sockets)', async () => {
    for (const env of [{}, { NODE_OPTIONS: '--pending-deprecation' }]) {
      const proc = spawnMq(['broker', '--port', '0'], { env });
      const line = await proc.waitForLine(/listening on mqtt:\/\/[^\s:]+:(\d+)/, 10_000);
      const port = Number(/:(\d+)$/.exec(line.trim())?.[1]);
      const c = await TestClient.connect(port, { version: 4, clientId: 'dep' });
      c.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'dep', qos: 0 }] });
      await c.nextPacket('SUBACK');
      c.send({ type: 'PUBLISH', dup: false, qos: 0, retain: false, topic: 'dep', payload: Buffer.from('x') });
      expect((await c.nextPacket('PUBLISH')).topic).toBe('dep');
      c.destroy();
      const result = await proc.kill('SIGTERM', 5000);
      expect(result.code).toBe(0);
      expect(result.stderr).not.toMatch(/DeprecationWarning|DEP0111/);
    }
  });

  test('--trace prints each packet per client on stderr; -q silences the log', async () => {
    const broker = await startMqBroker(['--trace', '-q']);
    const c = await TestClient.connect(broker.port, { version: 4, clientId: 'traced' });
    c.send({ type: 'PINGREQ' });
    await c.nextPacket('PINGRESP');
    await broker.proc.waitForLine(/\[traced\] <- PINGRESP/, 5000, 'stderr');
    c.destroy();
    const result = await broker.stop();
    expect(result.stderr).toMatch(/\[traced\] -> CONNECT v3\.1\.1 clientId="traced"/);
    expect(result.stderr).not.toMatch(/connected from/);
  });

  test('--help has examples; --make-passwd prints a password file line', async () => {
    const help = await spawnMq(['broker', '--help']).exit(10_000);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
    expect(help.stdout).toMatch(/--persist/);
    expect(help.stdout).toMatch(/--ws-path <path>/);
    expect(help.stdout).toMatch(
      /the wills of connected clients, and those\s+waiting out a Will Delay Interval, are published first/,
    );
    expect(help.stdout).toMatch(/--persist keeps wills across restarts and\s+kill -9/);
    const pw = await spawnMq(['broker', '--make-passwd', 'alice:secret']).exit(10_000);
    expect(pw.code).toBe(0);
    expect(pw.stdout).toMatch(/^alice:\$scrypt\$/);
  });

  test('usage errors exit 1 with one line', async () => {
    const r = await spawnMq(['broker', '--port', 'abc']).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const tls = await spawnMq(['broker', '--tls-port', '0']).exit(10_000);
    expect(tls.code).toBe(1);
    expect(tls.stderr).toMatch(/--tls-port needs --cert and --key/);
    const zero = await spawnMq(['broker', '--port', '0', '--passwd', '/dev/zero']).exit(10_000);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toMatch(
      /^mq: password file: \/dev\/zero is larger than \d+ bytes \(mq's limit for a password or ACL file\)\n$/,
    );
    const path = await spawnMq(['broker', '--ws-port', '0', '--ws-path', 'mqtt']).exit(10_000);
    expect(path.code).toBe(1);
    expect(path.stderr).toMatch(/--ws-path: 'mqtt' is not an HTTP path/);
    for (const [prefix, message] of [
      ['req/+/%c/', /^mq: --response-information: 'req\/\+\/%c\/': .*wildcard/],
      ['$resp/%c/', /--response-information: '\$resp\/%c\/' starts with '\$'/],
      ['', /--response-information: the prefix is empty/],
    ] as const) {
      const r = await spawnMq(['broker', '--response-information', prefix]).exit(10_000);
      expect(r.code, prefix).toBe(1);
      expect(r.stderr.trim().split('\n'), prefix).toHaveLength(1);
      expect(r.stderr, prefix).toMatch(message);
    }
  });

  test('--connect-timeout S: a connection that sends no CONNECT is closed after S seconds', async () => {
    const broker = await startMqBroker(['--connect-timeout', '0.5']);
    const silent = await TestClient.connect(broker.port, { connect: false });
    const opened = Date.now();
    await silent.closed(5000);
    const after = Date.now() - opened;
    // The periodic check runs every 0.25 s: closed between 0.5 and 0.75 s (plus scheduling).
    expect(after).toBeGreaterThanOrEqual(450);
    expect(after).toBeLessThan(3000);
    await broker.proc.waitForLine(/no CONNECT within 0\.5 s: closing/, 5000, 'stderr');
    // A client that does send one in time is served.
    const c = await TestClient.connect(broker.port, { version: 5 });
    expect(c.connack?.reasonCode).toBe(0);
    c.destroy();
    await broker.stop();
    for (const [value, message] of [
      ['0', /--connect-timeout: 0 seconds would refuse every client/],
      ['soon', /--connect-timeout: 'soon' is not a number of seconds/],
      ['9999999', /--connect-timeout: '9999999' seconds is more than 2147483/],
    ] as const) {
      const r = await spawnMq(['broker', '--connect-timeout', value]).exit(10_000);
      expect(r.code, value).toBe(1);
      expect(r.stderr, value).toMatch(message);
    }
  });

  test('--host other than loopback: a warning on stderr', async () => {
    const broker = await startMqBroker(['--host', '0.0.0.0', '-q']);
    await broker.proc.waitForLine(
      /WARNING: binding 0\.0\.0\.0: reachable from other machines, and anyone may connect/,
      5000,
      'stderr',
    );
    const result = await broker.stop();
    expect(result.code).toBe(0);
  });

  test('a port in use: exit 6 and the reason', async () => {
    const first = await startMqBroker([]);
    const second = await spawnMq(['broker', '--port', String(first.port)]).exit(10_000);
    expect(second.code).toBe(6);
    expect(second.stderr).toMatch(/EADDRINUSE/);
    await first.stop();
  });
});
