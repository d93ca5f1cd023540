/**
 * Collects what the workers report during a run (ticks, finals, shared counters) and turns it into
 * the BenchReport (report.ts) and the live BenchProgress snapshots.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { describeTarget } from '../client/transport.js';
import {
  C_ACKED_REC,
  C_ATTEMPTED,
  C_CONNECTED,
  C_DUP_REC,
  C_ERRORS,
  C_FAILED,
  C_FOREIGN,
  C_GAPS,
  C_LOST,
  C_RECEIVED_REC,
  C_REORDERED_REC,
  C_SENT_REC,
  C_UNIQUE_REC,
  type SharedCounters,
  sumCounter,
} from './counters.js';
import { encodeHistogram, mergeEncoded, newHistogram, percentilesOf, Recorder } from './histogram.js';
import { formatRunId, nowMs } from './payload.js';
import {
  BENCH_SCHEMA,
  BENCH_SCHEMA_VERSION,
  type BenchHistograms,
  type BenchReport,
  type StopReason,
  type TimelinePoint,
} from './report.js';
import { type ResolvedSettings, reportSettings } from './settings.js';
import type { FromShare } from './share.js';

/** The live figures of a run, once a second (what a spinner line shows). */
export interface BenchProgress {
  stage: 'connecting' | 'warmup' | 'running' | 'draining' | 'holding' | 'closing';
  /** Seconds since the run started (connecting included). */
  elapsedSec: number;
  /** Totals so far, warm-up included. */
  sent: number;
  received: number;
  /** Over the last second. */
  sentPerSec: number;
  receivedPerSec: number;
  /** End-to-end p99 of the recorded messages so far. */
  p99Ms: number | null;
  errors: number;
  /** Connections open now. */
  connections: number;
}

type Tick = Extract<FromShare, { t: 'tick' }>;
type Final = Extract<FromShare, { t: 'final' }>;

interface Second {
  sent: number;
  received: number;
  errors: number;
  /** The workers' latency counts of this second, until every worker has reported it. */
  counts: Float64Array[];
  reports: number;
  p99Ms: number | null;
}

