/**
 * mq broker --bridge against a real Mosquitto 2.0: both directions with prefixes at QoS 0/1/2
 * (MQTT 5 and 3.1.1 with the bridge flag), no loops on `both` topics, no QoS 1 message lost
 * through a link cut by `mq proxy --disconnect-after` or killed and restarted, TLS, a Mosquitto
 * refusing the bridge's password; and Mosquitto's own bridge into mq broker (try_private).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PublishPacket } from '../../src/protocol/index.js';
import {
  bridgedWith,
  bridgeTo,
  expectMirroredQoS,
  expectNoLoops,
  payloadsOn,
  publishAll,
  range,
  texts,
  tlsBridgeTo,
} from '../helpers/bridge.js';
import { testPki } from '../helpers/certs.js';
import { clientHarness } from '../helpers/client-harness.js';
import { freePort, type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { startBroker } from '../helpers/mqtt-test-client.js';
import { quietProxyTo, startMqProxy } from '../helpers/proxy.js';
import { killAll, spawnMq } from '../helpers/spawn.js';

/** Mosquitto 2.0 drops QoS 2 beyond its default in-flight window and queues only 1000 (NOTES.md). */
const LIMITS = ['max_queued_messages 100000', 'max_inflight_messages 64'];

let dir: string;
let mosq: MosquittoHandle;
let tlsPort: number;

const { cleanups, opts, connect, subscriber } = clientHarness({ version: 5, idPrefix: 'bridge-interop' });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-bridge-interop-'));
  // Mosquitto started as root reads its files after dropping to its own user.
  chmodSync(dir, 0o755);
  const pki = testPki(dir);
  pki.ca('ca', 'mq test CA');
  pki.server('server', 'DNS:localhost,IP:127.0.0.1');
  for (const f of ['ca.pem', 'server.pem', 'server.key']) chmodSync(join(dir, f), 0o644);
  tlsPort = await freePort();
  mosq = await startMosquitto({
    extraConfig: [
      ...LIMITS,
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
    ],
  });
});

afterAll(async () => {
  await mosq?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

const bridged = bridgedWith(cleanups);

/** mosquitto_pub, one message. */
function mosquittoPub(port: number, args: string[]): void {
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
}

describe.each([
  [5, 'mqttv5'],
  [4, 'mqttv311'],
] as const)('to Mosquitto over MQTT %s', (version, mosquittoVersion) => {
  // Mosquitto's clients of this test speak the bridge's version.
  const remoteOpts = () => opts(mosq.port, { version });

  test('both directions with prefixes at QoS 0, 1, 2; mosquitto_pub and retained messages', async () => {
    const local = await bridged(
      bridgeTo(mosq.port, [`sensors/# in 2 lab/ prod/v${version}/`, `cmd/# out 2 "" site-v${version}/`], {
        version,
      }),
    );
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'lab/#', 2);
    const there = await subscriber(remoteOpts(), `site-v${version}/#`, 2);
    const lp = await connect(opts(local.port));
    await expectMirroredQoS({
      publishIn: (qos) =>
        mosquittoPub(mosq.port, [
          '-V',
          mosquittoVersion,
          '-t',
          `prod/v${version}/sensors/t`,
          '-m',
          `in-q${qos}`,
          '-q',
          String(qos),
        ]),
      lp,
      out: `site-v${version}/`,
      here: here.got,
      there: there.got,
    });

    // A retained message on Mosquitto is retained here too.
    mosquittoPub(mosq.port, ['-t', `prod/v${version}/sensors/state`, '-m', 'on', '-q', '1', '-r']);
    await expect.poll(() => payloadsOn(here.got, 'lab/sensors/state'), { timeout: 5000 }).toEqual(['on']);
    const late = await connect(opts(local.port));
    const kept: PublishPacket[] = [];
    late.on('message', (p) => kept.push(p));
    await late.subscribe([{ topicFilter: 'lab/sensors/state', qos: 1 }]);
    await expect
      .poll(() => kept.map((p) => `${p.retain} ${p.payload}`), { timeout: 5000 })
      .toEqual(['true on']);
    mosquittoPub(mosq.port, ['-t', `prod/v${version}/sensors/state`, '-n', '-r']);
  });

  test('no loops with `both` on the same topic on both sides', async () => {
    const t = `loop-v${version}`;
    const local = await bridged(bridgeTo(mosq.port, [`${t}/# both 1`], { version }));
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), `${t}/#`, 1);
    const there = await subscriber(remoteOpts(), `${t}/#`, 1);
    await expectNoLoops(t, {
      local: await connect(opts(local.port)),
      remote: await connect(remoteOpts()),
      here: here.got,
      there: there.got,
    });
  });
});

