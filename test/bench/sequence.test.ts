import { describe, expect, it } from 'vitest';
import { DUPLICATE, IN_ORDER, MAX_GAPS, REORDERED, SequenceTracker } from '../../src/bench/sequence.js';

/** Feeds `seqs` to stream 0 and returns the tally. */
function feed(seqs: number[], fromZero = true) {
  const t = new SequenceTracker({ fromZero });
  const tally = { inOrder: 0, reordered: 0, duplicated: 0 };
  for (const s of seqs) {
    const a = t.add(0, s);
    if (a === IN_ORDER) tally.inOrder++;
    else if (a === REORDERED) tally.reordered++;
    else tally.duplicated++;
  }
  return { t, ...tally };
}

describe('SequenceTracker', () => {
  it('counts an in-order stream as in order, with no gap', () => {
    const r = feed([0, 1, 2, 3, 4]);
    expect(r).toMatchObject({ inOrder: 5, reordered: 0, duplicated: 0 });
    expect(r.t.totalUnique()).toBe(5);
    expect(r.t.gaps()).toBe(0);
  });

  it('QoS 0 loss: a gap that never fills is lost, and the messages after it are not reordered', () => {
    const r = feed([0, 1, 3, 4, 5, 7]);
    expect(r).toMatchObject({ inOrder: 6, reordered: 0, duplicated: 0 });
    expect(r.t.gaps()).toBe(2); // 2 and 6
  });

  it('reordering: a late message fills its gap, counted once as reordered and not lost', () => {
    const r = feed([0, 2, 3, 1, 4]);
    expect(r).toMatchObject({ inOrder: 4, reordered: 1, duplicated: 0 });
    expect(r.t.gaps()).toBe(0);
    expect(r.t.totalUnique()).toBe(5);
  });

  it('QoS 1 DUP redelivery: a sequence seen before is a duplicate, in order or not', () => {
    const r = feed([0, 1, 2, 2, 1, 3, 0]);
    expect(r).toMatchObject({ inOrder: 4, reordered: 0, duplicated: 3 });
    expect(r.t.totalUnique()).toBe(4);
  });

  it('a duplicate inside a gap region is told apart from the fill of the gap', () => {
    const r = feed([0, 3, 3, 1, 1, 2, 4]);
    expect(r).toMatchObject({ inOrder: 3, reordered: 2, duplicated: 2 });
    expect(r.t.gaps()).toBe(0);
  });

  it('an e2e stream (fromZero) whose first messages are lost counts them lost', () => {
    const r = feed([3, 4]);
    expect(r.t.gaps()).toBe(3);
  });

  it('a stream joined midway (sub mode) starts at the first sequence seen', () => {
    const r = feed([100, 101, 103], false);
    expect(r.t.gaps()).toBe(1);
    expect(r.t.totalUnique()).toBe(3);
  });

  it('keeps streams apart', () => {
    const t = new SequenceTracker({ fromZero: true });
    expect(t.add(0, 0)).toBe(IN_ORDER);
    expect(t.add(5, 0)).toBe(IN_ORDER);
    expect(t.add(5, 0)).toBe(DUPLICATE);
    expect(t.add(0, 1)).toBe(IN_ORDER);
    expect(t.streams).toBe(6);
    expect(t.uniqueOf(0)).toBe(2);
    expect(t.uniqueOf(5)).toBe(1);
  });

  it('a message right after a loss is in order (the cheap path), a late fill of the gap is not', () => {
    const r = feed([0, 1, 5, 6, 7, 3]);
    expect(r).toMatchObject({ inOrder: 5, reordered: 1, duplicated: 0 });
    expect(r.t.gaps()).toBe(2); // 2 and 4 never came (3 filled its place late)
  });

  it('keeps at most MAX_GAPS gaps per stream: older ones are given up and stay lost', () => {
    const seqs: number[] = [];
    for (let s = 0; s < (MAX_GAPS + 10) * 2; s += 2) seqs.push(s); // every odd sequence lost
    const r = feed(seqs);
    expect(r.t.gaps()).toBe(MAX_GAPS + 9);
    expect(r.duplicated).toBe(0);
    // The newest gaps are still known: a late message fills one.
    expect(r.t.add(0, (MAX_GAPS + 9) * 2 - 1)).toBe(REORDERED);
    // The oldest were given up: a late message there cannot be told from a duplicate.
    expect(r.t.add(0, 1)).toBe(DUPLICATE);
    expect(r.t.gaps()).toBe(MAX_GAPS + 8);
  });

  it('random permutations with copies: unique, duplicate and reordered counts add up', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (let round = 0; round < 20; round++) {
      const n = 2000;
      const seqs: number[] = [];
      for (let i = 0; i < n; i++) if (rnd() > 0.1) seqs.push(i); // 10% lost
      // Local shuffles (reordering within 50) and 5% duplicates.
      for (let i = 0; i < seqs.length; i++) {
        const j = Math.min(seqs.length - 1, i + Math.floor(rnd() * 50));
        if (rnd() < 0.2) [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!];
      }
      const withDups = seqs.flatMap((s) => (rnd() < 0.05 ? [s, s] : [s]));
      const r = feed(withDups);
      const distinct = new Set(seqs).size;
      expect(r.t.totalUnique()).toBe(distinct);
      expect(r.duplicated).toBe(withDups.length - distinct);
      expect(r.inOrder + r.reordered).toBe(distinct);
      expect(r.t.gaps()).toBe(Math.max(...seqs) + 1 - distinct);
      // Reordered = arrivals below the highest sequence already seen (first copies only).
      let max = -1;
      let late = 0;
      const seen = new Set<number>();
      for (const s of withDups) {
        if (seen.has(s)) continue;
        seen.add(s);
        if (s < max) late++;
        else max = s;
      }
      expect(r.reordered).toBe(late);
    }
  });
});
