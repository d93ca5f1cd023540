/**
 * No client can end the broker process (issue 12, item 1). A will on a topic of 50,000 levels,
 * matched against a subscription as deep, once overflowed the stack of the recursive trie walk, and
 * the paths that publish a will (a socket's close event, the keepalive sweep, the Will Delay and
 * Session Expiry timers) caught nothing: the process exited. The trie is now walked with an
 * explicit stack; every entry point the event loop calls is guarded as well, so whatever throws in
 * one client's handling closes that client, logged, and never the process. Each test drives one
 * path from a real socket and then checks that the broker still serves another client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import type { Connection } from '../../src/broker/connection.js';
import type { Will } from '../../src/protocol/index.js';
import { brokerHarness, type StartedBroker, type TestClient } from '../helpers/mqtt-test-client.js';
import { killAll, MQ_BIN, type MqBroker, spawnProcess, startMqBroker } from '../helpers/spawn.js';

const { broker, client, subscribe, pub } = brokerHarness();

/** 50,001 bytes, 50,001 levels: far deeper than a recursive walk survives. */
const DEEP = `d${'/'.repeat(50_000)}`;

function will(topic: string, extra: Partial<Will> = {}): Will {
  return { topic, payload: Buffer.from('gone'), qos: 0, retain: false, ...extra };
}

/** A publisher and a subscriber next to the trouble: resolves once a message went through. */
async function stillServes(port: number): Promise<void> {
  const s = await client(port, { version: 4 });
  expect(await subscribe(s, 'alive')).toBe(0);
  const p = await client(port, { version: 5 });
  p.send(pub('alive', 'yes', 1));
  expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBeLessThan(0x80);
  expect((await s.nextPacket('PUBLISH')).payload.toString()).toBe('yes');
}

/**
 * [MQTT-3.1.2-22] A client with keepalive 1 that says nothing is closed by the sweep once 1.5 s
 * have passed: on the broker's clock, moved past it rather than waited for.
 */
function keepaliveExpires(b: StartedBroker): void {
  const core = brokerCore(b.broker);
  core.sweep(); // notes the client's last bytes: its silence starts now
  core.clock = () => Date.now() + 1600;
  try {
    core.sweep();
  } finally {
    core.clock = Date.now;
  }
}

function connectionOf(b: StartedBroker, clientId: string): Connection {
  const conn = [...brokerCore(b.broker).connections].find((c) => c.clientId === clientId);
  if (conn === undefined) throw new Error(`no connection for ${clientId}`);
  return conn;
}

describe('a will on a topic of 50,000 levels, as deep as a subscription (spawned mq broker)', () => {
  let mq: MqBroker;

  beforeAll(async () => {
    mq = await startMqBroker(['--max-topic-levels', '65536', '--sys-interval', '0']);
  });
  afterAll(async () => {
    await mq?.stop();
    await killAll();
  });

  test('published when its client vanishes: the subscriber gets it and the process lives on', async () => {
    const s = await client(mq.port, { version: 5 });
    expect(await subscribe(s, DEEP)).toBe(0);
    const w = await client(mq.port, { version: 5, will: will(DEEP) });
    w.destroy();
    const m = await s.nextPacket('PUBLISH', 5000);
    expect([m.topic.length, m.payload.toString()]).toEqual([DEEP.length, 'gone']);
    await stillServes(mq.port);
    expect(mq.proc.exited).toBe(false);
  });
});

