/**
 * --bridge between two mq brokers (in-process, real sockets): topics mirrored both ways with
 * prefixes at QoS 0/1/2, retained flags and properties kept, no loops (MQTT 5 and 3.1.1 remote),
 * a link cut and restored without losing a QoS 1 message either way, a remote that refuses the
 * bridge, TLS, the bridge's local session (trusted, not taken over, kept by --persist).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { Broker } from '../../src/broker/index.js';
import type { PublishPacket, QoS } from '../../src/protocol/index.js';
import {
  bridgedWith,
  bridgeTo,
  expectMirroredQoS,
  expectNoLoops,
  payloadsOn,
  publishAll,
  range,
  startBridged,
  startLink,
  texts,
  tlsBridgeTo,
} from '../helpers/bridge.js';
import { testPki } from '../helpers/certs.js';
import { clientHarness } from '../helpers/client-harness.js';
import { startFakeBroker } from '../helpers/fake-broker.js';
import { type StartedBroker, startBroker, TestClient } from '../helpers/mqtt-test-client.js';

const { cleanups, opts, connect, subscriber } = clientHarness({ version: 5, idPrefix: 'bridge-test' });

/** A broker closed after the test. */
async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<StartedBroker> {
  const b = await startBroker(options);
  cleanups.push(() => b.broker.close());
  return b;
}

const bridged = bridgedWith(cleanups);

describe('mirroring', () => {
  test('both directions with prefixes at QoS 0, 1 and 2; retained flag and properties travel', async () => {
    const remote = await broker();
    const local = await bridged(
      bridgeTo(remote.port, ['sensors/# in 2 lab/ prod/site1/', 'cmd/# out 2 "" site1/']),
    );
    await local.waitForLog(/connected to mqtt:\/\/127\.0\.0\.1:\d+ \(new session\)/);
    const here = await subscriber(opts(local.port), 'lab/#', 2);
    const there = await subscriber(opts(remote.port), 'site1/#', 2);
    const rp = await connect(opts(remote.port));
    const lp = await connect(opts(local.port));
    await expectMirroredQoS({
      publishIn: (qos) => rp.publish('prod/site1/sensors/t', `in-q${qos}`, { qos }),
      lp,
      out: 'site1/',
      here: here.got,
      there: there.got,
    });

    // Retained on the remote: stored retained here too; v5 properties come along.
    await rp.publish('prod/site1/sensors/state', 'on', {
      qos: 1,
      retain: true,
      properties: { userProperties: [['unit', 'C']], contentType: 'text/plain' },
    });
    const late = await connect(opts(local.port));
    const kept: PublishPacket[] = [];
    late.on('message', (p) => kept.push(p));
    await late.subscribe([{ topicFilter: 'lab/sensors/state', qos: 1 }]);
    await expect.poll(() => kept.length, { timeout: 5000 }).toBe(1);
    expect(kept[0]).toMatchObject({ retain: true, payload: Buffer.from('on') });
    expect(kept[0]?.properties).toMatchObject({ userProperties: [['unit', 'C']], contentType: 'text/plain' });
  });

  test('overlapping topics: one copy each way, at the highest QoS, mapped by the first topic that matches', async () => {
    const remote = await broker();
    const local = await bridged(
      bridgeTo(remote.port, ['ov/# both 0', 'ov/alerts/# in 2', 'ov/cmd/# out 2 "" site/']),
    );
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'ov/#', 2);
    const there = await subscriber(opts(remote.port), '#', 2);
    const lp = await connect(opts(local.port));
    const rp = await connect(opts(remote.port));
    // A second copy would be ahead of the sentinel that follows.
    await rp.publish('ov/alerts/a', 'alert', { qos: 2 });
    await rp.publish('ov/sentinel', 'in', { qos: 0 });
    await expect.poll(() => payloadsOn(here.got, 'ov/sentinel'), { timeout: 5000 }).toEqual(['in']);
    expect(here.got.filter((p) => p.topic === 'ov/alerts/a').map((p) => p.qos)).toEqual([2]);
    await lp.publish('ov/cmd/go', 'command', { qos: 2 });
    await lp.publish('ov/sentinel', 'out', { qos: 0 });
    await expect.poll(() => payloadsOn(there.got, 'ov/sentinel'), { timeout: 5000 }).toEqual(['in', 'out']);
    // 'ov/# both 0' comes first: it maps ov/cmd/go (no prefixes); the QoS is ov/cmd/#'s, 2.
    expect(there.got.filter((p) => p.topic.endsWith('cmd/go')).map((p) => `${p.topic} ${p.qos}`)).toEqual([
      'ov/cmd/go 2',
    ]);
  });

  test('retain flag as published on live messages both ways (Retain As Published)', async () => {
    const remote = await broker();
    const local = await bridged(bridgeTo(remote.port, ['r/# both 1']));
    await local.waitForLog(/connected to/);
    const hereClient = await connect(opts(local.port));
    const here: PublishPacket[] = [];
    hereClient.on('message', (p) => here.push(p));
    await hereClient.subscribe([{ topicFilter: 'r/#', qos: 1, retainAsPublished: true }]);
    const thereClient = await connect(opts(remote.port));
    const there: PublishPacket[] = [];
    thereClient.on('message', (p) => there.push(p));
    await thereClient.subscribe([{ topicFilter: 'r/#', qos: 1, retainAsPublished: true }]);
    await (await connect(opts(remote.port))).publish('r/from-remote', 'x', { qos: 1, retain: true });
    await (await connect(opts(local.port))).publish('r/from-local', 'y', { qos: 1, retain: true });
    await expect
      .poll(() => here.map((p) => `${p.topic}:${p.retain}`).sort(), { timeout: 5000 })
      .toEqual(['r/from-local:true', 'r/from-remote:true']);
    await expect
      .poll(() => there.map((p) => `${p.topic}:${p.retain}`).sort(), { timeout: 5000 })
      .toEqual(['r/from-local:true', 'r/from-remote:true']);
  });

  test.each([5, 4] as const)(
    'no loops with `both` on the same topic on both sides (remote MQTT %s)',
    async (version) => {
      const remote = await broker();
      const local = await bridged(bridgeTo(remote.port, ['loop/# both 1'], { version }));
      await local.waitForLog(/connected to/);
      const here = await subscriber(opts(local.port), 'loop/#', 1);
      const there = await subscriber(opts(remote.port), 'loop/#', 1);
      await expectNoLoops('loop', {
        local: await connect(opts(local.port)),
        remote: await connect(opts(remote.port)),
        here: here.got,
        there: there.got,
      });
    },
  );
});

