/**
 * `mq broker --persist FILE` survives kill -9: QoS 1 messages queued for offline persistent
 * sessions (3.1.1 clean session off, and v5 with a Session Expiry Interval), acknowledged to the
 * publisher before the crash, are all delivered after a restart on the same file, in order, once.
 * Retained messages survive too, and so do wills: those the crash made due are published at the
 * restart, delayed ones wait out their Will Delay Interval from then.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import type { Will } from '../../src/protocol/index.js';
import { TestClient, type TestConnectOptions } from '../helpers/mqtt-test-client.js';
import { killAll, type MqBroker, startMqBroker } from '../helpers/spawn.js';

const N = 200;
const dir = mkdtempSync(join(tmpdir(), 'mq-persist-crash-'));
const clients: MqttClient[] = [];
const brokers: MqBroker[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  for (const b of brokers) await b.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function start(file: string): Promise<MqBroker> {
  const b = await startMqBroker(['--persist', file]);
  brokers.push(b);
  return b;
}

/** Connects, resolving with the client and its CONNACK's session-present flag. */
function connect(
  port: number,
  options: IClientOptions,
  onMessage?: (topic: string, payload: Buffer) => void,
): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    });
    clients.push(client);
    // Attached before CONNACK: a resumed session's queued messages follow it immediately.
    if (onMessage) client.on('message', onMessage);
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
    client.once('error', reject);
  });
}

/** Resolves once `pred` holds, re-checked on every message; rejects after timeoutMs. */
function until(client: MqttClient, pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pred()) {
        clearTimeout(timer);
        client.off('message', check);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      client.off('message', check);
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    client.on('message', check);
    check();
  });
}

const SESSIONS: { name: string; options: IClientOptions }[] = [
  { name: '3.1.1 clean session off', options: { protocolVersion: 4, clean: false, clientId: 'crash-v4' } },
  {
    name: 'v5 session expiry 1 h',
    options: {
      protocolVersion: 5,
      clean: false,
      clientId: 'crash-v5',
      properties: { sessionExpiryInterval: 3600 },
    },
  },
];

describe('--persist survives kill -9', () => {
  it(`delivers all ${N} acknowledged QoS 1 messages queued for offline sessions, in order, after a restart`, async () => {
    const file = join(dir, 'broker.db');
    const first = await start(file);

    for (const s of SESSIONS) {
      const { client } = await connect(first.port, s.options);
      await client.subscribeAsync('crash/#', { qos: 1 });
      await client.endAsync(); // DISCONNECT: the session stays, offline
    }

    const { client: pub } = await connect(first.port, { protocolVersion: 4, clientId: 'crash-pub' });
    await pub.publishAsync('crash/retained', 'still here', { qos: 1, retain: true });
    for (let i = 0; i < N; i++) await pub.publishAsync(`crash/${i % 7}`, `m${i}`, { qos: 1 });
    // Every publishAsync above resolved on PUBACK: the broker has acknowledged all of them.
    await pub.endAsync(true);

    const killed = await first.kill9();
    expect(killed.signal).toBe('SIGKILL');

    const second = await start(file);
    expect(second.proc.exited).toBe(false);

    const resumed: { name: string; client: MqttClient; got: string[] }[] = [];
    for (const s of SESSIONS) {
      const got: string[] = [];
      const { client, sessionPresent } = await connect(second.port, s.options, (topic, payload) => {
        if (topic !== 'crash/retained') got.push(payload.toString());
      });
      expect(sessionPresent, `${s.name}: session present`).toBe(true);
      resumed.push({ name: s.name, client, got });
    }
    for (const r of resumed) await until(r.client, () => r.got.length >= N, `${r.name}: ${N} messages`);
    // A fresh message after the queue: anything redelivered twice would show up before it.
    const { client: p2 } = await connect(second.port, { protocolVersion: 4, clientId: 'crash-pub-2' });
    await p2.publishAsync('crash/after', 'after', { qos: 1 });
    for (const r of resumed) {
      await until(r.client, () => r.got.includes('after'), `${r.name}: the message published after restart`);
      expect(r.got, r.name).toEqual([...Array.from({ length: N }, (_, i) => `m${i}`), 'after']);
    }

    // Retained messages survive too.
    const retained: string[] = [];
    const { client: late } = await connect(second.port, { protocolVersion: 5 }, (topic, payload) => {
      if (topic === 'crash/retained') retained.push(payload.toString());
    });
    await late.subscribeAsync('crash/retained', { qos: 1 });
    await until(late, () => retained.length > 0, 'the retained message');
    expect(retained).toEqual(['still here']);
  }, 60_000);
});