describe('every path that publishes a will survives a deep topic (in-process broker)', () => {
  async function deepSubscriber(b: StartedBroker): Promise<TestClient> {
    const s = await client(b.port, { version: 5 });
    expect(await subscribe(s, DEEP)).toBe(0);
    return s;
  }

  test('keepalive expiry (the sweep)', async () => {
    const b = await broker({ maxTopicLevels: 65_536 });
    const s = await deepSubscriber(b);
    await client(b.port, { version: 5, clientId: 'silent', keepalive: 1, will: will(DEEP) });
    keepaliveExpires(b);
    expect((await s.nextPacket('PUBLISH', 5000)).topic).toBe(DEEP);
    await b.waitForLog(/\[silent\] keepalive timeout/);
    await stillServes(b.port);
  });

  test('the Will Delay Interval timer', async () => {
    const b = await broker({ maxTopicLevels: 65_536 });
    const s = await deepSubscriber(b);
    const w = await client(b.port, {
      version: 5,
      properties: { sessionExpiryInterval: 60 },
      will: will(DEEP, { properties: { willDelayInterval: 1 } }),
    });
    w.destroy();
    expect((await s.nextPacket('PUBLISH', 5000)).topic).toBe(DEEP);
    await stillServes(b.port);
  });

  test('the Session Expiry timer (the will waits longer than the session)', async () => {
    const b = await broker({ maxTopicLevels: 65_536 });
    const s = await deepSubscriber(b);
    const w = await client(b.port, {
      version: 5,
      properties: { sessionExpiryInterval: 1 },
      will: will(DEEP, { properties: { willDelayInterval: 60 } }),
    });
    w.destroy();
    expect((await s.nextPacket('PUBLISH', 5000)).topic).toBe(DEEP);
    await stillServes(b.port);
  });

  test('a session takeover, and DISCONNECT 0x04 (with will)', async () => {
    const b = await broker({ maxTopicLevels: 65_536 });
    const s = await deepSubscriber(b);
    await client(b.port, { version: 5, clientId: 'twice', will: will(DEEP) });
    const again = await client(b.port, { version: 5, clientId: 'twice' });
    expect((await s.nextPacket('PUBLISH', 5000)).topic).toBe(DEEP);
    const leaving = await client(b.port, { version: 5, will: will(DEEP) });
    await leaving.disconnect(0x04);
    expect((await s.nextPacket('PUBLISH', 5000)).topic).toBe(DEEP);
    again.send({ type: 'PINGREQ' });
    await again.nextPacket('PINGRESP');
    await stillServes(b.port);
  });
});

/**
 * Whatever else may throw one day: a fault injected into one subscriber's connection (its writes
 * throw) reached from each entry point the event loop calls. That subscriber is closed and logged;
 * every other client, and the process, carry on.
 */
