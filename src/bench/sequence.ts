/**
 * Per-publisher sequence tracking at a receiver: which sequence numbers arrived, to count
 * duplicates, late (reordered) arrivals and, at the end, gaps (loss).
 *
 * For each stream (one publisher as seen by one subscriber) it keeps `max`, the highest sequence
 * received, and the list of gaps below it: ranges of sequences not received (yet). A message one
 * above `max` (the common case, also right after a loss) costs two comparisons and a store. A
 * message above `max + 1` opens a gap (QoS 0 loss, or reordering: not decided yet). A message
 * below `max` either fills a gap (late: counted as reordered, never as lost) or is a duplicate (QoS 1
 * DUP redelivery, overlapping subscriptions). Loss is counted at the end: what no message filled.
 *
 * A stream keeps at most MAX_GAPS gaps; past that the oldest half are given up (they stay counted
 * as lost, and a message filling one of them after all is counted as a duplicate).
 */

/** Gaps a stream keeps before giving up the oldest (16 KiB per stream at the most). */
export const MAX_GAPS = 1024;

export const IN_ORDER = 0;
export const REORDERED = 1;
export const DUPLICATE = 2;
export type Arrival = typeof IN_ORDER | typeof REORDERED | typeof DUPLICATE;

/** Many streams, indexed 0..n-1 (grown on demand), in flat typed arrays. */
export class SequenceTracker {
  /** Highest sequence received; -1 = nothing yet. */
  private max: Float64Array;
  /** Where the stream starts: 0, or (joined midway) the lowest sequence received. */
  private first: Float64Array;
  private unique: Float64Array;
  /** Gaps of the streams that have some: [start, end) pairs, ascending, flat. */
  private readonly gapsOf = new Map<number, number[]>();
  /** Streams seen. */
  private count = 0;
  /** When true, a stream starts at sequence 0 (e2e: this run's own publishers). */
  private readonly fromZero: boolean;

  constructor(options: { fromZero: boolean; streams?: number }) {
    this.fromZero = options.fromZero;
    const n = Math.max(1, options.streams ?? 1);
    this.max = new Float64Array(n).fill(-1);
    this.first = new Float64Array(n);
    this.unique = new Float64Array(n);
  }

  /** Records the arrival of `seq` on `stream`; says whether it was in order, late, or a duplicate. */
  add(stream: number, seq: number): Arrival {
    if (stream >= this.max.length) this.grow(stream + 1);
    const max = this.max[stream]!;
    if (seq === max + 1 && max >= 0) {
      this.max[stream] = seq;
      this.unique[stream]!++;
      return IN_ORDER;
    }
    if (max < 0) return this.start(stream, seq);
    if (seq > max) {
      this.openGap(stream, max + 1, seq);
      this.max[stream] = seq;
      this.unique[stream]!++;
      return IN_ORDER;
    }
    return this.late(stream, seq);
  }

  private start(stream: number, seq: number): Arrival {
    if (stream >= this.count) this.count = stream + 1;
    const base = this.fromZero ? 0 : seq;
    this.first[stream] = base;
    if (seq > base) this.openGap(stream, base, seq);
    this.max[stream] = seq;
    this.unique[stream]!++;
    return IN_ORDER;
  }

  private openGap(stream: number, start: number, end: number): void {
    let gaps = this.gapsOf.get(stream);
    if (gaps === undefined) {
      gaps = [];
      this.gapsOf.set(stream, gaps);
    }
    gaps.push(start, end);
    // Give up the oldest half: they stay lost.
    if (gaps.length > 2 * MAX_GAPS) gaps.splice(0, MAX_GAPS);
  }

  /** seq <= max: fills a gap, or is a duplicate. */
  private late(stream: number, seq: number): Arrival {
    if (seq < this.first[stream]!) {
      // A stream joined midway got an older message than its first: it starts earlier.
      if (seq + 1 < this.first[stream]!)
        this.gapsOf.set(stream, [seq + 1, this.first[stream]!, ...(this.gapsOf.get(stream) ?? [])]);
      this.first[stream] = seq;
      this.unique[stream]!++;
      return REORDERED;
    }
    const gaps = this.gapsOf.get(stream);
    if (gaps === undefined) return DUPLICATE;
    // The last gap whose start is <= seq (binary search over the pairs).
    let lo = 0;
    let hi = gaps.length / 2 - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (gaps[2 * mid]! <= seq) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (at < 0) return DUPLICATE;
    const s = gaps[2 * at]!;
    const e = gaps[2 * at + 1]!;
    if (seq >= e) return DUPLICATE;
    if (s === seq && e === seq + 1) gaps.splice(2 * at, 2);
    else if (s === seq) gaps[2 * at] = seq + 1;
    else if (e === seq + 1) gaps[2 * at + 1] = seq;
    else gaps.splice(2 * at, 2, s, seq, seq + 1, e);
    if (gaps.length === 0) this.gapsOf.delete(stream);
    this.unique[stream]!++;
    return REORDERED;
  }

  private grow(n: number): void {
    let size = this.max.length;
    while (size < n) size *= 2;
    const widen = (a: Float64Array, fill: number) => {
      const b = new Float64Array(size).fill(fill);
      b.set(a);
      return b;
    };
    this.max = widen(this.max, -1);
    this.first = widen(this.first, 0);
    this.unique = widen(this.unique, 0);
  }

  /** Distinct sequences received on every stream. */
  totalUnique(): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) n += this.unique[s]!;
    return n;
  }

  /** Sequences between a stream's start and its highest that never arrived, all streams (sub mode's loss). */
  gaps(): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) {
      if (this.max[s]! < 0) continue;
      n += this.max[s]! - this.first[s]! + 1 - this.unique[s]!;
    }
    return n;
  }

  /** Per stream seen: its start, its highest sequence and the distinct sequences received. */
  spans(): { stream: number; first: number; max: number; unique: number }[] {
    const out: { stream: number; first: number; max: number; unique: number }[] = [];
    for (let s = 0; s < this.count; s++) {
      if (this.max[s]! < 0) continue;
      out.push({ stream: s, first: this.first[s]!, max: this.max[s]!, unique: this.unique[s]! });
    }
    return out;
  }

  /** Distinct sequences received on `stream`. */
  uniqueOf(stream: number): number {
    return stream < this.count ? this.unique[stream]! : 0;
  }

  /** Streams seen so far. */
  get streams(): number {
    return this.count;
  }
}