describe('a link cut and restored', () => {
  test('QoS 1 published on either side while the link is down arrives when it is back; $SYS state 0 then 1', async () => {
    const remote = await broker();
    const link = await startLink(remote.port);
    cleanups.push(() => link.stop());
    const b = bridgeTo(link.port, ['q/# both 1']);
    const local = await bridged(b);
    await local.waitForLog(/connected to/);
    const state = await subscriber(opts(local.port), `$SYS/broker/connection/${b.remote.clientId}/state`, 1);
    const here = await subscriber(opts(local.port), 'q/from-remote', 1);
    const there = await subscriber(opts(remote.port), 'q/from-local', 1);
    const lp = await connect(opts(local.port));
    const rp = await connect(opts(remote.port));
    await publishAll(lp, 'q/from-local', range(0, 10, 'l'));
    await publishAll(rp, 'q/from-remote', range(0, 10, 'r'));
    await expect.poll(() => payloadsOn(there.got, 'q/from-local').length, { timeout: 5000 }).toBe(10);
    await expect.poll(() => payloadsOn(here.got, 'q/from-remote').length, { timeout: 5000 }).toBe(10);
    await expect.poll(() => state.got.map((p) => p.payload.toString()).at(-1)).toBe('1');

    link.down();
    await local.waitForLog(/connection to .* lost/);
    await expect.poll(() => state.got.map((p) => p.payload.toString()).at(-1)).toBe('0');
    // Every one acknowledged by the broker it was published to.
    await publishAll(lp, 'q/from-local', range(10, 60, 'l'));
    await publishAll(rp, 'q/from-remote', range(10, 60, 'r'));
    link.up();
    await expect
      .poll(() => new Set(payloadsOn(there.got, 'q/from-local')).size, { timeout: 10_000 })
      .toBe(60);
    await expect
      .poll(() => new Set(payloadsOn(here.got, 'q/from-remote')).size, { timeout: 10_000 })
      .toBe(60);
    expect(new Set(payloadsOn(there.got, 'q/from-local'))).toEqual(new Set(range(0, 60, 'l')));
    expect(new Set(payloadsOn(here.got, 'q/from-remote'))).toEqual(new Set(range(0, 60, 'r')));
    await expect.poll(() => state.got.map((p) => p.payload.toString()).at(-1)).toBe('1');
    expect(local.logs.filter((l) => /connected to mqtt/.test(l)).length).toBeGreaterThanOrEqual(2);
  });

  test('while it is down, what waits is bounded by --max-inflight and --max-queued; QoS 0 is dropped; all counted', async () => {
    const remote = await broker();
    const link = await startLink(remote.port);
    cleanups.push(() => link.stop());
    const b = bridgeTo(link.port, ['bound/# out 1']);
    const local = await bridged(b, { maxInflight: 3, maxQueued: 5 });
    await local.waitForLog(/connected to/);
    const there = await subscriber(opts(remote.port), 'bound/#', 1);
    link.down();
    await local.waitForLog(/lost/);
    const lp = await connect(opts(local.port));
    // Acknowledged by the local broker, all of them; 3 in flight to the bridge + 5 queued are kept.
    await publishAll(lp, 'bound/q1', range(0, 20, 'm'));
    await publishAll(lp, 'bound/q0', range(0, 4, 'z'), 0);
    await expect.poll(() => local.broker.stats.messagesDropped).toBe(12 + 4);
    await local.waitForLog(/\[local\..*\] dropped \d+ message\(s\): queue full \(--max-queued 5\)/);
    link.up();
    await expect.poll(() => payloadsOn(there.got, 'bound/q1'), { timeout: 10_000 }).toEqual(range(0, 8, 'm'));
    expect(payloadsOn(there.got, 'bound/q0')).toEqual([]);
  });

  test('cut while QoS 1 and 2 messages are in flight both ways: none lost', async () => {
    const remote = await broker();
    const link = await startLink(remote.port);
    cleanups.push(() => link.stop());
    const local = await bridged(bridgeTo(link.port, ['f/# both 2']));
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'f/from-remote', 2);
    const there = await subscriber(opts(remote.port), 'f/from-local', 2);
    const lp = await connect(opts(local.port));
    const rp = await connect(opts(remote.port));
    const N = 300;
    // Down at the 150th PUBLISH through the link: of 600 (300 each way), some are on the wire then.
    link.downAfter(150);
    const sent = [
      ...range(0, N, 'l').map((p, i) => lp.publish('f/from-local', p, { qos: (1 + (i % 2)) as QoS })),
      ...range(0, N, 'r').map((p, i) => rp.publish('f/from-remote', p, { qos: (1 + (i % 2)) as QoS })),
    ];
    await Promise.all(sent);
    await expect.poll(() => link.isDown, { timeout: 5000 }).toBe(true);
    expect(there.got.length + here.got.length).toBeLessThan(2 * N);
    link.up();
    await expect.poll(() => new Set(payloadsOn(there.got, 'f/from-local')).size, { timeout: 15_000 }).toBe(N);
    await expect.poll(() => new Set(payloadsOn(here.got, 'f/from-remote')).size, { timeout: 15_000 }).toBe(N);
    expect(link.connections).toBeGreaterThanOrEqual(2);
  });
});

