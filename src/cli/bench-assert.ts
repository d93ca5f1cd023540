/**
 * `mq bench --assert EXPR`: thresholds a report must meet (for CI pipelines).
 *
 *   EXPR   = METRIC OP VALUE [UNIT]         p99<5ms   lost==0   throughput>=10k   cpu<150%
 *   OP     = < <= > >= == !=
 *
 * Each metric has a kind, and the kind says which units it takes:
 *   time     p50 p90 p99 p999 max min mean (end-to-end latency; also latency.p99...), service.p99...,
 *            ack.p50..., connect.p50..., duration: us, ms (the default), s
 *   count    sent received acknowledged expected lost duplicated reordered foreign errors connected
 *            connect-failed conn-lost: k, M; or % (of the messages expected; connections: of the attempts)
 *   rate     throughput (= received-per-sec), received-per-sec, sent-per-sec, acked-per-sec: k, M
 *   percent  cpu (mq bench's own, 100 = one core busy): % or a bare number
 *
 * parseAssertion runs before the bench does (a wrong expression is a usage error, exit 1, naming
 * it); checkAssertion judges a report. A metric the run did not measure (p99 of a pub-only run)
 * fails its assertion: a threshold nobody could check is not met.
 */
import type { BenchReport, Percentiles } from '../bench/report.js';
import { UsageError } from './errors.js';

type Kind = 'time' | 'count' | 'rate' | 'percent';
export type AssertOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

interface Metric {
  kind: Kind;
  /** The figure in the kind's base unit (ms, messages, msg/s, %), or null when not measured. */
  value: (r: BenchReport) => number | null;
  /** count metrics that take %: what 100% is. */
  whole?: (r: BenchReport) => number;
}

export interface Assertion {
  /** The expression as given. */
  text: string;
  metric: string;
  op: AssertOp;
  /** In the metric's base unit; for a `%` on a count, a fraction of `whole`. */
  value: number;
  percent: boolean;
}

export interface AssertResult {
  assertion: Assertion;
  ok: boolean;
  /** The figure the assertion compared (base unit; a percentage for `%`), null when not measured. */
  actual: number | null;
  /** `p99 = 1.23 ms`, `lost = 3 (0.03%)`, `p99 not measured`. */
  detail: string;
}

const PERCENTILES = ['p50', 'p90', 'p99', 'p999', 'max', 'min', 'mean'] as const;

const of = (p: Percentiles | null, k: (typeof PERCENTILES)[number]) => (p === null ? null : p[k]);
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
/** What 100% of a message count is: the messages expected (e2e, sub), else the messages sent. */
const messagesWhole = (r: BenchReport) => (r.messages.expected > 0 ? r.messages.expected : r.messages.sent);
const attempts = (r: BenchReport) => r.connections.attempted;

function metricTable(): Map<string, Metric> {
  const t = new Map<string, Metric>();
  for (const k of PERCENTILES) {
    const latency: Metric = { kind: 'time', value: (r) => of(r.latencyMs, k) };
    t.set(k, latency);
    t.set(`latency.${k}`, latency);
    t.set(`service.${k}`, { kind: 'time', value: (r) => of(r.serviceLatencyMs, k) });
    t.set(`ack.${k}`, { kind: 'time', value: (r) => of(r.ackMs, k) });
    t.set(`connect.${k}`, { kind: 'time', value: (r) => of(r.connectMs.total, k) });
  }
  t.set('p99.9', t.get('p999')!);
  t.set('duration', { kind: 'time', value: (r) => r.durationSec * 1000 });
  for (const k of ['sent', 'received', 'expected', 'lost', 'duplicated', 'reordered', 'foreign'] as const) {
    t.set(k, { kind: 'count', value: (r) => r.messages[k], whole: messagesWhole });
  }
  t.set('acknowledged', {
    kind: 'count',
    value: (r) => r.messages.acknowledged,
    whole: (r) => r.messages.sent,
  });
  t.set('errors', { kind: 'count', value: (r) => sum(r.errors) });
  t.set('connected', { kind: 'count', value: (r) => r.connections.connected, whole: attempts });
  t.set('connect-failed', { kind: 'count', value: (r) => r.connections.failed, whole: attempts });
  t.set('conn-lost', { kind: 'count', value: (r) => r.connections.lost, whole: attempts });
  const received: Metric = { kind: 'rate', value: (r) => r.throughput.receivedPerSec };
  t.set('throughput', received);
  t.set('received-per-sec', received);
  t.set('sent-per-sec', { kind: 'rate', value: (r) => r.throughput.sentPerSec });
  t.set('acked-per-sec', { kind: 'rate', value: (r) => r.throughput.acknowledgedPerSec });
  t.set('cpu', { kind: 'percent', value: (r) => r.cpu.percentOfOneCore });
  return t;
}

