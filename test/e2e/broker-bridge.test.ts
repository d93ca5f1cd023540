/**
 * `mq broker --bridge` end to end (bin/mq): the flags reach the remote broker (URL credentials,
 * client id, topics with prefixes), the log says what the bridge does, a bad --bridge-topic is a
 * usage error (exit 1, one line), Ctrl-C ends the remote session with DISCONNECT.
 */
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { MqttClient } from '../../src/client/index.js';
import type { PublishPacket } from '../../src/protocol/index.js';
import { type StartedBroker, startBroker } from '../helpers/mqtt-test-client.js';
import { killAll, spawnMq, startMqBroker } from '../helpers/spawn.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
afterAll(() => killAll());

async function client(port: number): Promise<MqttClient> {
  const c = await MqttClient.connect({
    transport: 'mqtt',
    host: '127.0.0.1',
    port,
    version: 5,
    clientId: '',
    keepalive: 60,
    clean: true,
  });
  closers.push(async () => c.destroy());
  return c;
}

async function remoteBroker(options: Parameters<typeof startBroker>[0] = {}): Promise<StartedBroker> {
  const b = await startBroker(options);
  closers.push(() => b.broker.close());
  return b;
}

describe('mq broker --bridge', () => {
  test('bridges with the URL credentials and the client id given; topics remapped both ways; SIGTERM ends it', async () => {
    const remote = await remoteBroker({ users: { alice: 's3cret' } });
    const local = await startMqBroker([
      '--bridge',
      `mqtt://alice:s3cret@127.0.0.1:${remote.port}`,
      '--bridge-client-id',
      'e2e-bridge',
      '--bridge-topic',
      'sensors/# in 1 lab/ prod/',
      '--bridge-topic',
      'cmd/# out 1 "" site1/',
      '--bridge-reconnect',
      '0.1..0.5',
    ]);
    closers.push(() => local.stop());
    await local.proc.waitForLine(
      /bridge 127\.0\.0\.1:\d+: connected to mqtt:\/\/127\.0\.0\.1:\d+ \(new session\)/,
      10_000,
      'stderr',
    );
    await remote.waitForLog(/\[e2e-bridge\] connected from .* user alice/);

    const here = await client(local.port);
    const hereGot: PublishPacket[] = [];
    here.on('message', (p) => hereGot.push(p));
    await here.subscribe([{ topicFilter: 'lab/#', qos: 1 }]);
    const remoteClient = await MqttClient.connect({
      transport: 'mqtt',
      host: '127.0.0.1',
      port: remote.port,
      version: 5,
      clientId: 'watcher',
      keepalive: 60,
      clean: true,
      username: 'alice',
      password: Buffer.from('s3cret'),
    });
    closers.push(async () => remoteClient.destroy());
    const thereGot: PublishPacket[] = [];
    remoteClient.on('message', (p) => thereGot.push(p));
    await remoteClient.subscribe([{ topicFilter: 'site1/#', qos: 1 }]);
    await remoteClient.publish('prod/sensors/t1', '21.5', { qos: 1 });
    await here.publish('cmd/fan', 'on', { qos: 1 });
    await expect
      .poll(() => hereGot.map((p) => `${p.topic} ${p.payload}`), { timeout: 5000 })
      .toEqual(['lab/sensors/t1 21.5']);
    await expect
      .poll(() => thereGot.map((p) => `${p.topic} ${p.payload}`), { timeout: 5000 })
      .toEqual(['site1/cmd/fan on']);

    const r = await local.stop();
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('s3cret');
    await remote.waitForLog(/\[e2e-bridge\] disconnected/);
  });

  test('a bad --bridge-topic is a usage error: exit 1, one line naming the problem', async () => {
    const r = await spawnMq([
      'broker',
      '--port',
      '0',
      '--bridge',
      'mqtt://127.0.0.1:1',
      '--bridge-topic',
      'sensors/# in 7',
    ]).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("mq: --bridge-topic 'sensors/# in 7': QoS '7' is not 0, 1 or 2\n");
    expect(r.stdout).toBe('');
  });

  test('an unreachable remote is logged once; the local broker serves meanwhile', async () => {
    const local = await startMqBroker([
      '--bridge',
      'mqtt://127.0.0.1:1',
      '--bridge-topic',
      'a/#',
      '--bridge-reconnect',
      '0.05..0.1',
    ]);
    closers.push(() => local.stop());
    await local.proc.waitForLine(/cannot connect: .*refused.*; retrying/, 10_000, 'stderr');
    const c = await client(local.port);
    await c.subscribe([{ topicFilter: 'x', qos: 1 }]);
    const got: string[] = [];
    c.on('message', (p) => got.push(p.payload.toString()));
    await c.publish('x', 'served', { qos: 1 });
    await expect.poll(() => got).toEqual(['served']);
    const r = await local.stop();
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n').filter((l) => /cannot connect/.test(l))).toHaveLength(1);
  });
});