describe('the remote broker', () => {
  test('refusing the bridge (bad password): one log line, retries, and the local broker serves on', async () => {
    const remote = await broker({ users: { bridge: 'right' } });
    const local = await bridged(
      bridgeTo(remote.port, ['a/# in 1'], { username: 'bridge', password: Buffer.from('wrong') }),
    );
    await expect
      .poll(
        () => remote.logs.filter((l) => /connection refused: .*bad user name or password/.test(l)).length,
        {
          timeout: 5000,
        },
      )
      .toBeGreaterThanOrEqual(3);
    const refusals = local.logs.filter((l) => /bad user name or password/i.test(l));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(
      /^bridge 127\.0\.0\.1:\d+: cannot connect: .*0x86 Bad User Name or Password: check --bridge-username\/--bridge-password .*; retrying/,
    );
    expect(refusals.join('\n')).not.toContain('wrong');
    const s = await subscriber(opts(local.port), 'still/here', 1);
    await (await connect(opts(local.port))).publish('still/here', 'yes', { qos: 1 });
    await expect.poll(() => texts(s.got)).toEqual(['still/here=yes']);
  });

  test('starting to refuse the bridge after it was connected: local messages meanwhile go with the next session', async () => {
    const first = await startBroker();
    const port = first.port;
    const link = await startLink(port);
    cleanups.push(() => link.stop());
    const local = await bridged(bridgeTo(link.port, ['w/# out 1']));
    await local.waitForLog(/connected to/);
    await first.broker.close();
    await local.waitForLog(/lost/);
    const lp = await connect(opts(local.port));
    // Held by the remote client while it reconnects...
    await publishAll(lp, 'w/t', range(0, 20, 'w'));
    // ...which then ends: the broker refuses it.
    const refusing = await startBroker({ port, users: { someone: 'else' } });
    await local.waitForLog(/bad user name or password/i);
    // Between clients.
    await publishAll(lp, 'w/t', range(20, 40, 'w'));
    link.down();
    await refusing.broker.close();
    const last = await broker({ port });
    const there = await subscriber(opts(last.port), 'w/#', 1);
    link.up();
    await expect.poll(() => new Set(payloadsOn(there.got, 'w/t')).size, { timeout: 10_000 }).toBe(40);
    expect(local.logs.filter((l) => /bad user name or password/i.test(l))).toHaveLength(1);
  });

  test('taking the session over (v5 0x8E): said, and the bridge comes back only after its longest backoff', async () => {
    const remote = await broker();
    const b = bridgeTo(remote.port, ['a/# in 1']);
    const local = await bridged(b);
    await local.waitForLog(/connected to/);
    const thief = await TestClient.connect(remote.port, { version: 5, clientId: b.remote.clientId });
    cleanups.push(() => thief.destroy());
    const said = await local.waitForLog(/the connection ended: .*0x8e/i);
    expect(said).toMatch(/same client id \(--bridge-client-id\); connecting again in 0\.3 s$/);
    const at = Date.now();
    await thief.closed(5000);
    expect(Date.now() - at).toBeGreaterThanOrEqual(250);
    await expect.poll(() => local.logs.filter((l) => /connected to mqtt/.test(l)).length).toBe(2);
  });

  test('over WebSocket; --trace shows the remote link too, without the password', async () => {
    const logs: string[] = [];
    const wsRemote = new Broker({
      port: null,
      wsPort: 0,
      sysInterval: 0,
      users: { u: 'hidden-pw' },
      log: (l) => logs.push(l),
    });
    const addresses = await wsRemote.listen();
    cleanups.push(() => wsRemote.close());
    const port = addresses.ws?.port ?? 0;
    const local = await bridged(
      bridgeTo(port, ['ws/# both 1'], {
        transport: 'ws',
        path: '/mqtt',
        username: 'u',
        password: Buffer.from('hidden-pw'),
      }),
      { trace: 'full' },
    );
    await local.waitForLog(/connected to ws:\/\/127\.0\.0\.1:\d+\/mqtt/);
    const here = await subscriber(opts(local.port), 'ws/#', 1);
    const remoteClient = await connect({
      ...opts(port),
      transport: 'ws',
      path: '/mqtt',
      username: 'u',
      password: Buffer.from('hidden-pw'),
    });
    await remoteClient.publish('ws/in', 'over websocket', { qos: 1 });
    await expect.poll(() => texts(here.got), { timeout: 5000 }).toEqual(['ws/in=over websocket']);
    expect(local.logs.some((l) => /^\[bridge ws:\/\/127\.0\.0\.1:\d+\/mqtt\] >> CONNECT /.test(l))).toBe(
      true,
    );
    expect(local.logs.some((l) => /^\[bridge ws:\/\/127\.0\.0\.1:\d+\/mqtt\] << PUBLISH/.test(l))).toBe(true);
    const all = local.logs.join('\n');
    expect(all).not.toContain('hidden-pw');
    expect(all).not.toContain(Buffer.from('hidden-pw').toString('hex'));
  });

  test('over TLS (mqtts), the remote certificate checked against --bridge-cafile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mq-bridge-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pki = testPki(dir);
    pki.ca('ca', 'mq test CA');
    pki.server('server', 'DNS:localhost,IP:127.0.0.1');
    const logs: string[] = [];
    const tlsRemote = new Broker({
      port: null,
      tlsPort: 0,
      cert: readFileSync(join(dir, 'server.pem')),
      key: readFileSync(join(dir, 'server.key')),
      sysInterval: 0,
      log: (l) => logs.push(l),
    });
    const addresses = await tlsRemote.listen();
    cleanups.push(() => tlsRemote.close());
    const port = addresses.tls?.port ?? 0;
    const local = await bridged(tlsBridgeTo(port, ['t/# both 1'], join(dir, 'ca.pem')));
    await local.waitForLog(/connected to mqtts:\/\/localhost:\d+/);
    const remoteClient = await connect({
      ...opts(port),
      transport: 'mqtts',
      host: 'localhost',
      tls: { ca: readFileSync(join(dir, 'ca.pem')) },
    });
    const there: PublishPacket[] = [];
    remoteClient.on('message', (p) => there.push(p));
    await remoteClient.subscribe([{ topicFilter: 't/from-local', qos: 1 }]);
    const here = await subscriber(opts(local.port), 't/from-remote', 1);
    await (await connect(opts(local.port))).publish('t/from-local', 'secure-out', { qos: 1 });
    await remoteClient.publish('t/from-remote', 'secure-in', { qos: 1 });
    await expect.poll(() => texts(there), { timeout: 5000 }).toEqual(['t/from-local=secure-out']);
    await expect.poll(() => texts(here.got), { timeout: 5000 }).toEqual(['t/from-remote=secure-in']);
  });
});

