/**
 * Latency histograms: a cheap recorder on the hot path, HdrHistogram (hdr-histogram-js) for
 * everything else. hdr-histogram-js records a value in ~200 ns here (its WebAssembly build ~40 ns);
 * Recorder computes the same bucket index as HdrHistogram in a few ns and moves its counts into a
 * real histogram once per progress interval (Recorder.drainInto).
 *
 * Every histogram of mq bench has the same layout: microseconds, lowest discernible value 1,
 * 3 significant digits. Values are clamped to [0, MAX_MICROS] (35 minutes).
 */
import * as hdr from 'hdr-histogram-js';
import type { Percentiles } from './report.js';

export type Histogram = hdr.Histogram;

/** The largest value recorded (2^31 - 1 us, ~35.8 min); larger ones are clamped to it. */
export const MAX_MICROS = 0x7fffffff;

// HdrHistogram's layout for lowestDiscernibleValue 1 (unit magnitude 0), 3 significant digits:
// sub-bucket count 2048 (2 * 10^3 rounded up to a power of two), half count 1024.
const SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10;
const SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
const SUB_BUCKET_MASK = 2 * SUB_BUCKET_HALF_COUNT - 1;
/** HdrHistogram's leadingZeroCountBase (64 - unit magnitude - half count magnitude - 1) minus 32. */
const LZ_BASE_32 = 64 - 0 - SUB_BUCKET_HALF_COUNT_MAGNITUDE - 1 - 32;
/** Counts slots needed up to MAX_MICROS. */
const COUNTS_LENGTH = countsIndex(MAX_MICROS) + 1;

/** HdrHistogram's counts index of `value` (an integer in [0, MAX_MICROS]). */
export function countsIndex(value: number): number {
  const bucket = LZ_BASE_32 - Math.clz32(value | SUB_BUCKET_MASK);
  const sub = value >>> bucket;
  return ((bucket + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (sub - SUB_BUCKET_HALF_COUNT);
}

/** The lowest value that falls into counts slot `index` (HdrHistogram's valueFromIndex). */
export function valueAtIndex(index: number): number {
  let bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
  let sub = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
  if (bucket < 0) {
    sub -= SUB_BUCKET_HALF_COUNT;
    bucket = 0;
  }
  return sub * 2 ** bucket;
}

/** The lowest value of the slot `value` falls into. */
export function lowestEquivalent(value: number): number {
  return valueAtIndex(countsIndex(value >= MAX_MICROS ? MAX_MICROS : value > 0 ? value | 0 : 0));
}

/** A new, empty histogram in mq bench's layout. */
export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_MICROS,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 64,
  });
}

/**
 * Counts values by HdrHistogram slot. record() is the hot path (one index computation, one
 * increment); drainInto() adds the counts to a histogram and clears them. takeCounts() and
 * addCounts() move counts between threads as (slot, count) pairs, and valueAtPercentile() reads
 * a percentile as HdrHistogram does: a worker's second of latency reaches the engine without an
 * HdrHistogram built, encoded and decoded for it.
 */
export class Recorder {
  private readonly counts = new Float64Array(COUNTS_LENGTH);
  private lowest = COUNTS_LENGTH;
  private highest = -1;
  /** Values recorded since the last drain. */
  count = 0;

  /** Records `micros` (rounded down; negative values count as 0, huge ones as MAX_MICROS). */
  record(micros: number): void {
    const v = micros >= MAX_MICROS ? MAX_MICROS : micros > 0 ? micros | 0 : 0;
    const i = countsIndex(v);
    this.counts[i]!++;
    if (i < this.lowest) this.lowest = i;
    if (i > this.highest) this.highest = i;
    this.count++;
  }

  /** Adds every count to `into`; the recorder keeps them. */
  addTo(into: Histogram): void {
    const counts = this.counts;
    for (let i = this.lowest; i <= this.highest; i++) {
      const n = counts[i]!;
      if (n > 0) into.recordValueWithCount(valueAtIndex(i), n);
    }
  }