/** The URL of the target, without credentials: mqtt://host:port, wss://host:port/path, unix:///path. */
export function targetUrl(s: ResolvedSettings): string {
  const t = s.target;
  if (t.transport === 'unix') return `unix://${t.path ?? ''}`;
  return `${t.transport}://${describeTarget(t).replace(/^[a-z]+:\/\//, '')}`;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function rssKiBSelf(): number {
  return Math.round(process.memoryUsage.rss() / 1024);
}

export class ReportBuilder {
  private readonly t0 = nowMs();
  private readonly startedAt = new Date().toISOString();
  private stage: BenchProgress['stage'] = 'connecting';
  /** End-to-end latency of the whole run. */
  private readonly latency = new Recorder();
  /** Where one second's counts are added up for its p99 (emptied after). */
  private readonly second = new Recorder();
  private readonly seconds = new Map<number, Second>();
  private readonly finalHistograms: BenchHistograms[] = [];
  private readonly errors: Record<string, number> = {};
  private extraErrors = 0;
  private firstMessage: string | undefined;
  private acrossProcesses = false;
  /** sub mode, shared subscriptions: per group, run and publisher, its lowest, highest and distinct. */
  private readonly sharedStreams = new Map<string, { first: number; max: number; unique: number }>();
  private connectT0 = 0;
  private connectMs = 0;
  private rssBefore = 0;
  private rssAtClose = 0;
  private rssMax = 0;
  private recordedMs = 0;
  private cpuWallMs = 0;
  private cpu = { user: 0, system: 0 };
  private cpuMark: { usage: NodeJS.CpuUsage; at: number } | undefined;
  private last = { at: 0, sent: 0, received: 0 };

  constructor(
    private readonly s: ResolvedSettings,
    private readonly workers: number,
    private readonly shared: SharedCounters,
    private readonly toolVersion: string | undefined,
  ) {}

  private counter(slot: number): number {
    return sumCounter(this.shared, this.workers, slot);
  }

  addTick(m: Tick): void {
    let sec = this.seconds.get(m.sec);
    if (sec === undefined) {
      sec = { sent: 0, received: 0, errors: 0, counts: [], reports: 0, p99Ms: null };
      this.seconds.set(m.sec, sec);
    }
    sec.sent += m.sent;
    sec.received += m.received;
    sec.errors += m.errors;
    sec.reports++;
    if (m.latency !== undefined) {
      this.latency.addCounts(m.latency);
      sec.counts.push(m.latency);
    }
    // Every worker has reported this second: keep its p99, drop its counts.
    if (sec.reports >= this.workers) this.settle(sec);
  }

  private settle(sec: Second): void {
    if (sec.counts.length === 0) return;
    for (const c of sec.counts) this.second.addCounts(c);
    sec.p99Ms = this.second.count > 0 ? this.second.valueAtPercentile(99) / 1000 : null;
    this.second.clear();
    sec.counts = [];
  }

  addFinal(m: Final): void {
    this.finalHistograms.push(m.histograms);
    for (const [k, n] of Object.entries(m.errors)) this.errors[k] = (this.errors[k] ?? 0) + n;
    if (m.firstError !== undefined) this.firstError(m.firstError);
    if (m.acrossProcesses) this.acrossProcesses = true;
    for (const span of m.sharedSpans ?? []) {
      const key = `${span.group}\0${span.run}\0${span.stream}`;
      const seen = this.sharedStreams.get(key);
      if (seen === undefined)
        this.sharedStreams.set(key, { first: span.first, max: span.max, unique: span.unique });
      else {
        seen.first = Math.min(seen.first, span.first);
        seen.max = Math.max(seen.max, span.max);
        seen.unique += span.unique;
      }
    }
  }

  /**
   * sub mode: the messages of other runs' publishers that no member of a shared subscription got
   * (between the lowest and the highest sequence any member saw). A message delivered to two
   * members (a redelivery after a reconnect) counts as received once too many: never below 0.
   */
  private sharedGaps(): number {
    let n = 0;
    for (const g of this.sharedStreams.values()) n += Math.max(0, g.max - g.first + 1 - g.unique);
    return n;
  }

  /** An error of the run itself (not of a connection). */
  error(reason: string, message: string): void {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
    this.extraErrors++;
    this.firstError(message);
  }

  firstError(message: string): void {
    this.firstMessage ??= message;
  }

  connectStarted(): void {
    this.connectT0 = nowMs();
    this.rssBefore = rssKiBSelf();
    if (this.s.mode === 'conn') this.cpuStart();
  }

  connectEnded(_connected: number): void {
    this.connectMs = nowMs() - this.connectT0;
    this.stage = this.s.mode === 'conn' ? 'holding' : 'warmup';
    if (this.s.mode === 'conn') this.cpuStop();
  }

  phaseStarted(record: boolean): void {
    this.stage = this.s.mode === 'conn' ? 'holding' : record ? 'running' : 'warmup';
    if (record) this.cpuStart();
  }

  phaseEnded(record: boolean, sendingMs: number): void {
    if (!record) return;
    this.recordedMs += sendingMs;
    this.cpuStop();
  }

  closing(): void {
    this.stage = 'closing';
    this.rssAtClose = rssKiBSelf();
    this.rssMax = Math.max(this.rssMax, this.rssAtClose);
  }

  private cpuStart(): void {
    this.cpuMark = { usage: process.cpuUsage(), at: nowMs() };
  }

  private cpuStop(): void {
    const m = this.cpuMark;
    if (m === undefined) return;
    const d = process.cpuUsage(m.usage);
    this.cpu.user += d.user / 1e6;
    this.cpu.system += d.system / 1e6;
    this.cpuWallMs += nowMs() - m.at;
    this.cpuMark = undefined;
  }

  progress(live: { sent: number; received: number; open: number }): BenchProgress {
    const now = nowMs();
    this.rssMax = Math.max(this.rssMax, rssKiBSelf());
    const dt = this.last.at === 0 ? 0 : (now - this.last.at) / 1000;
    const p: BenchProgress = {
      stage: this.stage,
      elapsedSec: (now - this.t0) / 1000,
      sent: live.sent,
      received: live.received,
      sentPerSec: dt > 0 ? (live.sent - this.last.sent) / dt : 0,
      receivedPerSec: dt > 0 ? (live.received - this.last.received) / dt : 0,
      p99Ms: this.latency.count > 0 ? this.latency.valueAtPercentile(99) / 1000 : null,
      errors: this.counter(C_ERRORS) + this.extraErrors,
      connections: live.open,
    };
    this.last = { at: now, sent: live.sent, received: live.received };
    return p;
  }

  private timeline(): TimelinePoint[] {
    const out: TimelinePoint[] = [];
    for (const [t, sec] of [...this.seconds.entries()].sort((a, b) => a[0] - b[0])) {
      this.settle(sec);
      out.push({ t, sent: sec.sent, received: sec.received, p99Ms: sec.p99Ms, errors: sec.errors });
    }
    return out;
  }

  private histograms(): BenchHistograms {
    const out: BenchHistograms = {};
    if (this.latency.count > 0) {
      const h = newHistogram();
      this.latency.addTo(h);
      out.latency = encodeHistogram(h);
    }
    const keys: (keyof BenchHistograms)[] = [
      'serviceLatency',
      'sendLag',
      'ack',
      'connectTcp',
      'connectTls',
      'connack',
      'connectTotal',
    ];
    for (const k of keys) {
      const merged = mergeEncoded(this.finalHistograms.map((h) => h[k]));
      if (merged !== undefined) out[k] = merged;
    }
    return out;
  }

  /** The report, once every worker has sent its final figures. */
  build(end: { stopReason: StopReason; okPubs: number[]; deliveries: number[] }): BenchReport {
    const s = this.s;
    const c = (slot: number) => this.counter(slot);
    const sentRec = new Float64Array(this.shared.sentRec);
    const uniqueRec = c(C_UNIQUE_REC);
    let expected = 0;
    let lost = 0;
    if (s.mode === 'e2e') {
      for (const i of end.okPubs) expected += sentRec[i]! * (end.deliveries[i] ?? 0);
      lost = expected - uniqueRec;
    } else if (s.mode === 'sub') {
      lost = c(C_GAPS) + this.sharedGaps();
      expected = uniqueRec + lost;
    }
    const durationSec = this.recordedMs / 1000;
    const per = (n: number) => (durationSec > 0 ? n / durationSec : 0);
    const h = this.histograms();
    const connected = c(C_CONNECTED);
    const cpuSec = this.cpu.user + this.cpu.system;
    const report: BenchReport = {
      schema: BENCH_SCHEMA,
      schemaVersion: BENCH_SCHEMA_VERSION,
      tool: { name: 'mq', version: this.toolVersion ?? packageVersion() },
      runId: formatRunId(s.runId),
      host: {
        hostname: hostname(),
        platform: process.platform,
        cpus: availableParallelism(),
        node: process.version,
      },
      startedAt: this.startedAt,
      durationSec,
      outcome: {
        completed: end.stopReason === 'finished' || end.stopReason === 'held',
        stopReason: end.stopReason,
        ...(this.firstMessage !== undefined ? { message: this.firstMessage } : {}),
      },
      settings: reportSettings(s, targetUrl(s)),
      connections: {
        attempted: c(C_ATTEMPTED),
        connected,
        failed: c(C_FAILED),
        lost: c(C_LOST),
        ratePerSec: this.connectMs > 0 ? connected / (this.connectMs / 1000) : 0,
      },
      messages: {
        sent: c(C_SENT_REC),
        acknowledged: c(C_ACKED_REC),
        expected,
        received: c(C_RECEIVED_REC),
        lost,
        duplicated: c(C_DUP_REC),
        reordered: c(C_REORDERED_REC),
        foreign: c(C_FOREIGN),
      },
      throughput: {
        sentPerSec: per(c(C_SENT_REC)),
        receivedPerSec: per(c(C_RECEIVED_REC)),
        acknowledgedPerSec: per(c(C_ACKED_REC)),
      },
      latencyMs: percentilesOf(h.latency),
      serviceLatencyMs: percentilesOf(h.serviceLatency),
      sendLagMs: percentilesOf(h.sendLag),
      ackMs: percentilesOf(h.ack),
      connectMs: {
        tcp: percentilesOf(h.connectTcp),
        tls: percentilesOf(h.connectTls),
        connack: percentilesOf(h.connack),
        total: percentilesOf(h.connectTotal),
      },
      errors: { ...this.errors },
      cpu: {
        userSec: this.cpu.user,
        systemSec: this.cpu.system,
        percentOfOneCore: this.cpuWallMs > 0 ? (100 * cpuSec) / (this.cpuWallMs / 1000) : 0,
        cores: availableParallelism(),
      },
      memory: {
        rssKiB: this.rssAtClose,
        rssMaxKiB: this.rssMax,
        perConnectionKiB:
          s.mode === 'conn' && connected > 0 ? (this.rssAtClose - this.rssBefore) / connected : null,
      },
      clock: this.acrossProcesses
        ? {
            acrossProcesses: true,
            note: 'latency of messages from other processes or machines is only as good as the sync of their clocks',
          }
        : { acrossProcesses: false },
      timeline: this.timeline(),
      histograms: h,
    };
    return report;
  }
}
