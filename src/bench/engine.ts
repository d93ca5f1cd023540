/**
 * The load engine of `mq bench` and `npm run bench:broker`: one run, its workers, its phases.
 *
 *   const report = await runBench({ mode: 'e2e', target, pubs: 8, subs: 1 }, { signal, onProgress });
 *
 * or, step by step (what runBench does, and what bench/broker.mjs needs to take turns between brokers):
 *
 *   const run = await BenchSession.open(options, hooks);   // workers started, every client connected
 *   await run.run({ durationMs: 1000, record: false });    // warm-up
 *   await run.run({ durationMs: 10_000, record: true });   // measured
 *   const report = await run.close();                      // disconnect, merge, the report
 *
 * Each worker thread owns a share of the clients (settings.ts assignWorkers); counters live in
 * shared memory, histograms come back encoded and are merged here (added, never averaged).
 */
import { Worker } from 'node:worker_threads';
import { type BenchProgress, ReportBuilder } from './build-report.js';
import {
  allocateCounters,
  C_CONNECTED,
  C_FAILED,
  C_INFLIGHT,
  C_OPEN,
  C_RECEIVED,
  C_RECEIVED_REC,
  C_SENT,
  C_UNIQUE,
  type SharedCounters,
  sumCounter,
} from './counters.js';
import { nowMs } from './payload.js';
import type { BenchReport, StopReason } from './report.js';
import {
  assignWorkers,
  type BenchOptions,
  pubTopic,
  type ResolvedSettings,
  receiversOf,
  resolveSettings,
  subFilter,
} from './settings.js';
import { type FromShare, type Role, Share, type ShareInit, type ToShare } from './share.js';

export type { BenchProgress };

export interface BenchHooks {
  /** Aborting ends the run early (Ctrl-C): load stops, the report holds what was measured. */
  signal?: AbortSignal;
  /** Called once a second with the live figures (for a spinner line). */
  onProgress?: (p: BenchProgress) => void;
  /** The mq version for the report (default: package.json's). */
  toolVersion?: string;
  /** The worker script (default: dist/bench/worker.js next to this module). */
  workerUrl?: URL;
}

/** A phase of load: a duration or a count per publisher; recorded or warm-up. */
export interface PhaseRequest {
  durationMs?: number;
  count?: number;
  record: boolean;
  /**
   * false: the next phase follows at once, this one's messages still on their way (a warm-up
   * leading into the measurement, so that the broker's queues and the TCP streams are as the load
   * made them). Default true: the phase ends once what it sent has arrived (or the drain times out).
   */
  drain?: boolean;
}

interface Channel {
  send(m: ToShare): void;
  stop(): Promise<void>;
}

/** The worker script next to this module (dist/bench/worker.js; from the sources, the built one). */
function defaultWorkerUrl(): URL {
  const here = import.meta.url;
  // Run from src/ (tests): the TypeScript sources cannot be a worker; the build's copy can.
  if (here.endsWith('.ts')) return new URL('../../dist/bench/worker.js', here);
  // Both dist/bench/engine.js and the bundle (dist/cli/main.js as import.meta.url) resolve here.
  return new URL('../bench/worker.js', here);
}

const POLL_MS = 20;
/** How long a worker that sent its figures may take to end by itself before it is terminated. */
const WORKER_EXIT_MS = 2000;
/** During a phase: how often the counters are looked at (every connection lost?). */
const PHASE_POLL_MS = 250;