  /** Adds every count to `into` and empties the recorder. */
  drainInto(into: Histogram): void {
    this.addTo(into);
    this.clear();
  }

  /** Empties the recorder. */
  clear(): void {
    if (this.highest >= this.lowest) this.counts.fill(0, this.lowest, this.highest + 1);
    this.lowest = COUNTS_LENGTH;
    this.highest = -1;
    this.count = 0;
  }

  /** The counts as (slot, count) pairs, slots ascending; empties the recorder. */
  takeCounts(): Float64Array {
    const counts = this.counts;
    let n = 0;
    for (let i = this.lowest; i <= this.highest; i++) if (counts[i]! > 0) n++;
    const pairs = new Float64Array(2 * n);
    let k = 0;
    for (let i = this.lowest; i <= this.highest; i++) {
      const c = counts[i]!;
      if (c > 0) {
        pairs[k++] = i;
        pairs[k++] = c;
      }
    }
    this.clear();
    return pairs;
  }

  /** Adds (slot, count) pairs from takeCounts(). */
  addCounts(pairs: Float64Array): void {
    const counts = this.counts;
    for (let k = 0; k + 1 < pairs.length; k += 2) {
      const i = pairs[k]!;
      const c = pairs[k + 1]!;
      if (!(i >= 0 && i < COUNTS_LENGTH && Number.isInteger(i)) || !(c > 0)) continue;
      counts[i]! += c;
      if (i < this.lowest) this.lowest = i;
      if (i > this.highest) this.highest = i;
      this.count += c;
    }
  }

  /**
   * The value at `percentile` (0-100) of what the recorder holds, in microseconds, exactly as
   * HdrHistogram's getValueAtPercentile computes it (the highest value of the slot; the lowest for
   * percentile 0); 0 when empty.
   */
  valueAtPercentile(percentile: number): number {
    if (this.count === 0) return 0;
    const fp = (Math.min(percentile, 100) / 100) * this.count;
    // HdrHistogram rounds up, less one ulp of fp so that fp error cannot skip a count.
    const atCount = Math.max(fp > 0 ? Math.ceil(fp - 2 ** (Math.floor(Math.log2(fp)) - 52)) : 0, 1);
    const counts = this.counts;
    let seen = 0;
    for (let i = this.lowest; i <= this.highest; i++) {
      seen += counts[i]!;
      if (seen >= atCount) {
        const low = valueAtIndex(i);
        return percentile === 0
          ? low
          : low + 2 ** Math.max(0, (i >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1) - 1;
      }
    }
    return 0;
  }
}

/** The compressed base64 encoding (HdrHistogram V2, zlib), as the report stores it. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Reads a histogram the report stored; throws on an encoding that is not one. */
export function decodeHistogram(encoded: string): Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 64, false);
}

/** The sum of the encoded histograms (undefined ones skipped); undefined when all are. */
export function mergeEncoded(encoded: readonly (string | undefined)[]): string | undefined {
  let sum: Histogram | undefined;
  for (const e of encoded) {
    if (e === undefined) continue;
    const h = decodeHistogram(e);
    if (sum === undefined) sum = newHistogram();
    sum.add(h);
  }
  return sum === undefined ? undefined : encodeHistogram(sum);
}

const ms = (micros: number) => micros / 1000;

/** Percentiles in milliseconds of a histogram in microseconds; null when it is empty. */
export function percentiles(h: Histogram): Percentiles | null {
  if (h.totalCount === 0) return null;
  return {
    count: h.totalCount,
    // Bucket bounds, as HdrHistogram reports them, so that a decoded or merged histogram reports
    // what the one it came from did.
    min: ms(h.minNonZeroValue === Number.MAX_SAFE_INTEGER ? 0 : lowestEquivalent(h.minNonZeroValue)),
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.getValueAtPercentile(100)),
  };
}

/** percentiles() of an encoded histogram (null when absent or empty). */
export function percentilesOf(encoded: string | undefined): Percentiles | null {
  return encoded === undefined ? null : percentiles(decodeHistogram(encoded));
}
