/**
 * --persist keeps wills: a session restored after a restart keeps its will and its Will Delay
 * deadline; a will due while the broker was down is published at start; a client that connects
 * before the deadline cancels it [MQTT-3.1.3-9]; a graceful stop publishes the wills of sessions
 * that end with it and keeps the delayed wills of those that survive it. (kill -9: persist-crash.)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import type { Will } from '../../src/protocol/index.js';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';

let dir: string;
const h = brokerHarness();
const { client, subscribe } = h;
const broker = (file: string) => h.broker({ persistFile: file });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-persist-wills-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function will(topic: string, delay?: number, extra: Partial<Will> = {}): Will {
  const w: Will = { topic, payload: Buffer.from(`${topic} gone`), qos: 1, retain: false, ...extra };
  if (delay !== undefined) w.properties = { ...w.properties, willDelayInterval: delay };
  return w;
}

/** A v5 session that outlives its connection by an hour. */
const durable = (clientId: string, w?: Will) => ({
  version: 5 as const,
  clientId,
  properties: { sessionExpiryInterval: 3600 },
  ...(w !== undefined ? { will: w } : {}),
});

async function watcher(port: number, filter: string): Promise<TestClient> {
  const c = await client(port, { version: 5 });
  await subscribe(c, filter, 1);
  return c;
}