export class BenchSession {
  readonly settings: ResolvedSettings;
  private readonly shared: SharedCounters;
  private readonly workers: number;
  private readonly channels: Channel[] = [];
  private readonly builder: ReportBuilder;
  private readonly hooks: BenchHooks;
  private okPubs: number[] = [];
  private okSubs: number[] = [];
  /** Deliveries each publisher's message should make (its matching subscribers). */
  private deliveries: number[] = [];
  private pubTopics: string[];
  private subFilters: string[];
  private phaseId = 0;
  private phaseSent = 0;
  private connectedReplies: { role: Role; ok: number[]; firstError?: string }[] = [];
  private finals = 0;
  /** Worker threads that exited before sending their final figures. */
  private gone = 0;
  private fatal: string | undefined;
  private stopReason: StopReason | undefined;
  private recordStartMs: number | null = null;
  private progressTimer: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.stop('aborted');
  private closedReport: BenchReport | undefined;
  /** The last phase was not drained: the next one starts at once. */
  private followOn = false;
  /** Ends until()'s current wait early. */
  private wake: (() => void) | undefined;

  private constructor(settings: ResolvedSettings, hooks: BenchHooks) {
    this.settings = settings;
    this.hooks = hooks;
    this.workers = Math.max(1, settings.workers);
    const a = assignWorkers(settings, this.workers);
    this.pubTopics = a.pubWorker.map((w, i) => pubTopic(settings, i, w));
    this.subFilters = a.subWorker.map((w, j) => subFilter(settings, j, w));
    const windowed =
      settings.mode === 'e2e' && settings.qos === 0 && settings.rate === null && settings.window > 0;
    const shared = this.subFilters.some((f) => f.startsWith('$share/'));
    const cells =
      windowed && !shared && settings.subs * settings.pubs <= 1 << 22 ? settings.subs * settings.pubs : 0;
    this.shared = allocateCounters(this.workers, settings.pubs, cells);
    this.builder = new ReportBuilder(settings, this.workers, this.shared, hooks.toolVersion);
    const init = (worker: number): ShareInit => ({
      settings,
      worker,
      assignment: a,
      pubTopics: this.pubTopics,
      subFilters: this.subFilters,
      shared: this.shared,
    });
    if (settings.workers === 0) this.channels.push(this.inline(init(0)));
    else for (let w = 0; w < this.workers; w++) this.channels.push(this.thread(w, init(w), hooks.workerUrl));
  }

