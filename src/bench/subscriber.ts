/**
 * A subscriber of the load generator: reads the mq header of every PUBLISH it gets (from the raw
 * bytes, no decode), tracks each publisher's sequence (SequenceTracker), records end-to-end latency
 * and answers QoS 1/2 from pre-encoded acks (queued, written once per turn).
 */
import type { BenchConnection } from './connection.js';
import {
  C_DUP_REC,
  C_FOREIGN,
  C_RECEIVED,
  C_RECEIVED_REC,
  C_REORDERED_REC,
  C_UNIQUE,
  C_UNIQUE_REC,
} from './counters.js';
import type { Recorder } from './histogram.js';
import {
  FLAG_RECORDED,
  hasHeader,
  OFF_FLAGS,
  OFF_LAG,
  OFF_PUBLISHER,
  OFF_RUN,
  OFF_SEQ,
  OFF_TIME,
  readF64,
  readU32,
} from './payload.js';
import { DUPLICATE, REORDERED, SequenceTracker } from './sequence.js';
import type { ResolvedSettings } from './settings.js';

export interface SubscriberContext {
  settings: ResolvedSettings;
  counters: Float64Array;
  /** Closed-loop QoS 0 window: messages received per (subscriber, publisher), or null. */
  received: Int32Array | null;
  /** End-to-end latency of recorded messages (drained every tick). */
  latency: Recorder;
  /** Open loop: latency from the actual write; null in closed loop (it equals latency there). */
  service: Recorder | null;
  puback: Buffer;
  pubrec: Buffer;
  pubcomp: Buffer;
  /** Recorded messages received this second (the worker's tick). */
  tick: { received: number };
  /** sub mode: is the current phase recorded? (Other runs' messages count only then.) */
  recording(): boolean;
  /** Set when latency came from another process's clock (sub mode). */
  clock: { acrossProcesses: boolean };
  /** Counts a failure under `reason`. */
  error(reason: string): void;
}

/** What one subscriber saw of one publisher's sequence (sub mode). */
export interface StreamSpan {
  run: number;
  stream: number;
  first: number;
  max: number;
  unique: number;
}

export class Subscriber {
  /** This run's publishers, by index. */
  private readonly own: SequenceTracker;
  /** Other runs' publishers (sub mode), by run id. */
  private readonly others = new Map<number, SequenceTracker>();
  private readonly runId: number;
  private readonly pubs: number;
  private readonly v5: boolean;
  private readonly otherRuns: boolean;
  private readonly qos: number;

  constructor(
    readonly index: number,
    readonly conn: BenchConnection,
    private readonly ctx: SubscriberContext,
  ) {
    const s = ctx.settings;
    this.own = new SequenceTracker({ fromZero: true, streams: Math.max(1, s.pubs) });
    this.runId = s.runId >>> 0;
    this.pubs = s.pubs;
    this.v5 = s.version === 5;
    this.otherRuns = s.mode === 'sub';
    this.qos = s.qos;
  }

  /** One PUBLISH, `buf[start, end)` with a fixed header of `hl` bytes, read at `now`. */
  onPublish(buf: Buffer, start: number, hl: number, end: number, now: number): void {
    const ctx = this.ctx;
    const c = ctx.counters;
    c[C_RECEIVED]!++;
    const qos = (buf[start]! >> 1) & 3;
    let p = start + hl;
    p += 2 + ((buf[p]! << 8) | buf[p + 1]!);
    if (qos > 0) {
      this.conn.queueAck(qos === 1 ? ctx.puback : ctx.pubrec, (buf[p]! << 8) | buf[p + 1]!);
      p += 2;
    }
    if (this.v5) {
      // Skip the properties (a varint length, then that many bytes).
      let len = 0;
      let mult = 1;
      let b: number;
      do {
        b = buf[p++]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
      } while (b & 0x80 && p < end);
      p += len;
    }
    if (!hasHeader(buf, p, end - p)) {
      c[C_FOREIGN]!++;
      return;
    }
    const run = readU32(buf, p + OFF_RUN);
    const pub = readU32(buf, p + OFF_PUBLISHER);
    const recorded = (buf[p + OFF_FLAGS]! & FLAG_RECORDED) !== 0;
    let tracker: SequenceTracker;
    if (run === this.runId && pub < this.pubs) {
      tracker = this.own;
      // This run's publishers and subscribers use one QoS: anything else is the broker's doing.
      if (qos !== this.qos) ctx.error(`received QoS ${qos}, expected ${this.qos}`);
      if (ctx.received !== null) ctx.received[this.index * this.pubs + pub]!++;
    } else if (this.otherRuns) {
      // Another machine's (or process's) publishers; their recorded messages count while this
      // run records.
      if (!recorded || !ctx.recording()) return;
      tracker = this.other(run);
      ctx.clock.acrossProcesses = true;
    } else {
      c[C_FOREIGN]!++;
      return;
    }
    const arrival = tracker.add(pub, readU32(buf, p + OFF_SEQ));
    if (arrival !== DUPLICATE) c[C_UNIQUE]!++;
    if (!recorded) return;
    c[C_RECEIVED_REC]!++;
    ctx.tick.received++;
    if (arrival === DUPLICATE) {
      c[C_DUP_REC]!++;
      return;
    }
    c[C_UNIQUE_REC]!++;
    if (arrival === REORDERED) c[C_REORDERED_REC]!++;
    const late = (now - readF64(buf, p + OFF_TIME)) * 1000;
    ctx.latency.record(late);
    ctx.service?.record(late - readU32(buf, p + OFF_LAG));
  }

  /** PUBREL (QoS 2 from the broker): answer PUBCOMP. */
  onAck(type: number, id: number): void {
    if (type === 6) this.conn.queueAck(this.ctx.pubcomp, id);
  }

  private other(run: number): SequenceTracker {
    let t = this.others.get(run);
    if (t === undefined) {
      t = new SequenceTracker({ fromZero: false });
      this.others.set(run, t);
    }
    return t;
  }

  /** sub mode: per other run's publisher, what this subscriber saw of its sequence. */
  spans(): StreamSpan[] {
    const out: StreamSpan[] = [];
    for (const [run, t] of this.others) for (const span of t.spans()) out.push({ run, ...span });
    return out;
  }

  /** Sequence gaps of other runs' publishers: their messages that never arrived (sub mode). */
  gaps(): number {
    let n = 0;
    for (const t of this.others.values()) n += t.gaps();
    return n;
  }
}
