/**
 * `mq bench --assert`: the expression grammar (metric, operator, value, units), what a wrong one
 * says, and the verdicts on a report.
 */
import { describe, expect, it } from 'vitest';
import type { BenchReport, Percentiles } from '../../src/bench/report.js';
import { checkAssertion, parseAssertion } from '../../src/cli/bench-assert.js';
import { UsageError } from '../../src/cli/errors.js';

const pct = (p99: number): Percentiles => ({
  count: 1000,
  min: 0.1,
  mean: 1,
  p50: 0.8,
  p90: 1.5,
  p99,
  p999: p99 * 2,
  max: p99 * 3,
});

/** A report with the figures the assertions read (the rest as a run of the engine fills it). */
function report(over: Partial<BenchReport> = {}): BenchReport {
  return {
    latencyMs: pct(4.2),
    serviceLatencyMs: null,
    ackMs: pct(2),
    connectMs: { tcp: null, tls: null, connack: null, total: pct(30) },
    messages: {
      sent: 10_000,
      acknowledged: 10_000,
      expected: 20_000,
      received: 19_990,
      lost: 10,
      duplicated: 0,
      reordered: 0,
      foreign: 0,
    },
    throughput: { sentPerSec: 1000, receivedPerSec: 1999, acknowledgedPerSec: 1000 },
    connections: { attempted: 3, connected: 3, failed: 0, lost: 0, ratePerSec: 100 },
    errors: { ECONNRESET: 2, 'not acknowledged: connection lost': 1 },
    cpu: { userSec: 1, systemSec: 0.5, percentOfOneCore: 150, cores: 2 },
    durationSec: 10,
    ...over,
  } as BenchReport;
}

const verdict = (expr: string, r = report()) => checkAssertion(parseAssertion(expr), r);

describe('--assert expressions', () => {
  it.each([
    ['p99<5ms', true],
    ['p99 < 5 ms', true],
    ['p99<5', true], // ms by default
    ['p99<4200us', false],
    ['p99<=4200us', true],
    ['p99<0.004s', false],
    ['p99.9<9ms', true],
    ['p999>=8.4', true],
    ['max<10ms', false],
    ['latency.p50==0.8', true],
    ['ack.p99<3ms', true],
    ['connect.p99<20ms', false],
    ['lost==0', false],
    ['lost<=10', true],
    ['lost<0.1%', true], // 10 of 20,000 expected = 0.05%
    ['lost<0.01%', false],
    ['received>=19.99k', true],
    ['duplicated==0', true],
    ['reordered!=0', false],
    ['throughput>=2k', false],
    ['throughput>=1.9k', true],
    ['sent-per-sec>=1000', true],
    ['errors==3', true],
    ['connect-failed==0', true],
    ['connected==100%', true],
    ['cpu<150%', false],
    ['cpu<=150', true],
    ['duration>=10s', true],
  ])('%s -> %s', (expr, ok) => {
    expect(verdict(expr).ok).toBe(ok);
  });

  it('says what it compared', () => {
    expect(verdict('p99<5ms').detail).toBe('p99 = 4.2 ms');
    expect(verdict('lost<0.01%').detail).toBe('lost = 10 (0.05% of 20000)');
    expect(verdict('throughput>=2k').detail).toBe('throughput = 1999 msg/s');
  });

  it('a figure the run did not measure fails its assertion', () => {
    const v = verdict('p99<5ms', report({ latencyMs: null }));
    expect(v.ok).toBe(false);
    expect(v.actual).toBeNull();
    expect(v.detail).toBe('p99 was not measured in this run');
  });

  it.each([
    ['p99', /--assert 'p99': not METRIC OP VALUE/],
    ['p99=5ms', /not METRIC OP VALUE/],
    ['p99<<5', /not METRIC OP VALUE/],
    ['latncy<5ms', /--assert 'latncy<5ms': unknown metric 'latncy'/],
    ['p99<5kg', /'kg' is not a unit of p99 \(a time: us, ms \(the default\) or s\)/],
    ['lost<5ms', /'ms' is not a unit of lost \(a count: k, M or %\)/],
    ['errors<1%', /'errors' is a count; % does not apply to it/],
    ['cpu<2k', /'k' is not a unit of cpu/],
  ])('%s is a usage error naming it', (expr, message) => {
    let err: unknown;
    try {
      parseAssertion(expr);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(1);
    expect((err as Error).message).toMatch(message);
  });
});
