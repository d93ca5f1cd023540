/**
 * The load engine against mq's broker in this process (real sockets, port 0). Runs are short
 * (counts, or 1-2 s), and every client lives in the test's thread (workers: 0) except where the
 * worker threads themselves are the point (test/bench/workers.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltinBroker, startBuiltinBroker } from '../../src/bench/builtin.js';
import { runBench } from '../../src/bench/engine.js';
import { decodeHistogram, newHistogram, percentiles } from '../../src/bench/histogram.js';
import { compareReports, mergeReports, ReportFormatError, readReport } from '../../src/bench/merge.js';
import type { BenchReport } from '../../src/bench/report.js';
import {
  assignWorkers,
  type BenchOptions,
  BenchSettingsError,
  defaultFilter,
  expandTemplate,
  receiversOf,
  resolveSettings,
} from '../../src/bench/settings.js';

let broker: BuiltinBroker;

beforeAll(async () => {
  broker = await startBuiltinBroker();
});
afterAll(async () => {
  await broker?.close();
});

const broker0 = () => ({ transport: 'mqtt' as const, host: '127.0.0.1', port: 1 });

function bench(o: Partial<BenchOptions>, b: BuiltinBroker = broker): Promise<BenchReport> {
  return runBench({
    mode: 'e2e',
    target: { transport: 'mqtt', host: b.host, port: b.port },
    workers: 0,
    warmupSec: 0,
    ...o,
  });
}

describe('e2e against mq broker', () => {
  for (const qos of [1, 2] as const) {
    it(`QoS ${qos}: exactly what was sent arrives, once, in order, acknowledged`, async () => {
      const r = await bench({ qos, pubs: 3, subs: 2, count: 400, inflight: 16 });
      expect(r.outcome).toMatchObject({ completed: true, stopReason: 'finished' });
      const m = r.messages;
      expect(m.sent).toBe(3 * 400);
      expect(m.acknowledged).toBe(m.sent);
      expect(m.expected).toBe(m.sent * 2);
      expect(m.received).toBe(m.expected);
      expect(m.lost).toBe(0);
      expect(m.duplicated).toBe(0);
      expect(m.reordered).toBe(0);
      expect(r.errors).toEqual({});
      expect(r.latencyMs?.count).toBe(m.received);
      expect(r.ackMs?.count).toBe(m.sent);
      expect(r.connections).toMatchObject({ attempted: 5, connected: 5, failed: 0, lost: 0 });
    });
  }

  it('QoS 0: counts every message, and reports the ones the broker dropped as lost', async () => {
    const clean = await bench({ qos: 0, pubs: 2, subs: 1, count: 2000 });
    expect(clean.messages).toMatchObject({
      sent: 4000,
      expected: 4000,
      received: 4000,
      lost: 0,
      duplicated: 0,
    });

    // A broker that silently drops every 10th packet it sends: SUBACK is its 1st, the PUBLISHes
    // to the subscriber the 2nd to the 1001st, so 100 of them never arrive.
    const lossy = await startBuiltinBroker({ dropEvery: 10 });
    try {
      const r = await bench({ qos: 0, pubs: 1, subs: 1, count: 1000, drainTimeoutMs: 3000 }, lossy);
      expect(r.messages).toMatchObject({
        sent: 1000,
        expected: 1000,
        received: 900,
        lost: 100,
        duplicated: 0,
      });
      expect(r.messages.reordered).toBe(0);
    } finally {
      await lossy.close();
    }
  });

  it('MQTT 3.1.1 and retained messages work the same, and leave no retained message behind', async () => {
    const r = await bench({ version: 4, qos: 1, retain: true, count: 100, topic: 'bench/retained/%i' });
    expect(r.messages).toMatchObject({ sent: 100, received: 100, lost: 0 });
    // The next run's subscriber gets no stale retained message (its runs' counts stay exact).
    const again = await bench({ version: 4, qos: 1, count: 50, topic: 'bench/retained/%i' });
    expect(again.messages).toMatchObject({ sent: 50, received: 50, foreign: 0 });
  });

  it('open loop: sends at the rate asked, stamps the scheduled time, reports the generator lag', async () => {
    const r = await bench({ qos: 0, pubs: 2, subs: 1, rate: 1000, durationSec: 1 });
    expect(r.messages.sent).toBeGreaterThanOrEqual(990);
    expect(r.messages.sent).toBeLessThanOrEqual(1000);
    expect(r.messages.lost).toBe(0);
    expect(r.sendLagMs?.count).toBe(r.messages.sent);
    expect(r.serviceLatencyMs?.count).toBe(r.messages.received);
    // From the scheduled time, latency includes the lag: never below the latency from the write.
    expect(r.latencyMs!.p50).toBeGreaterThanOrEqual(r.serviceLatencyMs!.p50);
    expect(r.settings.rate).toBe(1000);
  });

  it('warm-up is left out of every figure', async () => {
    const r = await bench({ qos: 1, count: 200, warmupSec: 0.3 });
    expect(r.messages.sent).toBe(200);
    expect(r.messages.received).toBe(200);
    expect(r.ackMs?.count).toBe(200);
  });

  it("sub mode: counts another run's publishers by their headers (and says whose clock it used)", async () => {
    const target = { transport: 'mqtt' as const, host: broker.host, port: broker.port };
    const sub = runBench({
      mode: 'sub',
      target,
      workers: 0,
      warmupSec: 0,
      durationSec: 2,
      topic: 'bench/x/%i',
    });
    // The subscriber is up well before this publisher's first message (connecting takes ms).
    await new Promise((r) => setTimeout(r, 300));
    const pub = await runBench({
      mode: 'pub',
      target,
      workers: 0,
      warmupSec: 0,
      qos: 1,
      count: 300,
      topic: 'bench/x/%i',
    });
    const s = await sub;
    expect(pub.messages).toMatchObject({ sent: 300, acknowledged: 300 });
    expect(s.messages).toMatchObject({ received: 300, lost: 0, duplicated: 0, expected: 300 });
    expect(s.clock.acrossProcesses).toBe(true);
    expect(s.latencyMs?.count).toBe(300);
  });

  it('conn mode: opens the connections and times each step', async () => {
    const r = await runBench({
      mode: 'conn',
      target: { transport: 'mqtt', host: broker.host, port: broker.port },
      workers: 0,
      clients: 50,
      connectConcurrency: 10,
    });
    expect(r.connections).toMatchObject({ attempted: 50, connected: 50, failed: 0 });
    expect(r.connectMs.tcp?.count).toBe(50);
    expect(r.connectMs.connack?.count).toBe(50);
    expect(r.connectMs.tls).toBeNull();
    expect(r.memory.perConnectionKiB).not.toBeNull();
  });

  it('conn mode: keeps to the connect rate asked', async () => {
    const r = await runBench({
      mode: 'conn',
      target: { transport: 'mqtt', host: broker.host, port: broker.port },
      workers: 0,
      clients: 20,
      connectRate: 100,
    });
    expect(r.connections.connected).toBe(20);
    // 20 connections at 100/s: the last one starts 190 ms after the first.
    expect(r.connections.ratePerSec).toBeLessThanOrEqual(105);
    expect(r.settings.connectRate).toBe(100);
  });

  it('persistent sessions (clean start off, v5 session expiry) keep exact accounting', async () => {
    for (let run = 0; run < 2; run++) {
      const r = await bench({
        qos: 1,
        count: 100,
        clean: false,
        sessionExpiry: 30,
        clientIdPrefix: 'bench-persist',
      });
      expect(r.messages).toMatchObject({ sent: 100, received: 100, lost: 0, duplicated: 0 });
      expect(r.settings).toMatchObject({ clean: false, sessionExpiry: 30 });
    }
  });

  it('refuses settings that cannot work, saying which', async () => {
    await expect(bench({ size: 10 })).rejects.toThrow(BenchSettingsError);
    await expect(bench({ size: 10 })).rejects.toThrow(/size must be at least 28/);
    await expect(bench({ qos: 3 as 0 })).rejects.toThrow(/qos/);
    await expect(bench({ topic: 'a/#' })).rejects.toThrow(/topic 'a\/#'/);
  });
});

describe('settings', () => {
  it('expands topic templates: %i index, %c client id, %w worker, %% a percent sign', () => {
    expect(expandTemplate('bench/%i/%c/%w/100%%', 3, 'mq-p3', 1)).toBe('bench/3/mq-p3/1/100%');
    expect(defaultFilter('bench/%i')).toBe('bench/+');
    expect(defaultFilter('site/a/dev-%c/x')).toBe('site/a/+/x');
    expect(defaultFilter('plain/topic')).toBe('plain/topic');
  });

  it('counts the deliveries a message should make: one per matching subscriber, one per shared subscription', () => {
    // Two members of one shared subscription get one copy between them; another share name or
    // another filter is another shared subscription, with its own copy.
    const filters = [
      'bench/+',
      '$share/g/bench/+',
      '$share/g/bench/+',
      '$share/h/bench/+',
      'bench/1',
      undefined,
    ];
    const r = receiversOf(['bench/0', 'bench/1', 'other/2'], filters);
    expect(r.deliveries).toEqual([1 + 2, 2 + 2, 0]);
    expect(r.subs).toEqual([[0], [0, 4], []]);
  });

  it('spreads clients by work: a subscriber of 8 publishers weighs as much as the 8', () => {
    const s = resolveSettings({ mode: 'e2e', target: broker0(), pubs: 8, subs: 1 }, 1);
    const a = assignWorkers(s, 2);
    expect(a.subWorker).toEqual([0]);
    expect(a.pubWorker).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
  });
});

describe('mergeReports', () => {
  it('gives the histogram of both runs and the sums of their counters', async () => {
    const a = await bench({ qos: 1, count: 300 });
    const b = await bench({ qos: 1, pubs: 2, count: 200, size: 500 });
    const m = mergeReports([a, b]);
    // The merged distribution is the one of every sample of both runs.
    const both = newHistogram();
    both.add(decodeHistogram(a.histograms.latency!));
    both.add(decodeHistogram(b.histograms.latency!));
    expect(m.latencyMs).toEqual(percentiles(both));
    expect(m.latencyMs?.count).toBe(300 + 400);
    expect(m.latencyMs!.max).toBe(Math.max(a.latencyMs!.max, b.latencyMs!.max));
    expect(m.messages.sent).toBe(a.messages.sent + b.messages.sent);
    expect(m.messages.received).toBe(700);
    expect(m.throughput.sentPerSec).toBeCloseTo(a.throughput.sentPerSec + b.throughput.sentPerSec, 6);
    expect(m.ackMs?.count).toBe(700);
    expect(m.sources?.map((s) => s.runId)).toEqual([a.runId, b.runId]);
    // Merging is associative on the distributions: ((a) + b) == (a + b).
    expect(mergeReports([mergeReports([a]), b]).latencyMs).toEqual(m.latencyMs);

    // What compare shows: each figure of both, the change, and which way is better.
    const rows = compareReports(a, b);
    const sent = rows.find((x) => x.key === 'messages.sent')!;
    expect(sent).toMatchObject({ a: 300, b: 400, better: 'higher' });
    expect(sent.change).toBeCloseTo(400 / 300 - 1, 9);
    expect(rows.find((x) => x.key === 'latencyMs.p99')).toMatchObject({
      better: 'lower',
      a: a.latencyMs!.p99,
    });
    expect(rows.find((x) => x.key === 'messages.lost')).toMatchObject({ a: 0, b: 0, change: null });

    // Reports read back from JSON; anything else is refused with the reason.
    expect(readReport(JSON.parse(JSON.stringify(m)), 'm.json').messages.sent).toBe(700);
    expect(() => readReport({ hello: 1 }, 'x.json')).toThrow(ReportFormatError);
    expect(() => readReport({ ...m, schemaVersion: 99 }, 'new.json')).toThrow(/version 99 is newer/);
  });
});
