/**
 * A worker's share of a bench run: the connections it owns (some publishers, subscribers or plain
 * connections), driven by messages from the engine (src/bench/engine.ts). The same class runs in a
 * worker thread (src/bench/worker.ts) or, with `workers: 0`, in the calling thread.
 *
 * Live counters go to shared memory (counters.ts); latency of each second goes to the engine as
 * histogram counts (a tick), the other distributions once, at the end (final), encoded. Acks
 * queued while reading are written once per event-loop turn, and the publishers held back by the
 * socket, the window or their in-flight ids are pumped again in that same turn.
 */
import { SaltedPasswords } from '../auth/scram.js';
import { escapeForTerminal } from '../cli/escape.js';
import { encode, type ProtocolVersion } from '../protocol/index.js';
import {
  ackTemplate,
  BenchConnection,
  ConnectFailure,
  type ConnectionEvents,
  type ConnectParams,
  type ConnectTimes,
} from './connection.js';
import {
  C_ATTEMPTED,
  C_CONNECTED,
  C_ERRORS,
  C_FAILED,
  C_FOREIGN,
  C_GAPS,
  C_LOST,
  C_OPEN,
  counterBlock,
  type SharedCounters,
} from './counters.js';
import { encodeHistogram, newHistogram, Recorder } from './histogram.js';
import { nowMs } from './payload.js';
import { type Phase, Publisher, type PublisherContext } from './publisher.js';
import type { BenchHistograms } from './report.js';
import { OpenLoopSchedule } from './schedule.js';
import {
  type Assignment,
  connClientId,
  pubClientId,
  type ResolvedSettings,
  subClientId,
} from './settings.js';
import { type StreamSpan, Subscriber, type SubscriberContext } from './subscriber.js';

export type Role = 'sub' | 'pub' | 'conn';

/**
 * How often publishers waiting for subscribers in another thread look again (closed-loop QoS 0
 * window). Each look wakes the thread; 5 ms wakes it 200 times a second and still tops up a
 * 2000-message window before it runs dry at up to 400k messages a second per publisher.
 */
const WINDOW_POLL_MS = 5;

export interface ShareInit {
  settings: ResolvedSettings;
  worker: number;
  assignment: Assignment;
  /** Publish topic of every publisher, subscription filter of every subscriber (whole run). */
  pubTopics: string[];
  subFilters: string[];
  shared: SharedCounters;
}

/** Engine -> share. */
export type ToShare =
  | {
      t: 'connect';
      role: Role;
      /** Connections per second for this share, or null. */
      rate: number | null;
      concurrency: number;
      /** Publishers: the subscribers each one reaches (closed-loop QoS 0 window), else null. */
      receivers: number[][] | null;
    }
  | {
      t: 'phase';
      id: number;
      startMs: number;
      endMs: number;
      count: number;
      record: boolean;
      /** When the first recorded phase started (ticks count seconds from it). */
      recordStartMs: number;
    }
  | { t: 'halt' }
  | { t: 'close'; timeoutMs: number };

/** Share -> engine. */
export type FromShare =
  | { t: 'connected'; role: Role; ok: number[]; firstError?: string }
  | { t: 'phase-sent'; id: number }
  | {
      t: 'tick';
      sec: number;
      sent: number;
      received: number;
      errors: number;
      /** This second's end-to-end latency as (slot, count) pairs (Recorder.takeCounts). */
      latency?: Float64Array;
    }
  | {
      t: 'final';
      errors: Record<string, number>;
      firstError?: string;
      histograms: BenchHistograms;
      acrossProcesses: boolean;
      /**
       * sub mode, members of shared subscriptions: what each saw of each publisher's sequence. A
       * member sees only its share, so the group's loss is counted from all members together
       * (build-report.ts), not from one member's gaps.
       */
      sharedSpans?: (StreamSpan & { group: string })[];
    }
  | { t: 'fatal'; message: string };

