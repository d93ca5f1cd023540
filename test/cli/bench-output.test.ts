/**
 * What `mq bench` prints, from reports: the summary of each mode and its warnings (mq bench's own
 * CPU, clocks across machines, QoS 0 loss, file descriptors), the live line, and compare's
 * colours (better green, worse red). Network strings are escaped.
 */
import { describe, expect, it } from 'vitest';
import type { BenchProgress } from '../../src/bench/engine.js';
import { compareReports } from '../../src/bench/merge.js';
import type { BenchReport, Percentiles } from '../../src/bench/report.js';
import { type BenchPaint, formatCompare, formatSummary, progressText } from '../../src/cli/bench-output.js';

const plain: BenchPaint = { bold: (t) => t, dim: (t) => t, red: (t) => t, green: (t) => t, yellow: (t) => t };
const tagged: BenchPaint = {
  bold: (t) => t,
  dim: (t) => t,
  red: (t) => `<red>${t}</red>`,
  green: (t) => `<green>${t}</green>`,
  yellow: (t) => `<yellow>${t}</yellow>`,
};

const pct = (p50: number, count = 1000): Percentiles => ({
  count,
  min: p50 / 2,
  mean: p50,
  p50,
  p90: p50 * 2,
  p99: p50 * 4,
  p999: p50 * 8,
  max: p50 * 10,
});

function report(
  over: Omit<Partial<BenchReport>, 'settings'> & { settings?: Partial<BenchReport['settings']> } = {},
): BenchReport {
  const { settings, ...rest } = over;
  return {
    schema: 'mq-bench-report',
    schemaVersion: 1,
    tool: { name: 'mq', version: '0.1.0' },
    runId: '0badcafe',
    host: { hostname: 'box', platform: 'linux', cpus: 2, node: 'v20' },
    startedAt: '2026-01-02T03:04:05.000Z',
    durationSec: 10,
    outcome: { completed: true, stopReason: 'finished' },
    settings: {
      mode: 'e2e',
      target: 'mqtt://localhost:1883',
      transport: 'mqtt',
      protocolVersion: 5,
      clients: 5,
      pubs: 4,
      subs: 1,
      qos: 1,
      size: 64,
      topic: 'bench/%i',
      filter: 'bench/+',
      retain: false,
      rate: 1000,
      inflight: 64,
      window: 2000,
      durationSec: 10,
      count: null,
      warmupSec: 1,
      clean: true,
      sessionExpiry: 0,
      keepalive: 60,
      connectRate: null,
      connectConcurrency: 100,
      hold: false,
      workers: 2,
      clientIdPrefix: 'mq-bench-0badcafe',
      ...settings,
    },
    connections: { attempted: 5, connected: 5, failed: 0, lost: 0, ratePerSec: 500 },
    messages: {
      sent: 10_000,
      acknowledged: 10_000,
      expected: 10_000,
      received: 10_000,
      lost: 0,
      duplicated: 0,
      reordered: 0,
      foreign: 0,
    },
    throughput: { sentPerSec: 1000, receivedPerSec: 1000, acknowledgedPerSec: 1000 },
    latencyMs: pct(0.8, 10_000),
    serviceLatencyMs: pct(0.2, 10_000),
    sendLagMs: pct(0.1, 10_000),
    ackMs: pct(0.5, 10_000),
    connectMs: { tcp: pct(1, 5), tls: null, connack: pct(2, 5), total: pct(3, 5) },
    errors: {},
    cpu: { userSec: 1, systemSec: 0.5, percentOfOneCore: 15, cores: 2 },
    memory: { rssKiB: 100_000, rssMaxKiB: 110_000, perConnectionKiB: null },
    clock: { acrossProcesses: false },
    timeline: [],
    histograms: {},
    ...rest,
  };
}