describe("the bridge's local session", () => {
  test('is trusted (--auth, --acl do not apply) and no client can take it over', async () => {
    const remote = await broker();
    const dir = mkdtempSync(join(tmpdir(), 'mq-bridge-acl-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const acl = join(dir, 'acl');
    // alice may read x/#; nobody may publish anything.
    (await import('node:fs')).writeFileSync(acl, 'user alice\ntopic read x/#\n');
    const b = bridgeTo(remote.port, ['x/# both 1']);
    const local = await bridged(b, { users: { alice: 'pw' }, aclFile: acl });
    await local.waitForLog(/connected to/);
    const alice = await subscriber(
      opts(local.port, { username: 'alice', password: Buffer.from('pw') }),
      'x/#',
      1,
    );
    const there = await subscriber(opts(remote.port), 'x/#', 1);
    await (await connect(opts(remote.port))).publish('x/in', 'came in', { qos: 1 });
    await expect.poll(() => texts(alice.got), { timeout: 5000 }).toEqual(['x/in=came in']);
    // alice may not publish: nothing of hers reaches the remote broker.
    await (await connect(opts(local.port, { username: 'alice', password: Buffer.from('pw') })))
      .publish('x/out', 'denied', { qos: 1 })
      .catch(() => {});
    expect(texts(there.got)).toEqual(['x/in=came in']);

    const thief = await TestClient.connect(local.port, {
      version: 5,
      clientId: `local.${b.remote.clientId}`,
      username: 'alice',
      password: 'pw',
      expectSuccess: false,
    });
    cleanups.push(() => thief.destroy());
    expect(thief.connack?.reasonCode).toBe(0x85);
    await local.waitForLog(/client id 'local\..*' is a bridge's/);
  });

  test.each([
    [{ maxQoS: 1 as const, noRetain: true }, 1],
    [{ receiveMaximum: 2 }, 2],
  ])("keeps within the local broker's limits (%j)", async (limits, qos) => {
    const remote = await broker();
    const local = await bridged(bridgeTo(remote.port, ['lim/# in 2']), limits);
    await local.waitForLog(/connected to/);
    const here = await subscriber(opts(local.port), 'lim/#', 2);
    const rp = await connect(opts(remote.port));
    await Promise.all(range(0, 10, 'x').map((p) => rp.publish('lim/t', p, { qos: 2, retain: true })));
    await expect.poll(() => payloadsOn(here.got, 'lim/t'), { timeout: 5000 }).toEqual(range(0, 10, 'x'));
    expect(here.got.map((p) => p.qos)).toContain(qos);
    expect(here.got.every((p) => p.qos <= qos)).toBe(true);
    expect(local.logs.join('\n')).not.toMatch(
      /local link ended|Receive Maximum|QoS.*above|retain is not available/i,
    );
  });

  test('a remote message claiming UTF-8 that is not is dropped (not the link with it)', async () => {
    const fake = await startFakeBroker();
    cleanups.push(() => fake.stop());
    const local = await bridged(bridgeTo(fake.port, ['u/# in 0']));
    const here = await subscriber(opts(local.port), 'u/#', 0);
    const { packet, session } = await fake.waitFor('SUBSCRIBE');
    if (packet.type !== 'SUBSCRIBE') throw new Error('not a SUBSCRIBE');
    session.send({ type: 'SUBACK', packetId: packet.packetId, reasonCodes: [0] });
    const bad = { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic: 'u/t' } as const;
    session.send({ ...bad, payload: Buffer.from([0xff, 0xfe]), properties: { payloadFormatIndicator: 1 } });
    session.send({ ...bad, payload: Buffer.from('fine'), properties: { payloadFormatIndicator: 1 } });
    await expect.poll(() => texts(here.got), { timeout: 5000 }).toEqual(['u/t=fine']);
    await local.waitForLog(/says UTF-8 \(Payload Format Indicator 1\) but is not: dropped/);
    expect(local.logs.join('\n')).not.toMatch(/local link ended/);
  });

  test('ended by the broker (an internal error): started again, nothing lost', async () => {
    const remote = await broker();
    const b = bridgeTo(remote.port, ['e/# both 1']);
    const local = await bridged(b);
    await local.waitForLog(/connected to/);
    const there = await subscriber(opts(remote.port), 'e/#', 1);
    const linkConn = [...brokerCore(local.broker).connections].find((c) => c.listener === 'bridge');
    linkConn?.closeNow();
    await local.waitForLog(/the local link ended: starting it again/);
    const lp = await connect(opts(local.port));
    await publishAll(lp, 'e/t', range(0, 10, 'e'));
    await expect.poll(() => new Set(payloadsOn(there.got, 'e/t')).size, { timeout: 5000 }).toBe(10);
  });

  test('with --persist, local QoS 1 messages waiting for the remote survive a restart', async () => {
    const remote = await broker();
    const link = await startLink(remote.port);
    cleanups.push(() => link.stop());
    const dir = mkdtempSync(join(tmpdir(), 'mq-bridge-persist-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const persistFile = join(dir, 'broker.db');
    const b = bridgeTo(link.port, ['p/# out 1']);
    const there = await subscriber(opts(remote.port), 'p/#', 1);
    link.down();
    const first = await startBridged(b, { persistFile });
    const lp = await connect(opts(first.port));
    await publishAll(lp, 'p/t', range(0, 20, 'm'));
    lp.destroy();
    await first.broker.close();
    link.up();
    const second = await bridged(b, { persistFile });
    await second.waitForLog(/connected to/);
    await expect.poll(() => new Set(payloadsOn(there.got, 'p/t')).size, { timeout: 10_000 }).toBe(20);
  });
});