describe('--persist keeps wills', () => {
  test('a graceful stop keeps the delayed wills of surviving sessions (published after the restart, at their deadline) and publishes the others', async () => {
    const file = join(dir, 'graceful.log');
    const b1 = await broker(file);
    const sub = await watcher(b1.port, 'g/#');
    // Survives the restart, its will delayed 1 s: kept.
    await client(
      b1.port,
      durable('g-kept', will('g/kept', 1, { properties: { contentType: 'text/plain' } })),
    );
    // No delay: published as the broker stops, as Mosquitto does.
    await client(b1.port, durable('g-now', will('g/now')));
    // A session that ends with its connection: published, whatever its delay.
    await client(b1.port, { version: 5, will: will('g/clean', 60) });
    const stoppedAt = Date.now();
    await b1.broker.close();
    await sub.closed();
    const before = sub.pending().flatMap((p) => (p.type === 'PUBLISH' ? [p.topic] : []));
    expect(before.sort()).toEqual(['g/clean', 'g/now']);
    expect(b1.logs).toContain(
      'stopping: 2 will(s) published; 1 delayed will(s) kept in --persist for after the restart',
    );

    const b2 = await broker(file);
    expect(b2.logs).toContainEqual(expect.stringMatching(/0 will\(s\) published at start.*1 waiting out/));
    const after = await watcher(b2.port, 'g/#');
    const m = await after.nextPacket('PUBLISH', 5000);
    expect([m.topic, m.payload.toString(), m.properties?.contentType]).toEqual([
      'g/kept',
      'g/kept gone',
      'text/plain',
    ]);
    // Its deadline ran through the restart: due 1 s after the stop, not 1 s after the start.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1000);
    expect(await after.nothing('PUBLISH', 200)).toBe(true);
  });

  test('a will due while the broker was down is published at start, into a restored session and the retained store', async () => {
    const file = join(dir, 'due.log');
    const b1 = await broker(file);
    // A persistent subscriber, offline: the will is queued for it at start.
    const s = await client(b1.port, durable('due-sub'));
    await subscribe(s, 'due/#', 1);
    await s.disconnect();
    const gone = await client(b1.port, durable('due-owner', will('due/owner', 1, { retain: true })));
    gone.destroy();
    await b1.waitForLog(/\[due-owner\] connection lost/);
    await b1.broker.close();
    // The broker is down past the deadline (1 s after the connection was lost).
    const dueAt = JSON.parse(
      readFileSync(file, 'utf8')
        .split('\n')
        .find((l) => l.includes('"o":"W"')) ?? '{}',
    ).at as number;
    expect(dueAt).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, Math.max(0, dueAt - Date.now() + 50)));

    const b2 = await broker(file);
    expect(b2.logs).toContainEqual(expect.stringMatching(/1 will\(s\) published at start/));
    expect(brokerCore(b2.broker).retained.get('due/owner')?.payload.toString()).toBe('due/owner gone');
    const back = await client(b2.port, { ...durable('due-sub'), clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    const m = await back.nextPacket('PUBLISH');
    expect([m.topic, m.qos]).toEqual(['due/owner', 1]);
  });

  test('a client that connects again before the deadline cancels its kept will [MQTT-3.1.3-9]', async () => {
    const file = join(dir, 'cancel.log');
    const b1 = await broker(file);
    const gone = await client(b1.port, durable('c-owner', will('c/owner', 1)));
    gone.destroy();
    await b1.waitForLog(/\[c-owner\] connection lost/);
    await b1.broker.close();

    const b2 = await broker(file);
    const sub = await watcher(b2.port, 'c/#');
    const back = await client(b2.port, { ...durable('c-owner'), clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    expect(await sub.nothing('PUBLISH', 1500)).toBe(true);
    await b2.broker.close({ publishWills: false });
    // Nor after another restart: the log no longer holds it.
    const b3 = await broker(file);
    expect(brokerCore(b3.broker).sessions.get('c-owner')?.pendingWill).toBeUndefined();
  });

  test('a session that expires before its will delay publishes the will then [MQTT-3.1.2-8]', async () => {
    const file = join(dir, 'expiry.log');
    const b1 = await broker(file);
    const gone = await client(b1.port, {
      version: 5,
      clientId: 'e-owner',
      properties: { sessionExpiryInterval: 1 },
      will: will('e/owner', 3600),
    });
    gone.destroy();
    await b1.waitForLog(/\[e-owner\] connection lost/);
    await b1.broker.close();
    const b2 = await broker(file);
    const sub = await watcher(b2.port, 'e/#');
    const m = await sub.nextPacket('PUBLISH', 3000);
    expect(m.topic).toBe('e/owner');
  });

  test('W and V records are checked like the others; a log without them restores no will', async () => {
    const file = join(dir, 'bad.log');
    const rec = (o: unknown) => JSON.stringify(o);
    const w = (c: string, extra: Record<string, unknown> = {}) =>
      rec({ o: 'W', c, t: `bad/${c}`, p: Buffer.from('x').toString('base64'), q: 1, r: false, ...extra });
    writeFileSync(
      file,
      [
        rec({ o: 'S', c: 'kept', v: 5, e: 3600, subs: [] }),
        w('kept', { d: 3600, at: Date.now() + 3_600_000 }),
        w('wild', { t: 'bad/#' }),
        w('delay', { d: -1 }),
        w('qos', { q: 3 }),
        rec({ o: 'W', c: 'nopayload', t: 'bad/x', q: 0, r: false }),
        w('gone'),
        rec({ o: 'V', c: 'gone' }),
        rec({ o: 'V' }),
        '',
      ].join('\n'),
    );
    const b = await broker(file);
    for (const [line, why] of [
      [3, "field 't': "],
      [4, "field 'd' is outside 0..4294967295"],
      [5, "field 'q' is not one of 0, 1, 2"],
      [6, "field 'p' is not a string"],
      [9, "field 'c' is not a string"],
    ] as const) {
      expect(b.logs).toContainEqual(
        expect.stringContaining(`--persist ${file}: skipping line ${line}: ${why}`),
      );
    }
    const kept = brokerCore(b.broker).sessions.get('kept')?.pendingWill;
    expect(kept?.will.topic).toBe('bad/kept');
    expect(kept?.will.properties?.willDelayInterval).toBe(3600);
    expect(b.logs).toContainEqual(expect.stringMatching(/0 will\(s\) published at start.*1 waiting out/));
  });
});