export class Share {
  private readonly s: ResolvedSettings;
  private readonly counters: Float64Array;
  private readonly received: Int32Array | null;
  private readonly pubs: Publisher[] = [];
  private readonly subs: Subscriber[] = [];
  private readonly connections: BenchConnection[] = [];
  private readonly errors: Record<string, number> = {};
  private firstError: string | undefined;
  private readonly tick = { sent: 0, received: 0, errors: 0 };
  private readonly latency = new Recorder();
  private readonly service: Recorder | null;
  private readonly cumulative = {
    sendLag: new Recorder(),
    ack: new Recorder(),
    connectTcp: new Recorder(),
    connectTls: new Recorder(),
    connack: new Recorder(),
    connectTotal: new Recorder(),
  };
  private readonly clock = { acrossProcesses: false };
  private readonly pubCtx: PublisherContext;
  private readonly subCtx: SubscriberContext;
  private readonly pubrel: Buffer;
  private phase: Phase = { active: false, record: false, endMs: 0, count: 0, schedule: null };
  private phaseId = -1;
  private phaseSentPosted = true;
  private readonly dirty: BenchConnection[] = [];
  private turnScheduled = false;
  private timers = new Set<NodeJS.Timeout>();
  private openTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickSec = 0;
  private recordStartMs = 0;
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;
  /** --auth-method: the SCRAM SaltedPassword, derived once per salt for this run's connections. */
  private readonly salted: SaltedPasswords | undefined;

  constructor(
    private readonly init: ShareInit,
    private readonly post: (m: FromShare) => void,
  ) {
    const s = init.settings;
    this.s = s;
    this.counters = counterBlock(init.shared, init.worker);
    this.received = init.shared.received ? new Int32Array(init.shared.received) : null;
    this.service = s.rate !== null ? new Recorder() : null;
    const v: ProtocolVersion = s.version;
    this.pubrel = ackTemplate('PUBREL', v);
    const { authMethod, password } = s.target;
    if (authMethod !== undefined && password !== undefined)
      this.salted = new SaltedPasswords(authMethod, Buffer.from(password).toString('utf8'));
    const error = (reason: string) => this.error(reason);
    this.pubCtx = {
      settings: s,
      counters: this.counters,
      sentAll: new Float64Array(init.shared.sentAll),
      sentRec: new Float64Array(init.shared.sentRec),
      received: this.received,
      sendLag: this.cumulative.sendLag,
      ack: this.cumulative.ack,
      tick: this.tick,
      error,
    };
    this.subCtx = {
      settings: s,
      counters: this.counters,
      received: this.received,
      latency: this.latency,
      service: this.service,
      puback: ackTemplate('PUBACK', v),
      pubrec: ackTemplate('PUBREC', v),
      pubcomp: ackTemplate('PUBCOMP', v),
      tick: this.tick,
      recording: () => this.phase.active && this.phase.record,
      clock: this.clock,
      error,
    };
    this.keepalive = setInterval(() => this.keepConnectionsAlive(), 1000);
  }

