/**
 * Per-publisher sequence tracking at a receiver: which sequence numbers arrived, to count
 * duplicates, late (reordered) arrivals and, at the end, gaps (loss).
 *
 * For each stream (one publisher as seen by one subscriber) it keeps `next`, the lowest sequence
 * not yet received, and `max`, the highest received. While messages arrive in order (the common
 * case) that is all: no bitmap, a few comparisons. A gap (QoS 0 loss, or reordering) starts a bitmap
 * of the sequences received above `next`; a late message fills its hole (counted as reordered, not
 * lost, and not a duplicate), and a message whose bit is already set is a duplicate (QoS 1 DUP
 * redelivery, or overlapping subscriptions). A gap is only called lost at the end (lost()), since a
 * late message may still fill it.
 *
 * The bitmap spans at most WINDOW sequences; when a hole is older than that (a message truly lost
 * at QoS 0 while the publisher went on), `next` is moved past it and the hole stays counted as lost.
 * A message that old arriving after all is counted as a duplicate (it cannot be told apart).
 */

/** Sequences a stream's bitmap spans at most (8 KiB per stream with a hole in it). */
export const WINDOW = 1 << 16;
const INITIAL_BITS = 1 << 10;

export const IN_ORDER = 0;
export const REORDERED = 1;
export const DUPLICATE = 2;
export type Arrival = typeof IN_ORDER | typeof REORDERED | typeof DUPLICATE;

/** Many streams, indexed 0..n-1 (grown on demand), in flat typed arrays. */
export class SequenceTracker {
  /** Lowest sequence not yet received (all below were received or given up); -1 = nothing seen. */
  private next: Float64Array;
  /** Highest sequence received. */
  private max: Float64Array;
  /** Lowest sequence received (where loss counting starts when the stream did not start at 0). */
  private first: Float64Array;
  private unique: Float64Array;
  /** Bitmaps of streams with holes, bit (seq & (bits - 1)) for seq in [next, max]. */
  private readonly holes = new Map<number, Uint32Array>();
  /** Streams seen. */
  private count = 0;
  /** When true, a stream starts at sequence 0 (e2e: this run's own publishers). */
  private readonly fromZero: boolean;

  constructor(options: { fromZero: boolean; streams?: number }) {
    this.fromZero = options.fromZero;
    const n = Math.max(1, options.streams ?? 1);
    this.next = new Float64Array(n).fill(-1);
    this.max = new Float64Array(n).fill(-1);
    this.first = new Float64Array(n);
    this.unique = new Float64Array(n);
  }

  /** Records the arrival of `seq` on `stream`; says whether it was in order, late, or a duplicate. */
  add(stream: number, seq: number): Arrival {
    if (stream >= this.next.length) this.grow(stream + 1);
    if (stream >= this.count) this.count = stream + 1;
    const next = this.next[stream]!;
    if (next < 0) return this.start(stream, seq);
    const max = this.max[stream]!;
    if (seq === next && max < next) {
      // In order, nothing outstanding: the fast path.
      this.next[stream] = seq + 1;
      this.max[stream] = seq;
      this.unique[stream]!++;
      return IN_ORDER;
    }
    if (seq < next) {
      if (seq < this.first[stream]! && !this.fromZero) return this.before(stream, seq);
      return DUPLICATE;
    }
    return this.slow(stream, seq, next, max);
  }

  private start(stream: number, seq: number): Arrival {
    const base = this.fromZero ? 0 : seq;
    this.first[stream] = base;
    this.next[stream] = base;
    this.max[stream] = base - 1;
    return this.add(stream, seq);
  }

  /** A stream seen from the middle got an older message than its first: it starts earlier. */
  private before(stream: number, seq: number): Arrival {
    this.first[stream] = seq;
    this.unique[stream]!++;
    return REORDERED;
  }

  /** seq >= next, and either a gap exists or opens now. */
  private slow(stream: number, seq: number, next: number, max: number): Arrival {
    let bits = this.holes.get(stream);
    if (seq > max) {
      if (seq - next >= WINDOW) {
        this.giveUp(stream, seq - WINDOW + 1);
        return this.add(stream, seq);
      }
      bits = this.ensureBits(stream, bits, seq - next + 1, next, max);
      setBit(bits, seq);
      this.max[stream] = seq;
      this.unique[stream]!++;
      if (seq === next) this.advance(stream, bits);
      return IN_ORDER;
    }
    // next <= seq <= max: a hole being filled, or a duplicate.
    if (bits === undefined || seq === max || testBit(bits, seq)) return DUPLICATE;
    setBit(bits, seq);
    this.unique[stream]!++;
    if (seq === next) this.advance(stream, bits);
    return REORDERED;
  }

  /** Moves `next` past every received sequence; drops the bitmap once no hole is left. */
  private advance(stream: number, bits: Uint32Array): void {
    let next = this.next[stream]!;
    const max = this.max[stream]!;
    while (next <= max && testBit(bits, next)) {
      clearBit(bits, next);
      next++;
    }
    this.next[stream] = next;
    if (next > max) this.holes.delete(stream);
  }

  /** Gives up on holes below `newNext` (they stay lost), keeping what was received above. */
  private giveUp(stream: number, newNext: number): void {
    const bits = this.holes.get(stream);
    let next = this.next[stream]!;
    const max = this.max[stream]!;
    if (bits === undefined || newNext > max) {
      this.holes.delete(stream);
      this.next[stream] = newNext;
      if (this.max[stream]! < newNext - 1) this.max[stream] = newNext - 1;
      return;
    }
    while (next < newNext) {
      clearBit(bits, next);
      next++;
    }
    this.next[stream] = next;
    this.advance(stream, bits);
  }

  /** A bitmap able to hold `span` sequences from `next`, carrying over the bits of [next, max]. */
  private ensureBits(stream: number, bits: Uint32Array | undefined, span: number, next: number, max: number) {
    if (bits !== undefined && bits.length * 32 >= span) return bits;
    let size = bits === undefined ? INITIAL_BITS : bits.length * 32;
    while (size < span) size *= 2;
    const grown = new Uint32Array(size / 32);
    if (bits !== undefined) for (let s = next; s <= max; s++) if (testBit(bits, s)) setBit(grown, s);
    this.holes.set(stream, grown);
    return grown;
  }

  private grow(n: number): void {
    let size = this.next.length;
    while (size < n) size *= 2;
    const widen = (a: Float64Array, fill: number) => {
      const b = new Float64Array(size).fill(fill);
      b.set(a);
      return b;
    };
    this.next = widen(this.next, -1);
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

  /** Gaps between the first and the highest sequence seen of every stream (sub mode's loss). */
  gaps(): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) {
      if (this.next[s]! < 0) continue;
      n += this.max[s]! - this.first[s]! + 1 - this.unique[s]!;
    }
    return n;
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

// Bit `seq` of a bitmap whose length in bits is a power of two: seq modulo that length.
function setBit(bits: Uint32Array, seq: number): void {
  const i = seq % (bits.length * 32);
  bits[i >>> 5]! |= 1 << (i & 31);
}
function clearBit(bits: Uint32Array, seq: number): void {
  const i = seq % (bits.length * 32);
  bits[i >>> 5]! &= ~(1 << (i & 31));
}
function testBit(bits: Uint32Array, seq: number): boolean {
  const i = seq % (bits.length * 32);
  return (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
}
