import * as hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import {
  countsIndex,
  decodeHistogram,
  encodeHistogram,
  MAX_MICROS,
  mergeEncoded,
  newHistogram,
  percentiles,
  Recorder,
  valueAtIndex,
} from '../../src/bench/histogram.js';
import { OpenLoopSchedule } from '../../src/bench/schedule.js';

describe('OpenLoopSchedule (open loop, wrk2-style)', () => {
  it('spaces the publishers evenly: together they send `rate` messages a second', () => {
    const s = new OpenLoopSchedule(1000, 4, 10_000);
    expect(s.gapMs).toBe(1);
    // Publisher 0 at 0, 4, 8 ms; publisher 3 at 3, 7, 11 ms.
    expect([0, 1, 2].map((k) => s.timeOf(0, k) - 10_000)).toEqual([0, 4, 8]);
    expect([0, 1, 2].map((k) => s.timeOf(3, k) - 10_000)).toEqual([3, 7, 11]);
    // After one second every publisher owes 250 messages, 1000 in all.
    let total = 0;
    for (let i = 0; i < 4; i++) total += s.dueBy(i, 10_000 + 999.5);
    expect(total).toBe(1000);
  });

  it('dueBy agrees with timeOf: the k-th message is due exactly once its time has come', () => {
    const s = new OpenLoopSchedule(7_500, 3, 1_000_000.25);
    for (let i = 0; i < 3; i++) {
      for (const t of [0, 0.1, 0.39, 1, 13.37, 999.9, 12_345.6]) {
        const now = s.startMs + t;
        const k = s.dueBy(i, now);
        if (k > 0) expect(s.timeOf(i, k - 1)).toBeLessThanOrEqual(now + 1e-6);
        expect(s.timeOf(i, k)).toBeGreaterThan(now - 1e-6);
      }
    }
    expect(s.dueBy(2, s.startMs - 5)).toBe(0);
  });

  it('a stalled generator owes every message it missed, with their original send times', () => {
    // 100 msgs/s, one publisher: stalled for 1 s, it owes 100 messages whose scheduled times are
    // spread over that second; the first has waited the whole second.
    const s = new OpenLoopSchedule(100, 1, 0);
    expect(s.dueBy(0, 1000.5)).toBe(101);
    const waited = 1000.5 - s.timeOf(0, 0);
    expect(waited).toBeCloseTo(1000.5);
  });

  it('a phase holds exactly the messages scheduled before its end, whatever the float rounding', () => {
    const cases: [number, number, number][] = [
      [1000, 2, 1000],
      [3, 1, 1000],
      [7500, 3, 1000],
      [1000, 7, 10],
    ];
    for (const [rate, pubs, ms] of cases) {
      const s = new OpenLoopSchedule(rate, pubs, 1_765_000_000_123.456);
      let total = 0;
      for (let i = 0; i < pubs; i++) total += s.countWithin(i, ms);
      expect(total).toBe(Math.ceil((rate * ms) / 1000 - 1e-9));
    }
  });

  it('refuses a rate or publisher count of 0', () => {
    expect(() => new OpenLoopSchedule(0, 1, 0)).toThrow(/rate/);
    expect(() => new OpenLoopSchedule(10, 0, 0)).toThrow(/publishers/);
  });
});

describe('Recorder (HdrHistogram slots without hdr-histogram-js on the hot path)', () => {
  it('computes the same slot as HdrHistogram for every magnitude', () => {
    // JsHistogram has lowestEquivalentValue; the Histogram interface does not declare it.
    const h = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: MAX_MICROS,
      numberOfSignificantValueDigits: 3,
    }) as hdr.Histogram & { lowestEquivalentValue(v: number): number };
    const probe = [0, 1, 2047, 2048, 2049, 4095, 4096, 123_456, 1_000_000, 60_000_000, MAX_MICROS];
    for (const v of probe) {
      const i = countsIndex(v);
      const lo = valueAtIndex(i);
      expect(lo).toBeLessThanOrEqual(v);
      expect(h.lowestEquivalentValue(v)).toBe(lo);
      // The next slot starts above v.
      expect(valueAtIndex(i + 1)).toBeGreaterThan(v);
    }
  });

  it('a drained recorder holds the same distribution as recording into HdrHistogram directly', () => {
    const direct = newHistogram();
    const viaRecorder = newHistogram();
    const r = new Recorder();
    let seed = 1;
    for (let i = 0; i < 50_000; i++) {
      seed = (seed * 16807) % 2147483647;
      const v = Math.floor((seed / 2147483647) ** 4 * 5_000_000);
      direct.recordValue(v);
      r.record(v);
    }
    r.drainInto(viaRecorder);
    expect(r.count).toBe(0);
    expect(viaRecorder.totalCount).toBe(direct.totalCount);
    for (const p of [1, 25, 50, 90, 99, 99.9, 99.99, 100])
      expect(viaRecorder.getValueAtPercentile(p)).toBe(direct.getValueAtPercentile(p));
    // The summaries report bucket bounds, so they agree to the last digit.
    expect(percentiles(viaRecorder)).toEqual(percentiles(direct));
  });

  it('reads percentiles as HdrHistogram does, and moves its counts between threads as pairs', () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    for (const [n, spread] of [
      [1, 10],
      [3, 3000],
      [997, 40_000],
      [50_000, 5_000_000],
    ] as const) {
      const direct = newHistogram();
      const worker = new Recorder();
      for (let i = 0; i < n; i++) {
        const v = Math.floor(next() ** 3 * spread);
        direct.recordValue(v);
        worker.record(v);
      }
      // A worker's second, taken as pairs and added up on the other side, twice (two seconds).
      const engine = new Recorder();
      const pairs = worker.takeCounts();
      expect(worker.count).toBe(0);
      expect(worker.takeCounts().length).toBe(0);
      engine.addCounts(pairs);
      engine.addCounts(pairs);
      direct.add(direct);
      expect(engine.count).toBe(direct.totalCount);
      for (const p of [0, 1, 25, 50, 90, 99, 99.9, 99.99, 100])
        expect(engine.valueAtPercentile(p), `${n} values, p${p}`).toBe(direct.getValueAtPercentile(p));
      const h = newHistogram();
      engine.addTo(h);
      expect(percentiles(h)).toEqual(percentiles(direct));
      engine.clear();
      expect(engine.count).toBe(0);
      expect(engine.valueAtPercentile(99)).toBe(0);
    }
  });

  it('clamps negative and huge values instead of throwing', () => {
    const r = new Recorder();
    r.record(-5);
    r.record(Number.POSITIVE_INFINITY);
    r.record(1e15);
    const h = newHistogram();
    r.drainInto(h);
    expect(h.totalCount).toBe(3);
    expect(h.getValueAtPercentile(10)).toBe(0);
    expect(h.maxValue).toBeGreaterThanOrEqual(MAX_MICROS * 0.999);
  });
});

describe('encoded histograms', () => {
  it('round-trip through the report encoding and merge by adding counts', () => {
    const a = newHistogram();
    const b = newHistogram();
    const both = newHistogram();
    for (let v = 1; v <= 1000; v++) {
      a.recordValue(v);
      both.recordValue(v);
    }
    for (let v = 5000; v <= 9000; v += 2) {
      b.recordValue(v);
      both.recordValue(v);
    }
    const merged = decodeHistogram(mergeEncoded([encodeHistogram(a), undefined, encodeHistogram(b)])!);
    expect(percentiles(merged)).toEqual(percentiles(both));
    expect(mergeEncoded([undefined])).toBeUndefined();
    expect(percentiles(newHistogram())).toBeNull();
  });
});