describe('an error in one client’s handling closes that client, never the process', () => {
  async function faulty(b: StartedBroker, filter: string): Promise<TestClient> {
    const bad = await client(b.port, { version: 5, clientId: 'faulty' });
    expect(await subscribe(bad, filter)).toBe(0);
    const conn = connectionOf(b, 'faulty');
    conn.sendPublish = () => {
      throw new Error('injected fault \u001b[2J');
    };
    return bad;
  }

  test('a live PUBLISH: the faulty subscriber is closed, the publisher and the others are not', async () => {
    const b = await broker();
    const good = await client(b.port, { version: 4 });
    await subscribe(good, 'f/live');
    const bad = await faulty(b, 'f/live');
    const p = await client(b.port, { version: 5 });
    p.send(pub('f/live', 'x', 1));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    expect((await good.nextPacket('PUBLISH')).payload.toString()).toBe('x');
    await bad.closed();
    // Logged, with the error's control characters escaped.
    const line = await b.waitForLog(/\[faulty\] internal error delivering a message/);
    expect(line).toContain('injected fault \\x1b[2J');
    await stillServes(b.port);
  });

  test('a will published from the socket close event and from the keepalive sweep', async () => {
    const b = await broker();
    const good = await client(b.port, { version: 4 });
    await subscribe(good, 'f/will');
    const bad = await faulty(b, 'f/will');
    const w = await client(b.port, { version: 4, will: will('f/will') });
    w.destroy();
    expect((await good.nextPacket('PUBLISH')).topic).toBe('f/will');
    await bad.closed();
    const bad2 = await faulty(b, 'f/will');
    await client(b.port, { version: 5, clientId: 'quiet', keepalive: 1, will: will('f/will') });
    keepaliveExpires(b);
    expect((await good.nextPacket('PUBLISH')).topic).toBe('f/will');
    await bad2.closed();
    await stillServes(b.port);
  });

  test('the Will Delay and Session Expiry timers', async () => {
    const b = await broker();
    const good = await client(b.port, { version: 4 });
    await subscribe(good, 'f/timer');
    const bad = await faulty(b, 'f/timer');
    const delayed = await client(b.port, {
      version: 5,
      properties: { sessionExpiryInterval: 60 },
      will: will('f/timer', { properties: { willDelayInterval: 1 } }),
    });
    delayed.destroy();
    expect((await good.nextPacket('PUBLISH', 5000)).topic).toBe('f/timer');
    await bad.closed();
    const bad2 = await faulty(b, 'f/timer');
    const expiring = await client(b.port, {
      version: 5,
      properties: { sessionExpiryInterval: 1 },
      will: will('f/timer', { properties: { willDelayInterval: 60 } }),
    });
    expiring.destroy();
    expect((await good.nextPacket('PUBLISH', 5000)).topic).toBe('f/timer');
    await bad2.closed();
    await stillServes(b.port);
  });

  test('the $SYS timer', async () => {
    const b = await broker({ sysInterval: 1 });
    const good = await client(b.port, { version: 4 });
    await subscribe(good, '$SYS/broker/uptime');
    await good.nextPacket('PUBLISH', 3000); // the retained one
    const bad = await faulty(b, '$SYS/broker/uptime');
    await bad.closed(5000);
    await b.waitForLog(/\[faulty\] internal error delivering a message/);
    // $SYS goes on for everyone else.
    expect((await good.nextPacket('PUBLISH', 3000)).topic).toBe('$SYS/broker/uptime');
    await stillServes(b.port);
  });

  test('the end-of-tick flush', async () => {
    const b = await broker();
    const bad = await client(b.port, { version: 4, clientId: 'faulty' });
    connectionOf(b, 'faulty').flush = () => {
      throw new Error('injected write fault');
    };
    bad.send({ type: 'PINGREQ' });
    await bad.closed();
    await b.waitForLog(/\[faulty\] internal error writing to the connection/);
    await stillServes(b.port);
  });

  test('--trace: a packet the formatter cannot render is traced as such; its client stays', async () => {
    const lines: string[] = [];
    const b = await broker({ trace: 'line', traceOut: (line) => lines.push(line) });
    b.broker.setTraceFormatter((packet) => {
      if (packet.type === 'PUBLISH' && packet.topic === 'boom') throw new Error('cannot render');
      return packet.type;
    });
    const c = await client(b.port, { version: 4, clientId: 'traced' });
    await subscribe(c, 'boom');
    c.send(pub('boom', 'x', 1));
    await c.nextPacket('PUBACK');
    expect((await c.nextPacket('PUBLISH')).topic).toBe('boom');
    expect(
      lines.some((l) => /^\[traced\] -> PUBLISH \(cannot render: Error: cannot render\) 32/.test(l)),
    ).toBe(true);
    expect(lines.some((l) => /^\[traced\] <- PUBLISH \(cannot render/.test(l))).toBe(true);
    expect(c.closedNow).toBe(false);
    await stillServes(b.port);
  });
});

describe('--persist cannot write its log (a file size limit: EFBIG)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mq-no-crash-'));
  afterAll(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the connections whose acknowledgements it backed are closed, the broker serves on, nothing acknowledged is lost', async () => {
    const file = join(dir, 'broker.db');
    // 'ulimit -f 64': writes past 32 KiB fail with EFBIG (SIGXFSZ ignored, as the shell passes on).
    const limited = spawnProcess('sh', [
      '-c',
      `trap '' XFSZ; ulimit -f 64; exec "${process.execPath}" "${MQ_BIN}" broker --port 0 --sys-interval 0 --persist "${file}"`,
    ]);
    const line = await limited.waitForLine(/^mq broker listening on mqtt:\/\/[^\s:]+:(\d+)/, 10_000);
    const port = Number(/:(\d+)$/.exec(line)?.[1]);
    const p = await client(port, { version: 4, clientId: 'filler' });
    const acked: number[] = [];
    const chunk = 'x'.repeat(4000);
    for (let i = 0; i < 20 && !p.closedNow; i++) {
      p.send(pub(`r/${i}`, chunk, 1, true));
      try {
        await p.nextPacket('PUBACK');
        acked.push(i);
      } catch {
        break;
      }
    }
    // The write that failed (short, or EFBIG): its PUBACK never went out, its publisher was closed.
    await p.closed();
    expect(acked.length).toBeGreaterThan(0);
    expect(acked.length).toBeLessThan(20);
    await limited.waitForLine(/--persist .*cannot write the log: .*(EFBIG|short write)/, 5000, 'stderr');
    await stillServes(port);
    expect(limited.exited).toBe(false);
    await limited.kill('SIGKILL');
    // Restarted without the limit: every retained message that was acknowledged is there.
    const again = await startMqBroker(['--sys-interval', '0', '--persist', file]);
    const s = await client(again.port, { version: 4 });
    await subscribe(s, 'r/+');
    const got = new Set<string>();
    for (let k = 0; k < acked.length; k++) got.add((await s.nextPacket('PUBLISH')).topic);
    for (const i of acked) expect(got.has(`r/${i}`)).toBe(true);
    await again.stop();
  });
});