describe('the summary', () => {
  it('e2e: every figure, the percentile table, how to read open-loop latency', () => {
    const text = formatSummary(report(), plain);
    expect(
      text,
    ).toBe(`mq bench e2e: mqtt://localhost:1883, MQTT 5, 4 publishers -> 1 subscriber, QoS 1, 64 B, 1,000 msg/s (open loop)

  duration     10.0 s recorded (after 1.00 s warm-up), finished
  messages     10,000 sent, 10,000 acknowledged, 10,000 received, 10,000 expected, 0 lost, 0 duplicated, 0 reordered
  throughput   1,000 msg/s sent, 1,000 msg/s received
  connections  5 of 5 connected, 0 failed, 0 lost
  errors       none
  mq bench     CPU 15% of one core (2 cores; user 1.00 s, system 0.50 s), memory 107 MiB

  milliseconds                p50      p90      p99    p99.9      max    count
  end to end                0.800     1.60     3.20     6.40     8.00   10,000
    from the write          0.200    0.400    0.800     1.60     2.00   10,000
  publish to PUBACK         0.500     1.00     2.00     4.00     5.00   10,000
  connect                    3.00     6.00     12.0     24.0     30.0        5
    tcp                      1.00     2.00     4.00     8.00     10.0        5
    CONNECT to CONNACK       2.00     4.00     8.00     16.0     20.0        5

note: end to end counts from each message's scheduled send time (open loop: a stalled broker shows in full); "from the write" counts from the moment it was written
`);
  });

  it('warns when mq bench itself was the limit (above 90% of its cores)', () => {
    const busy = formatSummary(
      report({ cpu: { userSec: 15, systemSec: 4, percentOfOneCore: 190, cores: 2 } }),
      tagged,
    );
    expect(busy).toMatch(/<yellow>CPU 190% of one core \(2 cores/);
    expect(busy).toMatch(
      /note: mq bench used 190% of one core on 2 cores: the generator, not the broker, may have been the limit/,
    );
    const ok = formatSummary(
      report({ cpu: { userSec: 15, systemSec: 2, percentOfOneCore: 170, cores: 2 } }),
      tagged,
    );
    expect(ok).not.toMatch(/may have been the limit/);
  });

  it('sub mode: loss in red, the clock note, no publisher figures', () => {
    const text = formatSummary(
      report({
        settings: { mode: 'sub', pubs: 0, subs: 2, qos: 0, filter: '$share/g/bench/#', rate: null },
        messages: {
          sent: 0,
          acknowledged: 0,
          expected: 1010,
          received: 1000,
          lost: 10,
          duplicated: 0,
          reordered: 3,
          foreign: 7,
        },
        serviceLatencyMs: null,
        ackMs: null,
        clock: {
          acrossProcesses: true,
          note: 'latency of messages from other processes or machines is only as good as the sync of their clocks',
        },
      }),
      tagged,
    );
    expect(text).toMatch(
      /^mq bench sub: mqtt:\/\/localhost:1883, MQTT 5, 2 subscribers on '\$share\/g\/bench\/#', QoS 0\n/,
    );
    expect(text).toMatch(
      /messages +1,000 received, <red>10 lost<\/red>, 0 duplicated, <red>3 reordered<\/red>, 7 foreign \(ignored\)\n/,
    );
    expect(text).not.toMatch(/sent/);
    expect(text).toMatch(
      /note: latency of messages from other processes or machines is only as good as the sync of their clocks\n/,
    );
    expect(text).toMatch(/note: QoS 0 messages a broker drops \(e\.g\. under overload\) are counted as lost/);
  });

  it('conn mode: connections, rate, memory per connection; no message lines', () => {
    const text = formatSummary(
      report({
        settings: { mode: 'conn', clients: 10_000, pubs: 0, subs: 0, hold: true, connectRate: 2000 },
        connections: { attempted: 10_000, connected: 9_990, failed: 10, lost: 0, ratePerSec: 1998.5 },
        errors: { EMFILE: 10 },
        memory: { rssKiB: 200_000, rssMaxKiB: 210_000, perConnectionKiB: 12.6 },
        latencyMs: null,
        serviceLatencyMs: null,
        ackMs: null,
      }),
      plain,
    );
    expect(text).toMatch(
      /^mq bench conn: mqtt:\/\/localhost:1883, MQTT 5, 10,000 connections, held, 2,000 connections\/s\n/,
    );
    expect(text).not.toMatch(/messages|throughput|end to end/);
    expect(text).toMatch(/connections +9,990 of 10,000 connected \(1,999\/s\), 10 failed, 0 lost/);
    expect(text).toMatch(/errors +10 x EMFILE/);
    expect(text).toMatch(/memory 205 MiB, 12\.6 KiB per connection/);
    expect(text).toMatch(
      /note: out of file descriptors: raise the open-file limit \(`ulimit -n`, up to `ulimit -Hn`\)/,
    );
  });

  it('escapes what came from the network (error reasons)', () => {
    const text = formatSummary(report({ errors: { 'CONNACK 0x87 \u001b[31mevil\u202e': 1 } }), plain);
    expect(text).toContain('1 x CONNACK 0x87 \\x1b[31mevil\\u202e');
    expect(text).not.toContain('\u001b');
  });

  it('a run stopped early says so', () => {
    const text = formatSummary(
      report({ durationSec: 0, outcome: { completed: false, stopReason: 'aborted' }, latencyMs: null }),
      plain,
    );
    expect(text).toMatch(
      /0\.00 s recorded \(after 1\.00 s warm-up\), interrupted: the figures of what ran so far/,
    );
    expect(text).toMatch(
      /note: stopped before the recording began \(while connecting or warming up\): nothing was measured/,
    );
  });
});

describe('the live line', () => {
  const p: BenchProgress = {
    stage: 'running',
    elapsedSec: 3.7,
    sent: 3000,
    received: 2990,
    sentPerSec: 1000.4,
    receivedPerSec: 998,
    p99Ms: 0.4213,
    errors: 1,
    connections: 5,
  };
  it('shows elapsed, rates, p99 so far, errors', () => {
    expect(progressText('e2e', p)).toBe(
      'mq bench e2e 3 s running: sent 1,000/s, received 998/s, p99 0.421 ms, 1 error, 5 connections',
    );
    expect(progressText('pub', { ...p, p99Ms: null })).toBe(
      'mq bench pub 3 s running: sent 1,000/s, 1 error, 5 connections',
    );
    expect(
      progressText('conn', { ...p, stage: 'holding', p99Ms: null, errors: 0, connections: 10_000 }),
    ).toBe('mq bench conn 3 s holding: 0 errors, 10,000 connections');
  });
});

describe('compare', () => {
  it('each figure side by side, its change coloured by whether it is better', () => {
    const a = report();
    const b = report({
      throughput: { sentPerSec: 2000, receivedPerSec: 2000, acknowledgedPerSec: 2000 },
      latencyMs: pct(1.6, 10_000),
    });
    const text = formatCompare(['a.json', 'b.json'], [a, b], compareReports(a, b), tagged);
    expect(text).toMatch(
      /^mq bench compare\n {2}a {2}a\.json: e2e against mqtt:\/\/localhost:1883, 2026-01-02 03:04 UTC, 10\.0 s on box\n/,
    );
    expect(text).toMatch(/sent \(msg\/s\) +1,000 +2,000 +<green>\+100%<\/green>/);
    expect(text).toMatch(/latency p50 \(ms\) +0\.800 +1\.60 +<red>\+100%<\/red>/);
    expect(text).toMatch(/messages sent +10,000 +10,000 +\+0\.0%/);
  });
});
