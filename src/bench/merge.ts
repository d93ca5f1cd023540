/**
 * Reading, merging and comparing bench reports (pure functions; `mq bench merge` and
 * `mq bench compare` print what these return).
 *
 * mergeReports: reports of runs made at the same time on several machines (e.g. publishers on
 * two, subscribers on a third, all against one broker cluster) become one: histograms merged (the
 * counts added, percentiles recomputed), counters and rates summed, timelines summed second by
 * second. Never an average of percentiles.
 */
import { mergeEncoded, percentilesOf } from './histogram.js';
import {
  BENCH_SCHEMA,
  BENCH_SCHEMA_VERSION,
  type BenchHistograms,
  type BenchReport,
  type TimelinePoint,
} from './report.js';

/** Not a report this mq can read; the message says why. */
export class ReportFormatError extends Error {
  override name = 'ReportFormatError';
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that `value` (parsed JSON) is a bench report this version reads; `where` names it in errors. */
export function readReport(value: unknown, where: string): BenchReport {
  if (!isObject(value) || value.schema !== BENCH_SCHEMA) {
    throw new ReportFormatError(`${where}: not an mq bench report (no "schema": "${BENCH_SCHEMA}")`);
  }
  const v = value.schemaVersion;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ReportFormatError(`${where}: the report has no valid schemaVersion`);
  }
  if (v > BENCH_SCHEMA_VERSION) {
    throw new ReportFormatError(
      `${where}: report schema version ${v} is newer than this mq reads (${BENCH_SCHEMA_VERSION}); update mq`,
    );
  }
  for (const key of ['messages', 'throughput', 'connections', 'cpu', 'settings', 'histograms', 'errors']) {
    if (!isObject(value[key])) throw new ReportFormatError(`${where}: the report has no "${key}" object`);
  }
  if (!Array.isArray(value.timeline))
    throw new ReportFormatError(`${where}: the report has no "timeline" list`);
  return value as unknown as BenchReport;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function sumRecords<K extends string>(rs: Record<K, number>[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const r of rs) for (const k of Object.keys(r) as K[]) out[k] = (out[k] ?? 0) + r[k];
  return out;
}

function mergeTimelines(lists: TimelinePoint[][]): TimelinePoint[] {
  const by = new Map<number, TimelinePoint>();
  for (const list of lists) {
    for (const p of list) {
      const q = by.get(p.t);
      if (q === undefined) by.set(p.t, { ...p });
      else {
        q.sent += p.sent;
        q.received += p.received;
        q.errors += p.errors;
        // Per-second histograms are not kept: the highest p99 is an upper bound of the merged one.
        q.p99Ms = q.p99Ms === null ? p.p99Ms : p.p99Ms === null ? q.p99Ms : Math.max(q.p99Ms, p.p99Ms);
      }
    }
  }
  return [...by.values()].sort((a, b) => a.t - b.t);
}

function mergeHistograms(hs: BenchHistograms[]): BenchHistograms {
  const out: BenchHistograms = {};
  const keys = new Set<keyof BenchHistograms>();
  for (const h of hs) for (const k of Object.keys(h) as (keyof BenchHistograms)[]) keys.add(k);
  for (const k of keys) {
    const merged = mergeEncoded(hs.map((h) => h[k]));
    if (merged !== undefined) out[k] = merged;
  }
  return out;
}

/** One report from several (see the header). Throws ReportFormatError on an empty list. */
export function mergeReports(reports: readonly BenchReport[]): BenchReport {
  const first = reports[0];
  if (first === undefined) throw new ReportFormatError('nothing to merge');
  const histograms = mergeHistograms(reports.map((r) => r.histograms));
  const connected = sum(reports.map((r) => r.connections.connected));
  const perConn = reports.filter((r) => r.memory.perConnectionKiB !== null);
  const anyAcross = reports.some((r) => r.clock.acrossProcesses);
  const stopped = reports.find((r) => !r.outcome.completed);
  const message = reports.find((r) => r.outcome.message !== undefined)?.outcome.message;
  return {
    schema: BENCH_SCHEMA,
    schemaVersion: BENCH_SCHEMA_VERSION,
    tool: first.tool,
    runId: first.runId,
    host: first.host,
    startedAt: reports.map((r) => r.startedAt).sort()[0] ?? first.startedAt,
    durationSec: Math.max(...reports.map((r) => r.durationSec)),
    outcome: {
      completed: stopped === undefined,
      stopReason: stopped?.outcome.stopReason ?? first.outcome.stopReason,
      ...(message !== undefined ? { message } : {}),
    },
    settings: {
      ...first.settings,
      clients: sum(reports.map((r) => r.settings.clients)),
      pubs: sum(reports.map((r) => r.settings.pubs)),
      subs: sum(reports.map((r) => r.settings.subs)),
      workers: sum(reports.map((r) => r.settings.workers)),
    },
    connections: sumRecords(reports.map((r) => r.connections)),
    messages: sumRecords(reports.map((r) => r.messages)),
    // The runs were concurrent: rates add up.
    throughput: sumRecords(reports.map((r) => r.throughput)),
    latencyMs: percentilesOf(histograms.latency),
    serviceLatencyMs: percentilesOf(histograms.serviceLatency),
    sendLagMs: percentilesOf(histograms.sendLag),
    ackMs: percentilesOf(histograms.ack),
    connectMs: {
      tcp: percentilesOf(histograms.connectTcp),
      tls: percentilesOf(histograms.connectTls),
      connack: percentilesOf(histograms.connack),
      total: percentilesOf(histograms.connectTotal),
    },
    errors: sumRecords(reports.map((r) => r.errors)),
    cpu: {
      userSec: sum(reports.map((r) => r.cpu.userSec)),
      systemSec: sum(reports.map((r) => r.cpu.systemSec)),
      // The busiest generator: the one that may have been the limit.
      percentOfOneCore: Math.max(...reports.map((r) => r.cpu.percentOfOneCore)),
      cores: sum(reports.map((r) => r.cpu.cores)),
    },
    memory: {
      rssKiB: sum(reports.map((r) => r.memory.rssKiB)),
      rssMaxKiB: sum(reports.map((r) => r.memory.rssMaxKiB)),
      perConnectionKiB:
        perConn.length === 0 || connected === 0
          ? null
          : sum(perConn.map((r) => (r.memory.perConnectionKiB ?? 0) * r.connections.connected)) /
            sum(perConn.map((r) => r.connections.connected)),
    },
    clock: anyAcross
      ? {
          acrossProcesses: true,
          note:
            reports.find((r) => r.clock.note !== undefined)?.clock.note ??
            'latency of messages from other processes or machines is only as good as the sync of their clocks',
        }
      : { acrossProcesses: false },
    timeline: mergeTimelines(reports.map((r) => r.timeline)),
    histograms,
    sources: reports.flatMap(
      (r) =>
        r.sources ?? [
          {
            runId: r.runId,
            hostname: r.host.hostname,
            mode: r.settings.mode,
            startedAt: r.startedAt,
            durationSec: r.durationSec,
          },
        ],
    ),
  };
}

/** One figure of compareReports. */
export interface CompareRow {
  /** Dotted path in the report (`latencyMs.p99`), or a derived name (`errors.total`). */
  key: string;
  label: string;
  unit: 'msg/s' | 'msgs' | 'ms' | '%' | 'us/msg' | 'conns';
  a: number | null;
  b: number | null;
  /** b / a - 1 (0.1 = 10% more); null when either is missing or a is 0. */
  change: number | null;
  /** Which way is an improvement. */
  better: 'higher' | 'lower';
}

type Pick = (r: BenchReport) => number | null | undefined;

const ROWS: [string, string, CompareRow['unit'], CompareRow['better'], Pick][] = [
  ['throughput.sentPerSec', 'sent', 'msg/s', 'higher', (r) => r.throughput.sentPerSec],
  ['throughput.receivedPerSec', 'received', 'msg/s', 'higher', (r) => r.throughput.receivedPerSec],
  ['messages.sent', 'messages sent', 'msgs', 'higher', (r) => r.messages.sent],
  ['messages.received', 'messages received', 'msgs', 'higher', (r) => r.messages.received],
  ['messages.lost', 'lost', 'msgs', 'lower', (r) => r.messages.lost],
  ['messages.duplicated', 'duplicated', 'msgs', 'lower', (r) => r.messages.duplicated],
  ['messages.reordered', 'reordered', 'msgs', 'lower', (r) => r.messages.reordered],
  ['latencyMs.p50', 'latency p50', 'ms', 'lower', (r) => r.latencyMs?.p50],
  ['latencyMs.p90', 'latency p90', 'ms', 'lower', (r) => r.latencyMs?.p90],
  ['latencyMs.p99', 'latency p99', 'ms', 'lower', (r) => r.latencyMs?.p99],
  ['latencyMs.p999', 'latency p99.9', 'ms', 'lower', (r) => r.latencyMs?.p999],
  ['latencyMs.max', 'latency max', 'ms', 'lower', (r) => r.latencyMs?.max],
  ['ackMs.p50', 'ack p50', 'ms', 'lower', (r) => r.ackMs?.p50],
  ['ackMs.p99', 'ack p99', 'ms', 'lower', (r) => r.ackMs?.p99],
  ['connectMs.total.p50', 'connect p50', 'ms', 'lower', (r) => r.connectMs.total?.p50],
  ['connectMs.total.p99', 'connect p99', 'ms', 'lower', (r) => r.connectMs.total?.p99],
  ['connections.connected', 'connected', 'conns', 'higher', (r) => r.connections.connected],
  ['connections.failed', 'connect failures', 'conns', 'lower', (r) => r.connections.failed],
  ['errors.total', 'errors', 'msgs', 'lower', (r) => sum(Object.values(r.errors))],
  ['cpu.percentOfOneCore', 'mq bench CPU', '%', 'lower', (r) => r.cpu.percentOfOneCore],
  [
    'cpu.microsPerMessage',
    'mq bench CPU per message',
    'us/msg',
    'lower',
    (r) => {
      const n = Math.max(r.messages.sent, r.messages.received);
      return n > 0 ? ((r.cpu.userSec + r.cpu.systemSec) * 1e6) / n : null;
    },
  ],
];

/** The figures of two reports side by side with their change (rows missing from both are left out). */
export function compareReports(a: BenchReport, b: BenchReport): CompareRow[] {
  const out: CompareRow[] = [];
  for (const [key, label, unit, better, pick] of ROWS) {
    const va = pick(a) ?? null;
    const vb = pick(b) ?? null;
    if (va === null && vb === null) continue;
    const change = va === null || vb === null || va === 0 ? null : vb / va - 1;
    out.push({ key, label, unit, a: va, b: vb, change, better });
  }
  return out;
}