test('overlapping topics: Mosquitto sends MQTT 5 bridges a copy per subscription; one is forwarded', async () => {
  const local = await bridged(bridgeTo(mosq.port, ['ovm/# both 0', 'ovm/alerts/# in 2']));
  await local.waitForLog(/connected to/);
  const here = await subscriber(opts(local.port), 'ovm/#', 2);
  mosquittoPub(mosq.port, ['-V', 'mqttv5', '-t', 'ovm/alerts/a', '-m', 'alert', '-q', '2']);
  // A second copy would be ahead of the sentinel that follows.
  mosquittoPub(mosq.port, ['-V', 'mqttv5', '-t', 'ovm/sentinel', '-m', 's', '-q', '0']);
  await expect.poll(() => payloadsOn(here.got, 'ovm/sentinel'), { timeout: 5000 }).toEqual(['s']);
  expect(here.got.filter((p) => p.topic === 'ovm/alerts/a').map((p) => p.qos)).toEqual([2]);
});

describe('a link cut and restored (mq proxy)', () => {
  test('--disconnect-after cuts the link again and again while QoS 1 flows both ways: none lost', async () => {
    const proxy = await quietProxyTo(mosq.port, ['--disconnect-after', '1']);
    cleanups.push(async () => void (await proxy.stop()));
    const local = await bridged(bridgeTo(proxy.port, ['cut/# both 1']));
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'cut/from-remote', 1);
    const there = await subscriber(opts(mosq.port), 'cut/from-local', 1);
    const lp = await connect(opts(local.port));
    const rp = await connect(opts(mosq.port));
    const N = 400;
    // About 3 s of traffic: at least two cuts.
    for (let i = 0; i < N; i += 20) {
      await Promise.all([
        publishAll(lp, 'cut/from-local', range(i, i + 20, 'l')),
        publishAll(rp, 'cut/from-remote', range(i, i + 20, 'r')),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await expect
      .poll(() => new Set(payloadsOn(there.got, 'cut/from-local')).size, { timeout: 15_000 })
      .toBe(N);
    await expect
      .poll(() => new Set(payloadsOn(here.got, 'cut/from-remote')).size, { timeout: 15_000 })
      .toBe(N);
    expect(local.logs.filter((l) => /connection to .* lost/.test(l)).length).toBeGreaterThanOrEqual(2);
  });

  test('the proxy killed and started again: QoS 1 published on either side meanwhile arrives', async () => {
    const port = await freePort();
    const args = ['--to', `mqtt://127.0.0.1:${mosq.port}`, '--trace', 'off'];
    let proxy = await startMqProxy(['--listen', String(port), ...args]);
    cleanups.push(async () => void (await proxy.stop()));
    const local = await bridged(bridgeTo(port, ['kill/# both 1']));
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'kill/from-remote', 1);
    const there = await subscriber(opts(mosq.port), 'kill/from-local', 1);
    const lp = await connect(opts(local.port));
    const rp = await connect(opts(mosq.port));
    await proxy.proc.kill('SIGKILL');
    await local.waitForLog(/connection to .* lost/);
    await publishAll(lp, 'kill/from-local', range(0, 50, 'l'));
    await publishAll(rp, 'kill/from-remote', range(0, 50, 'r'));
    // --listen with the port just freed (startMqProxy adds --listen 0 first; the last one counts).
    proxy = await startMqProxy(['--listen', String(port), ...args]);
    try {
      await expect
        .poll(() => new Set(payloadsOn(there.got, 'kill/from-local')).size, { timeout: 15_000 })
        .toBe(50);
      await expect
        .poll(() => new Set(payloadsOn(here.got, 'kill/from-remote')).size, { timeout: 15_000 })
        .toBe(50);
    } catch (err) {
      // Seen once under load and not since: what the bridge said, if it happens again.
      console.error(
        `bridge log:\n${local.logs.join('\n')}\nmosquitto log:\n${mosq.log().split('\n').slice(-40).join('\n')}`,
      );
      throw err;
    }
  });
});

describe('Mosquitto as the remote broker', () => {
  test('over TLS (mqtts, --bridge-cafile)', async () => {
    const local = await bridged(tlsBridgeTo(tlsPort, ['tls/# both 1'], join(dir, 'ca.pem')));
    await local.waitForLog(/connected to mqtts:\/\/localhost:\d+/);
    const here = await subscriber(opts(local.port), 'tls/from-remote', 1);
    const there = await subscriber(opts(mosq.port), 'tls/from-local', 1);
    await (await connect(opts(local.port))).publish('tls/from-local', 'out', { qos: 1 });
    mosquittoPub(mosq.port, ['-t', 'tls/from-remote', '-m', 'in', '-q', '1']);
    await expect.poll(() => texts(there.got), { timeout: 5000 }).toEqual(['tls/from-local=out']);
    await expect.poll(() => texts(here.got), { timeout: 5000 }).toEqual(['tls/from-remote=in']);
  });

  test('refusing the password: one log line, retries, the local broker serves on', async () => {
    const passwd = join(dir, 'passwd');
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'bridge', 'right']);
    chmodSync(passwd, 0o644);
    const strict = await startMosquitto({
      extraConfig: ['allow_anonymous false', `password_file ${passwd}`],
    });
    cleanups.push(() => strict.stop());
    const local = await bridged(
      bridgeTo(strict.port, ['a/# in 1'], { username: 'bridge', password: Buffer.from('wrong') }),
    );
    await expect
      .poll(() => (strict.log().match(/not authorised/gi) ?? []).length, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(3);
    const refusals = local.logs.filter((l) => /cannot connect/.test(l));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/not authorized|bad user name or password/i);
    const s = await subscriber(opts(local.port), 'still/here', 1);
    await (await connect(opts(local.port))).publish('still/here', 'yes', { qos: 1 });
    await expect.poll(() => texts(s.got)).toEqual(['still/here=yes']);
  });
});