  /** Starts the workers and connects every client (subscribers first). Throws BenchSettingsError. */
  static async open(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchSession> {
    const runId = (Math.random() * 0x1_0000_0000) >>> 0;
    const session = new BenchSession(resolveSettings(options, runId), hooks);
    hooks.signal?.addEventListener('abort', session.onAbort, { once: true });
    if (hooks.signal?.aborted) session.stop('aborted');
    session.progressTimer = setInterval(() => session.progress(), 1000);
    session.progressTimer.unref();
    await session.connectAll();
    return session;
  }

  private inline(init: ShareInit): Channel {
    const share = new Share(init, (m) => setImmediate(() => this.onMessage(m)));
    return { send: (m) => share.handle(m), stop: async () => {} };
  }

  private thread(w: number, init: ShareInit, url: URL | undefined): Channel {
    const worker = new Worker(url ?? defaultWorkerUrl(), { workerData: init });
    let exited = false;
    worker.on('message', (m: FromShare) => this.onMessage(m));
    worker.on('error', (err) => this.onFatal(`worker ${w}: ${err.message}`));
    let final = false;
    worker.on('message', (m: FromShare) => {
      if (m.t === 'final') final = true;
    });
    worker.on('exit', (code) => {
      exited = true;
      if (final) return;
      this.gone++;
      this.onFatal(`worker ${w} exited (${code}) before the end of the run`);
    });
    return {
      send: (m) => {
        if (!exited) worker.postMessage(m);
      },
      stop: async () => {
        if (exited) return;
        // A worker that reported its figures ends by itself (src/bench/worker.ts); one that
        // did not, or that is still closing after WORKER_EXIT_MS, is terminated.
        const ended = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), final ? WORKER_EXIT_MS : 0);
        });
        if ((await Promise.race([ended, late])) === 'late') await worker.terminate();
        clearTimeout(timer);
      },
    };
  }

  private onMessage(m: FromShare): void {
    this.handleMessage(m);
    this.nudge();
  }

  private handleMessage(m: FromShare): void {
    switch (m.t) {
      case 'connected':
        this.connectedReplies.push(m);
        return;
      case 'phase-sent':
        if (m.id === this.phaseId) this.phaseSent++;
        return;
      case 'tick':
        this.builder.addTick(m);
        return;
      case 'final':
        this.finals++;
        this.builder.addFinal(m);
        return;
      case 'fatal':
        this.onFatal(m.message);
        return;
      default: {
        const never: never = m;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  private onFatal(message: string): void {
    if (this.fatal === undefined) {
      this.fatal = message;
      this.builder.error('internal error', `mq bench: internal error: ${message.split('\n')[0]}`);
    }
    this.stop('failed');
  }

  private broadcast(m: ToShare): void {
    for (const c of this.channels) c.send(m);
  }

  private stop(reason: StopReason): void {
    this.stopReason ??= reason;
    this.broadcast({ t: 'halt' });
    this.nudge();
  }

  /**
   * Waits for `cond`, the abort or `timeoutMs`; true when cond held. cond is checked on every
   * message from a worker and at least every `pollMs` (what only shared counters show).
   */
  private async until(
    cond: () => boolean,
    timeoutMs = Number.POSITIVE_INFINITY,
    stopOnAbort = true,
    pollMs: () => number = () => POLL_MS,
  ): Promise<boolean> {
    const deadline = nowMs() + timeoutMs;
    while (!cond()) {
      if (stopOnAbort && this.stopReason !== undefined) return false;
      const now = nowMs();
      if (now >= deadline) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            this.wake = undefined;
            resolve();
          },
          Math.min(pollMs(), deadline - now),
        );
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  /** A worker said something (or the run was stopped): whatever until() waits for may hold now. */
  private nudge(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private counter(slot: number): number {
    return sumCounter(this.shared, this.workers, slot);
  }

  // --- connecting -------------------------------------------------------------------------------

  private async connectRole(role: Role, receivers: number[][] | null): Promise<number[]> {
    const s = this.settings;
    const n = role === 'sub' ? s.subs : role === 'pub' ? s.pubs : s.mode === 'conn' ? s.clients : 0;
    if (n === 0) return [];
    this.connectedReplies = [];
    const rate = s.connectRate === null ? null : s.connectRate / this.workers;
    const concurrency = Math.max(1, Math.ceil(s.connectConcurrency / this.workers));
    this.broadcast({ t: 'connect', role, rate, concurrency, receivers });
    // Connecting goes on after an abort only until the replies come (each attempt is bounded).
    await this.until(
      () => this.connectedReplies.length === this.channels.length || this.fatal !== undefined,
      Number.POSITIVE_INFINITY,
      false,
    );
    const ok: number[] = [];
    for (const r of this.connectedReplies) {
      ok.push(...r.ok);
      if (r.firstError !== undefined) this.builder.firstError(r.firstError);
    }
    return ok.sort((a, b) => a - b);
  }

  private async connectAll(): Promise<void> {
    const s = this.settings;
    this.builder.connectStarted();
    this.okSubs = await this.connectRole('sub', null);
    if (s.mode === 'e2e' && this.okSubs.length === 0) {
      // No subscriber: publishing would measure nothing.
      this.builder.connectEnded(this.counter(C_CONNECTED));
      this.stopReason ??= 'connect-failed';
      return;
    }
    const live = this.subFilters.map((f, j) => (this.okSubs.includes(j) ? f : undefined));
    const reach = receiversOf(this.pubTopics, live);
    this.deliveries = reach.deliveries;
    this.okPubs = await this.connectRole('pub', this.shared.received !== null ? reach.subs : null);
    await this.connectRole('conn', null);
    this.builder.connectEnded(this.counter(C_CONNECTED));
    const needPubs = s.mode === 'pub' || s.mode === 'e2e';
    const needSubs = s.mode === 'sub' || s.mode === 'e2e';
    const unusable =
      (needPubs && this.okPubs.length === 0) ||
      (needSubs && this.okSubs.length === 0) ||
      (s.mode === 'conn' && this.counter(C_CONNECTED) === 0);
    if (unusable) this.stopReason ??= 'connect-failed';
  }

  /** Connections made so far, failed, and open now (all workers). */
  get connectionCounts(): { connected: number; failed: number; open: number } {
    return {
      connected: this.counter(C_CONNECTED),
      failed: this.counter(C_FAILED),
      open: this.counter(C_OPEN),
    };
  }

  /** True when the run can send load (enough connected, not stopped). */
  get usable(): boolean {
    return this.stopReason === undefined;
  }

  // --- phases -----------------------------------------------------------------------------------

  /** Expected deliveries so far (all phases) against distinct deliveries and acks still due. */
  private drained(): boolean {
    const s = this.settings;
    if (this.counter(C_INFLIGHT) > 0) return false;
    if (s.mode !== 'e2e') return true;
    const sentAll = new Float64Array(this.shared.sentAll);
    let expected = 0;
    for (const i of this.okPubs) expected += sentAll[i]! * (this.deliveries[i] ?? 0);
    return this.counter(C_UNIQUE) >= expected;
  }

  private everyConnectionLost(): boolean {
    return this.counter(C_OPEN) <= 0;
  }

  /**
   * Runs one phase: load for `durationMs` (or `count` messages per publisher, or in sub mode
   * `count` messages received), then waits for what is still on its way (bounded, and cut short
   * when nothing arrives for a second). Returns at once when the run cannot go on.
   */
  async run(req: PhaseRequest): Promise<void> {
    if (!this.usable) return;
    const s = this.settings;
    // Workers start together 20 ms from now; right after an undrained phase, at once (no gap).
    const startMs = nowMs() + (this.followOn ? 0 : 20);
    this.followOn = false;
    const endMs = req.durationMs !== undefined ? startMs + req.durationMs : Number.POSITIVE_INFINITY;
    const count = req.count ?? Number.POSITIVE_INFINITY;
    if (!Number.isFinite(endMs) && !Number.isFinite(count))
      throw new Error('a phase needs a duration or a count');
    this.phaseId++;
    this.phaseSent = 0;
    if (req.record && this.recordStartMs === null) this.recordStartMs = startMs;
    this.builder.phaseStarted(req.record);
    this.broadcast({
      t: 'phase',
      id: this.phaseId,
      startMs,
      endMs,
      count: s.mode === 'sub' ? Number.POSITIVE_INFINITY : count,
      record: req.record,
      recordStartMs: this.recordStartMs ?? startMs,
    });
    const received0 = this.counter(C_RECEIVED_REC);
    const subCount = s.mode === 'sub' && Number.isFinite(count);
    await this.until(
      () => {
        if (this.everyConnectionLost()) return true;
        if (subCount) return this.counter(C_RECEIVED_REC) - received0 >= count;
        // Every share has sent its part (count phases), and the time is up (duration phases).
        return this.phaseSent >= this.channels.length && (!Number.isFinite(endMs) || nowMs() >= endMs);
      },
      Number.POSITIVE_INFINITY,
      true,
      // The shares say when they have sent their part; between their messages, look at the
      // counters (connections lost, a sub-mode count) now and then, and at the phase's end.
      () => (subCount ? POLL_MS : Math.max(POLL_MS, Math.min(PHASE_POLL_MS, endMs - nowMs()))),
    );
    const sendingEnded = Math.min(nowMs(), endMs);
    if (this.everyConnectionLost()) this.stopReason ??= 'connections-lost';
    if (req.drain === false && this.stopReason === undefined) {
      // Every share has stopped on its own (its end time or count): the next phase takes over.
      this.followOn = true;
      this.builder.phaseEnded(req.record, Math.max(0, sendingEnded - startMs));
      return;
    }
    this.broadcast({ t: 'halt' });
    if (this.stopReason !== 'connections-lost') await this.drain();
    this.builder.phaseEnded(req.record, Math.max(0, sendingEnded - startMs));
  }

  private async drain(): Promise<void> {
    const limit =
      this.stopReason === 'aborted'
        ? Math.min(1000, this.settings.drainTimeoutMs)
        : this.settings.drainTimeoutMs;
    const deadline = nowMs() + limit;
    let last = -1;
    let lastChange = nowMs();
    await this.until(
      () => {
        if (this.drained() || this.everyConnectionLost() || nowMs() >= deadline) return true;
        const progress = this.counter(C_UNIQUE) - this.counter(C_INFLIGHT);
        if (progress !== last) {
          last = progress;
          lastChange = nowMs();
        }
        return nowMs() - lastChange > 1000;
      },
      limit + 100,
      false,
    );
  }

  /** conn mode: keeps the connections open (keepalive) for `durationMs`, or until aborted. */
  async hold(durationMs: number | null): Promise<void> {
    if (!this.usable) return;
    this.builder.phaseStarted(true);
    const t0 = nowMs();
    await this.until(() => this.everyConnectionLost() || (durationMs !== null && nowMs() - t0 >= durationMs));
    if (this.everyConnectionLost()) this.stopReason ??= 'connections-lost';
    else if (this.stopReason === 'aborted') this.stopReason = 'held';
    this.builder.phaseEnded(true, nowMs() - t0);
  }

  // --- the end ----------------------------------------------------------------------------------

  private progress(): void {
    const onProgress = this.hooks.onProgress;
    if (onProgress === undefined) return;
    onProgress(
      this.builder.progress({
        sent: this.counter(C_SENT),
        received: this.counter(C_RECEIVED),
        open: this.counter(C_OPEN),
      }),
    );
  }

  /** Disconnects every client, collects the workers' figures and builds the report. */
  async close(): Promise<BenchReport> {
    if (this.closedReport !== undefined) return this.closedReport;
    this.hooks.signal?.removeEventListener('abort', this.onAbort);
    if (this.progressTimer !== undefined) clearInterval(this.progressTimer);
    this.builder.closing();
    this.broadcast({ t: 'close', timeoutMs: 2000 });
    const all = await this.until(() => this.finals + this.gone >= this.channels.length, 10_000, false);
    if (!all) this.builder.error('internal error', 'mq bench: a worker did not report its figures in time');
    await Promise.all(this.channels.map((c) => c.stop()));
    this.closedReport = this.builder.build({
      stopReason: this.stopReason ?? 'finished',
      okPubs: this.okPubs,
      deliveries: this.deliveries,
    });
    return this.closedReport;
  }
}

/**
 * One whole run as the settings ask: connect, warm up, measure (or hold), disconnect. Resolves
 * with the report even when the run stopped early (aborted, broker gone, nothing connected).
 */
export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchReport> {
  const session = await BenchSession.open(options, hooks);
  try {
    const s = session.settings;
    if (s.mode === 'conn') {
      if (s.hold) await session.hold(s.durationSec === null ? null : s.durationSec * 1000);
    } else {
      // The warm-up leads straight into the measurement: nothing stops or empties in between.
      if (s.warmupSec > 0) await session.run({ durationMs: s.warmupSec * 1000, record: false, drain: false });
      const measured: PhaseRequest = { record: true };
      if (s.count !== null) measured.count = s.count;
      else if (s.durationSec !== null) measured.durationMs = s.durationSec * 1000;
      await session.run(measured);
    }
  } catch (err) {
    // The workers must not outlive the run.
    await session.close();
    throw err;
  }
  return session.close();
}