describe('--persist keeps wills through kill -9', () => {
  const test5 = (clientId: string, will?: Will, version: 4 | 5 = 5): TestConnectOptions => ({
    version,
    clientId,
    ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    ...(will !== undefined ? { will } : {}),
  });
  const will = (topic: string, delay?: number): Will => ({
    topic,
    payload: Buffer.from(`${topic} gone`),
    qos: 1,
    retain: false,
    ...(delay !== undefined ? { properties: { willDelayInterval: delay } } : {}),
  });
  const raw: TestClient[] = [];
  afterAll(() => {
    for (const c of raw) c.destroy();
  });
  const connectRaw = async (port: number, o: TestConnectOptions) => {
    const c = await TestClient.connect(port, o);
    raw.push(c);
    return c;
  };

  it('publishes at start the wills the crash made due, holds the delayed ones from the restart, and a client back in time cancels its own', async () => {
    const file = join(dir, 'wills.db');
    const first = await start(file);
    const sub = await connectRaw(first.port, test5('cw-sub'));
    sub.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'cw/#', qos: 1 }] });
    await sub.nextPacket('SUBACK');
    // Connected at the crash: a clean v5 session, a 3.1.1 one, a durable one with a 3 s delay.
    await connectRaw(first.port, { version: 5, will: will('cw/clean') });
    await connectRaw(first.port, { version: 4, will: will('cw/v4') });
    await connectRaw(first.port, test5('cw-connected', will('cw/connected', 3)));
    // Gone before the crash, their wills waiting: one due in 1 s, one in an hour.
    for (const [id, topic, delay] of [
      ['cw-due', 'cw/due', 1],
      ['cw-back', 'cw/back', 3600],
    ] as const) {
      (await connectRaw(first.port, test5(id, will(topic, delay)))).destroy();
      await first.proc.waitForLine(new RegExp(`\\[${id}\\] connection lost`), 5000, 'stderr');
    }
    const lostAt = Date.now();
    // A round trip: what the broker logged before it is on disk (--persist syncs before it answers).
    sub.send({ type: 'PINGREQ' });
    await sub.nextPacket('PINGRESP');
    await first.kill9();

    // Down past cw/due's deadline (the behaviour under test: time passing while the broker is down).
    await new Promise((r) => setTimeout(r, Math.max(0, lostAt + 1100 - Date.now())));
    const second = await start(file);
    const startedAt = Date.now();
    await second.proc.waitForLine(
      /3 will\(s\) published at start .*, 2 waiting out their Will Delay Interval/,
      5000,
      'stderr',
    );
    const back = await connectRaw(second.port, { ...test5('cw-back'), clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    const resumed = await connectRaw(second.port, { ...test5('cw-sub'), clean: false });
    expect(resumed.connack?.sessionPresent).toBe(true);
    const got = new Map<string, number>();
    while (!got.has('cw/connected')) {
      const m = await resumed.nextPacket('PUBLISH', 8000);
      got.set(m.topic, Date.now());
      resumed.send({ type: 'PUBACK', packetId: m.packetId! });
    }
    expect(await resumed.nothing('PUBLISH', 300)).toBe(true);
    expect([...got.keys()].sort()).toEqual(['cw/clean', 'cw/connected', 'cw/due', 'cw/v4']);
    // Connected at the crash: its 3 s delay counts from the restart, when the broker knows it is gone.
    expect(got.get('cw/connected')! - startedAt).toBeGreaterThanOrEqual(2000);
  }, 60_000);
});