const METRICS = metricTable();

/** Unit -> factor to the kind's base unit. */
const UNITS: Record<Kind, Record<string, number>> = {
  time: { '': 1, us: 0.001, µs: 0.001, ms: 1, s: 1000 },
  count: { '': 1, k: 1e3, M: 1e6 },
  rate: { '': 1, k: 1e3, M: 1e6, '/s': 1, 'k/s': 1e3, 'M/s': 1e6 },
  percent: { '': 1, '%': 1 },
};

const UNIT_NAMES: Record<Kind, string> = {
  time: 'us, ms (the default) or s',
  count: 'k, M or %',
  rate: 'k or M (messages per second)',
  percent: '% (100% = one core)',
};

/** The metric names, for help and error messages. */
export const METRIC_NAMES = [
  'p50 p90 p99 p999 max mean min (end to end; ack.p99, connect.p99, service.p99 likewise),',
  'lost duplicated reordered sent received acknowledged expected foreign errors connected',
  'connect-failed conn-lost, throughput (received-per-sec) sent-per-sec acked-per-sec, cpu, duration',
].join('\n  ');

/** Reads one --assert expression; a UsageError names it and what is wrong. */
export function parseAssertion(text: string): Assertion {
  const where = `--assert '${text}'`;
  const m =
    /^\s*([a-z][a-z0-9.-]*)\s*(<=|>=|==|!=|<|>)\s*(-?(?:\d+(?:\.\d+)?|\.\d+))\s*([a-zA-Zµ%/]*)\s*$/.exec(
      text,
    );
  if (!m) {
    throw new UsageError(
      `${where}: not METRIC OP VALUE (e.g. 'p99<5ms', 'lost==0', 'throughput>=10k'; OP is < <= > >= == !=)`,
    );
  }
  const [, name, op, number, unit] = m as unknown as [string, string, AssertOp, string, string];
  const metric = METRICS.get(name);
  if (metric === undefined)
    throw new UsageError(`${where}: unknown metric '${name}' (see mq bench e2e --help for the metrics)`);
  const percent = unit === '%' && metric.kind === 'count';
  if (percent && metric.whole === undefined) {
    throw new UsageError(`${where}: '${name}' is a count; % does not apply to it`);
  }
  const factor = percent ? 1 : UNITS[metric.kind][unit];
  if (factor === undefined) {
    throw new UsageError(
      `${where}: '${unit}' is not a unit of ${name} (a ${metric.kind}: ${UNIT_NAMES[metric.kind]})`,
    );
  }
  return { text, metric: name, op, value: Number(number) * factor, percent };
}

function compare(a: number, op: AssertOp, b: number): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    default: {
      const never: never = op;
      throw new Error(`unknown operator ${String(never)}`);
    }
  }
}

const BASE_UNIT: Record<Kind, string> = { time: ' ms', count: '', rate: ' msg/s', percent: '%' };

function show(n: number): string {
  if (Number.isInteger(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : String(Number(n.toPrecision(3)));
}

/** Judges `a` against the report. */
export function checkAssertion(a: Assertion, r: BenchReport): AssertResult {
  const metric = METRICS.get(a.metric);
  if (metric === undefined) throw new Error(`unknown metric ${a.metric}`);
  const value = metric.value(r);
  if (value === null || !Number.isFinite(value)) {
    return { assertion: a, ok: false, actual: null, detail: `${a.metric} was not measured in this run` };
  }
  if (a.percent) {
    const whole = metric.whole?.(r) ?? 0;
    const pct = whole > 0 ? (100 * value) / whole : value > 0 ? Number.POSITIVE_INFINITY : 0;
    return {
      assertion: a,
      ok: compare(pct, a.op, a.value),
      actual: pct,
      detail: `${a.metric} = ${show(value)} (${show(pct)}% of ${show(whole)})`,
    };
  }
  return {
    assertion: a,
    ok: compare(value, a.op, a.value),
    actual: value,
    detail: `${a.metric} = ${show(value)}${BASE_UNIT[metric.kind]}`,
  };
}