  handle(m: ToShare): void {
    switch (m.t) {
      case 'connect':
        this.connectRole(m.role, m.rate, m.concurrency, m.receivers).then(
          (ok) => this.post({ t: 'connected', role: m.role, ok, ...this.firstErrorField() }),
          (err) => this.post({ t: 'fatal', message: String((err as Error)?.stack ?? err) }),
        );
        return;
      case 'phase':
        this.startPhase(m);
        return;
      case 'halt':
        this.stopSending();
        return;
      case 'close':
        this.close(m.timeoutMs).catch((err) =>
          this.post({ t: 'fatal', message: String((err as Error)?.stack ?? err) }),
        );
        return;
      default: {
        const never: never = m;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  private firstErrorField(): { firstError?: string } {
    return this.firstError === undefined ? {} : { firstError: this.firstError };
  }

  /** Counts a failure under `reason`; keeps the first message in words. */
  error(reason: string, message?: string): void {
    const key = escapeForTerminal(reason);
    this.errors[key] = (this.errors[key] ?? 0) + 1;
    this.counters[C_ERRORS]!++;
    this.tick.errors++;
    if (message !== undefined) this.firstError ??= escapeForTerminal(message);
  }

  // --- connecting -------------------------------------------------------------------------------

  private mine(role: Role): number[] {
    const a = this.init.assignment;
    const list = role === 'sub' ? a.subWorker : role === 'pub' ? a.pubWorker : a.connWorker;
    const out: number[] = [];
    list.forEach((w, i) => {
      if (w === this.init.worker) out.push(i);
    });
    return out;
  }

  /** Opens this share's connections of `role`, at most `concurrency` at once, at most `rate` a second. */
  private connectRole(
    role: Role,
    rate: number | null,
    concurrency: number,
    receivers: number[][] | null,
  ): Promise<number[]> {
    const items = this.mine(role);
    const ok: number[] = [];
    if (items.length === 0) return Promise.resolve(ok);
    const t0 = nowMs();
    let next = 0;
    let pending = 0;
    let settled = 0;
    let waiting = false;
    return new Promise((resolve) => {
      const launch = () => {
        while (next < items.length && pending < concurrency && !this.closed) {
          if (rate !== null) {
            const due = t0 + (next * 1000) / rate;
            const wait = due - nowMs();
            if (wait > 0) {
              if (!waiting) {
                waiting = true;
                this.later(() => {
                  waiting = false;
                  launch();
                }, wait);
              }
              return;
            }
          }
          const index = items[next++]!;
          pending++;
          this.connectOne(role, index, receivers).then((done) => {
            pending--;
            settled++;
            if (done) ok.push(index);
            if (settled === items.length || this.closed) resolve(ok.sort((a, b) => a - b));
            else launch();
          });
        }
      };
      launch();
    });
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** One connection: dial, CONNECT, and SUBSCRIBE for a subscriber. Resolves true when usable. */
  private async connectOne(role: Role, index: number, receivers: number[][] | null): Promise<boolean> {
    const s = this.s;
    const id =
      role === 'sub'
        ? subClientId(s, index)
        : role === 'pub'
          ? pubClientId(s, index)
          : connClientId(s, index);
    const conn = new BenchConnection(id, s.version, this.events(role));
    this.counters[C_ATTEMPTED]!++;
    const params: ConnectParams = {
      target: s.target,
      version: s.version,
      clean: s.clean,
      keepalive: s.keepalive,
      sessionExpiry: s.sessionExpiry,
      timeoutMs: s.connectTimeoutMs,
      salted: this.salted,
    };
    let times: ConnectTimes;
    try {
      times = await conn.connect(params);
    } catch (err) {
      this.counters[C_FAILED]!++;
      if (err instanceof ConnectFailure) this.error(err.reason, err.message);
      else this.error('connect error', String(err));
      return false;
    }
    this.recordConnect(times);
    this.counters[C_CONNECTED]!++;
    this.counters[C_OPEN]!++;
    conn.lastWriteMs = nowMs();
    this.connections.push(conn);
    try {
      if (role === 'sub') {
        conn.slot = this.subs.length;
        this.subs.push(new Subscriber(index, conn, this.subCtx));
        await conn.subscribe(this.init.subFilters[index]!, s.qos, s.connectTimeoutMs);
      } else if (role === 'pub') {
        conn.slot = this.pubs.length;
        const topic = this.init.pubTopics[index]!;
        this.pubs.push(new Publisher(index, conn, topic, receivers?.[index] ?? [], this.pubCtx));
      }
    } catch (err) {
      if (err instanceof ConnectFailure) this.error(err.reason, err.message);
      else this.error('setup failed', err instanceof Error ? err.message : String(err));
      if (role === 'sub') this.subs.pop();
      conn.destroy();
      this.counters[C_OPEN]!--;
      return false;
    }
    return true;
  }

  private recordConnect(t: ConnectTimes): void {
    const c = this.cumulative;
    if (t.tcpMs !== null) c.connectTcp.record(t.tcpMs * 1000);
    if (t.tlsMs !== null) c.connectTls.record(t.tlsMs * 1000);
    c.connack.record(t.connackMs * 1000);
    c.connectTotal.record(t.totalMs * 1000);
  }

  private events(role: Role): ConnectionEvents {
    const onRead = (conn: BenchConnection) => {
      // A turn only when it has work: acks to write, or publishers here to pump. (A QoS 0
      // subscriber alone in its thread reads without one: one poll of the event loop per read.)
      if (conn.hasAcks) this.markDirty(conn);
      else if (this.pubs.length > 0) this.scheduleTurn();
    };
    const onLost = (conn: BenchConnection, reason: string) => this.lost(conn, reason, role);
    const ignore = () => {};
    if (role === 'sub') {
      return {
        onPublish: (conn, buf, start, hl, end, now) =>
          this.subs[conn.slot]!.onPublish(buf, start, hl, end, now),
        onAck: (conn, type, id) => this.subs[conn.slot]!.onAck(type, id),
        onRead,
        onDrain: ignore,
        onLost,
      };
    }
    if (role === 'pub') {
      return {
        onPublish: () => this.counters[C_FOREIGN]!++,
        onAck: (conn, type, id, rc, now) => this.pubs[conn.slot]!.onAck(type, id, rc, now, this.pubrel),
        onRead,
        onDrain: (conn) => {
          const p = this.pubs[conn.slot];
          if (p === undefined) return;
          p.release();
          p.waiting = true;
          this.scheduleTurn();
        },
        onLost,
      };
    }
    return { onPublish: ignore, onAck: ignore, onRead: ignore, onDrain: ignore, onLost };
  }

  private lost(conn: BenchConnection, reason: string, role: Role): void {
    this.counters[C_OPEN]!--;
    this.counters[C_LOST]!++;
    this.error(reason);
    if (role === 'pub') {
      const unacked = this.pubs[conn.slot]?.lost() ?? 0;
      for (let i = 0; i < unacked; i++) this.error('not acknowledged: connection lost');
    }
    if (role === 'sub' && this.received !== null) {
      // A subscriber gone: no publisher waits for it any more (its row reads "far ahead").
      const sub = this.subs[conn.slot];
      const pubs = this.s.pubs;
      if (sub !== undefined) this.received.fill(0x7fffffff, sub.index * pubs, (sub.index + 1) * pubs);
    }
  }

  private keepConnectionsAlive(): void {
    const ka = this.s.keepalive * 1000;
    if (ka === 0) return;
    const now = nowMs();
    for (const c of this.connections) {
      if (!c.open) continue;
      if (c.wrote) {
        c.wrote = false;
        c.lastWriteMs = now;
      } else if (now - c.lastWriteMs >= ka * 0.75) {
        c.ping();
        c.wrote = false;
        c.lastWriteMs = now;
      }
    }
  }

  // --- sending ----------------------------------------------------------------------------------

  private startPhase(m: Extract<ToShare, { t: 'phase' }>): void {
    const s = this.s;
    this.phaseId = m.id;
    this.phaseSentPosted = false;
    const schedule = s.rate !== null && s.pubs > 0 ? new OpenLoopSchedule(s.rate, s.pubs, m.startMs) : null;
    this.phase = { active: false, record: m.record, endMs: m.endMs, count: m.count, schedule };
    for (const p of this.pubs) {
      // Open loop with a duration: exactly the messages scheduled before its end.
      const cap =
        schedule !== null && Number.isFinite(m.endMs)
          ? schedule.countWithin(p.index, m.endMs - m.startMs)
          : Number.POSITIVE_INFINITY;
      p.startPhase(cap);
    }
    if (m.record && this.tickTimer === undefined) {
      this.recordStartMs = m.recordStartMs;
      this.armTick();
    }
    this.later(() => this.beginPhase(), Math.max(0, m.startMs - nowMs()));
  }

  private beginPhase(): void {
    const phase = this.phase;
    if (this.phaseSentPosted || this.closed) return; // halted before it began
    // Active (recording, for a sub-mode subscriber) until the engine halts it.
    phase.active = true;
    if (this.pubs.length === 0) {
      this.postPhaseSent();
      return;
    }
    if (Number.isFinite(phase.endMs))
      this.later(() => this.stopSending(), Math.max(0, phase.endMs - nowMs()));
    if (phase.schedule !== null) this.openTick();
    else {
      this.pumpAll(false);
      if (this.received !== null && this.remoteReceivers()) {
        // Publishers waiting for subscribers in other threads: nothing wakes them but time.
        this.pollTimer = setInterval(() => this.pumpAll(true), WINDOW_POLL_MS);
      }
    }
  }

  /** Does a publisher of this share wait for a subscriber another share owns (window)? */
  private remoteReceivers(): boolean {
    const subWorker = this.init.assignment.subWorker;
    return this.pubs.some((p) => p.receivers.some((j) => subWorker[j] !== this.init.worker));
  }

  private pumpAll(onlyWaiting: boolean): void {
    const now = nowMs();
    const phase = this.phase;
    let again = false;
    for (const p of this.pubs) {
      if (onlyWaiting && !p.waiting) continue;
      p.pump(now, phase);
      again ||= p.again;
    }
    this.checkCount();
    if (again) this.scheduleTurn();
  }

  /** Open loop: send what is due, then sleep until the next message is. */
  private openTick = (): void => {
    this.openTimer = undefined;
    const phase = this.phase;
    if (!phase.active) return;
    const now = nowMs();
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.pubs) {
      p.pump(now, phase);
      const due = p.nextDueMs(phase);
      if (due < next) next = due;
    }
    this.checkCount();
    if (next !== Number.POSITIVE_INFINITY && phase.active) {
      this.openTimer = setTimeout(this.openTick, Math.max(0, next - nowMs()));
    }
  };

  /** A count phase is sent once every publisher has sent its count. */
  private checkCount(): void {
    const phase = this.phase;
    if (!phase.active || !Number.isFinite(phase.count)) return;
    for (const p of this.pubs) if (p.conn.open && p.sentInPhase < phase.count) return;
    this.stopSending();
  }

  private stopSending(): void {
    this.phase.active = false;
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    this.openTimer = undefined;
    this.pollTimer = undefined;
    this.postPhaseSent();
  }

  private postPhaseSent(): void {
    if (this.phaseSentPosted) return;
    this.phaseSentPosted = true;
    this.post({ t: 'phase-sent', id: this.phaseId });
  }

  private markDirty(conn: BenchConnection): void {
    if (!conn.dirty) {
      conn.dirty = true;
      this.dirty.push(conn);
    }
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(this.turn);
  }

  /** Once per event-loop turn with reads: flush the acks, pump the publishers held back. */
  private turn = (): void => {
    this.turnScheduled = false;
    for (const c of this.dirty) {
      c.dirty = false;
      c.flushAcks();
    }
    this.dirty.length = 0;
    const phase = this.phase;
    if (!phase.active) return;
    let any = false;
    let again = false;
    const now = nowMs();
    for (const p of this.pubs) {
      if (!p.waiting) continue;
      any = true;
      p.pump(now, phase);
      again ||= p.again;
    }
    if (!any) return;
    this.checkCount();
    if (again) this.scheduleTurn();
    if (phase.schedule !== null && this.openTimer === undefined && phase.active) this.openTick();
  };

  // --- ticks and the end ------------------------------------------------------------------------

  private armTick(): void {
    const at = this.recordStartMs + (this.tickSec + 1) * 1000;
    this.tickTimer = setTimeout(
      () => {
        this.postTick();
        this.tickSec++;
        this.armTick();
      },
      Math.max(0, at - nowMs()),
    );
  }

  private postTick(): void {
    const latency = this.latency.count > 0 ? this.latency.takeCounts() : undefined;
    const t = this.tick;
    this.post({
      t: 'tick',
      sec: this.tickSec,
      sent: t.sent,
      received: t.received,
      errors: t.errors,
      ...(latency ? { latency } : {}),
    });
    t.sent = 0;
    t.received = 0;
    t.errors = 0;
  }

  private async close(timeoutMs: number): Promise<void> {
    this.stopSending();
    this.closed = true;
    clearInterval(this.keepalive);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.s.retain) this.clearRetained();
    let unacked = 0;
    for (const p of this.pubs) unacked += p.lost();
    for (let i = 0; i < unacked; i++) this.error('not acknowledged');
    // The acks queued in this turn go out with the DISCONNECT.
    await Promise.all(this.connections.map((c) => c.end(timeoutMs)));
    if (this.tickTimer !== undefined) {
      clearTimeout(this.tickTimer);
      this.postTick();
    }
    let gaps = 0;
    const sharedSpans: (StreamSpan & { group: string })[] = [];
    for (const sub of this.subs) {
      const filter = this.init.subFilters[sub.index]!;
      if (filter.startsWith('$share/'))
        for (const span of sub.spans()) sharedSpans.push({ group: filter, ...span });
      else gaps += sub.gaps();
    }
    this.counters[C_GAPS] = gaps;
    const histograms: BenchHistograms = {};
    const put = (key: keyof BenchHistograms, r: Recorder | null) => {
      if (r === null || r.count === 0) return;
      const h = newHistogram();
      r.drainInto(h);
      histograms[key] = encodeHistogram(h);
    };
    put('serviceLatency', this.service);
    for (const key of Object.keys(this.cumulative) as (keyof typeof this.cumulative)[])
      put(key, this.cumulative[key]);
    this.post({
      t: 'final',
      errors: this.errors,
      ...this.firstErrorField(),
      histograms,
      acrossProcesses: this.clock.acrossProcesses,
      ...(sharedSpans.length > 0 ? { sharedSpans } : {}),
    });
  }

  /** retain: an empty retained message on each topic, so the next run does not receive this one's. */
  private clearRetained(): void {
    for (const p of this.pubs) {
      if (!p.conn.open) continue;
      const topic = this.init.pubTopics[p.index]!;
      p.conn.write(
        encode(
          { type: 'PUBLISH', dup: false, qos: 0, retain: true, topic, payload: Buffer.alloc(0) },
          this.s.version,
        ),
      );
    }
  }
}