describe("Mosquitto's own bridge into mq broker", () => {
  test('try_private (3.1.1 bridge flag): both directions, and no copy comes back on a `both` topic', async () => {
    const mq = await startBroker();
    cleanups.push(() => mq.broker.close());
    const edge = await startMosquitto({
      extraConfig: [
        'connection to-mq',
        `address 127.0.0.1:${mq.port}`,
        'bridge_protocol_version mqttv311',
        'try_private true',
        'notifications false',
        'restart_timeout 1',
        'topic mb/# both 1',
      ],
    });
    cleanups.push(() => edge.stop());
    await mq.waitForLog(/connected from .* \(MQTT 3\.1\.1/, 10_000);
    const onMq = await subscriber(opts(mq.port), 'mb/#', 1);
    const onEdge = await subscriber(opts(edge.port, { version: 4 }), 'mb/#', 1);
    const mqPub = await connect(opts(mq.port));
    await mqPub.publish('mb/a', 'from-mq', { qos: 1 });
    await expect.poll(() => texts(onEdge.got), { timeout: 5000 }).toEqual(['mb/a=from-mq']);
    mosquittoPub(edge.port, ['-t', 'mb/b', '-m', 'from-mosquitto', '-q', '1']);
    await expect.poll(() => payloadsOn(onMq.got, 'mb/b'), { timeout: 5000 }).toEqual(['from-mosquitto']);
    // Sentinels along both paths: a copy coming back would be ahead of them.
    await mqPub.publish('mb/s', 'mq-sentinel', { qos: 1 });
    mosquittoPub(edge.port, ['-t', 'mb/s', '-m', 'edge-sentinel', '-q', '1']);
    const both = ['edge-sentinel', 'mq-sentinel'];
    await expect.poll(() => payloadsOn(onEdge.got, 'mb/s').sort(), { timeout: 5000 }).toEqual(both);
    await expect.poll(() => payloadsOn(onMq.got, 'mb/s').sort(), { timeout: 5000 }).toEqual(both);
    expect(payloadsOn(onEdge.got, 'mb/a')).toEqual(['from-mq']);
    expect(payloadsOn(onEdge.got, 'mb/b')).toEqual(['from-mosquitto']);
    expect(payloadsOn(onMq.got, 'mb/a')).toEqual(['from-mq']);
    expect(payloadsOn(onMq.got, 'mb/b')).toEqual(['from-mosquitto']);
  });
});

test('mq broker --help describes the bridge with an example', async () => {
  const r = await spawnMq(['broker', '--help']).exit(10_000);
  expect(r.stdout).toContain("--bridge-topic 'sensors/# in 1'");
  expect(r.stdout).toMatch(/Bridges: --bridge URL starts one/);
});
