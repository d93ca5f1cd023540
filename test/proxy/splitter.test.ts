/**
 * The proxy's Splitter: whatever the chunking, the bytes forwarded are the bytes received minus the
 * packets dropped, every packet is observed once with its stream offset, a chunk with nothing
 * dropped goes on as the same Buffer, and a stream that cannot be cut passes through unchanged.
 */
import { describe, expect, it } from 'vitest';
import { encode, type Packet } from '../../src/protocol/index.js';
import { type FrameHead, Splitter, type SplitterHooks } from '../../src/proxy/splitter.js';

const PACKETS: Packet[] = [
  { type: 'CONNECT', protocolVersion: 4, clientId: 'split', clean: true, keepalive: 30 },
  { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic: 'a', payload: Buffer.from('one') },
  {
    type: 'PUBLISH',
    dup: false,
    qos: 1,
    retain: false,
    topic: 'a/b',
    packetId: 1,
    payload: Buffer.alloc(200, 7),
  },
  { type: 'PINGREQ' },
  { type: 'PUBLISH', dup: false, qos: 0, retain: true, topic: 'c', payload: Buffer.alloc(0) },
  { type: 'SUBSCRIBE', packetId: 2, subscriptions: [{ topicFilter: 'x/#', qos: 1 }] },
  {
    type: 'PUBLISH',
    dup: false,
    qos: 2,
    retain: false,
    topic: 'd',
    packetId: 3,
    payload: Buffer.alloc(20_000, 1),
  },
  { type: 'DISCONNECT' },
];
const RAWS = PACKETS.map((p) => encode(p, 4));
const STREAM = Buffer.concat(RAWS);
const OFFSETS = RAWS.map((_, i) => RAWS.slice(0, i).reduce((n, r) => n + r.length, 0));

/** A small deterministic PRNG (mulberry32), so that a failure names its seed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `bytes` cut into chunks: fixed sizes, or random sizes from `seed`. */
function chunked(bytes: Buffer, size: number | { seed: number }): Buffer[] {
  const out: Buffer[] = [];
  const next =
    typeof size === 'number'
      ? () => size
      : (
          (r) => () =>
            1 + Math.floor(r() * 300)
        )(rng(size.seed));
  for (let i = 0; i < bytes.length; ) {
    const n = next();
    out.push(Buffer.from(bytes.subarray(i, i + n)));
    i += n;
  }
  return out;
}

const CHUNKINGS: (number | { seed: number })[] = [
  1,
  2,
  3,
  5,
  7,
  64,
  1000,
  1 << 20,
  { seed: 1 },
  { seed: 2 },
  { seed: 3 },
];

function run(chunks: Buffer[], hooks: SplitterHooks, options = {}) {
  const s = new Splitter(hooks, options);
  const out: Buffer[] = [];
  let rejected = false;
  for (const c of chunks) {
    const r = s.push(c);
    out.push(...r.out);
    if (r.rejected) {
      rejected = true;
      break;
    }
  }
  if (!rejected) out.push(...s.flush());
  return { forwarded: Buffer.concat(out), rejected, out };
}

describe('Splitter', () => {
  it.each(CHUNKINGS)(
    'forwards every byte and observes every packet once at its offset (chunks %o)',
    (size) => {
      const seen: { raw: string; head: FrameHead }[] = [];
      const { forwarded } = run(chunked(STREAM, size), {
        frame: (raw, head) => {
          seen.push({ raw: raw!.toString('hex'), head });
          return true;
        },
      });
      expect(forwarded.equals(STREAM)).toBe(true);
      expect(seen.map((s) => s.raw)).toEqual(RAWS.map((r) => r.toString('hex')));
      expect(seen.map((s) => s.head.offset)).toEqual(OFFSETS);
      expect(seen.map((s) => s.head.index)).toEqual(RAWS.map((_, i) => i));
    },
  );

  it('passes a chunk with nothing dropped on as the same Buffer (no copy)', () => {
    const s = new Splitter({ frame: () => true });
    const chunk = Buffer.from(STREAM);
    const r = s.push(chunk);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toBe(chunk);
  });

  it.each(CHUNKINGS)(
    '--drop-every 2: every 2nd PUBLISH is missing from the bytes forwarded (chunks %o)',
    (size) => {
      let publishes = 0;
      const dropped: number[] = [];
      const { forwarded } = run(chunked(STREAM, size), {
        drop: (h) => h.typeCode === 3 && ++publishes % 2 === 0,
        frame: (_raw, head, wasDropped) => {
          if (wasDropped) dropped.push(head.index);
          return true;
        },
      });
      // PUBLISHes are packets 1, 2, 4, 6: the 2nd and 4th (indexes 2 and 6) are dropped.
      expect(dropped).toEqual([2, 6]);
      const expected = Buffer.concat(RAWS.filter((_, i) => i !== 2 && i !== 6));
      expect(forwarded.toString('hex')).toBe(expected.toString('hex'));
    },
  );

  it.each(CHUNKINGS)(
    'hold mode (--strict) forwards the same bytes when nothing is rejected (chunks %o)',
    (size) => {
      const { forwarded, rejected } = run(chunked(STREAM, size), { frame: () => true }, { hold: true });
      expect(rejected).toBe(false);
      expect(forwarded.equals(STREAM)).toBe(true);
    },
  );

  it.each(CHUNKINGS)(
    'hold mode: a rejected packet is not forwarded, nor anything after it (chunks %o)',
    (size) => {
      const { forwarded, rejected } = run(
        chunked(STREAM, size),
        { frame: (_raw, head) => head.index !== 3 },
        { hold: true },
      );
      expect(rejected).toBe(true);
      // Packets 0-2 went on whole; nothing of packet 3 (the PINGREQ) did.
      expect(forwarded.toString('hex')).toBe(Buffer.concat(RAWS.slice(0, 3)).toString('hex'));
    },
  );

  it.each(CHUNKINGS)(
    'a remaining length over 4 bytes: the rest passes through unchanged, lost() once (chunks %o)',
    (size) => {
      const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 2, 3]);
      const stream = Buffer.concat([RAWS[0]!, RAWS[1]!, bad, RAWS[2]!]);
      const lost: number[] = [];
      let frames = 0;
      const { forwarded } = run(chunked(stream, size), {
        frame: () => {
          frames++;
          return true;
        },
        lost: (_e, at) => lost.push(at),
      });
      expect(forwarded.equals(stream)).toBe(true);
      expect(lost).toEqual([RAWS[0]!.length + RAWS[1]!.length]);
      expect(frames).toBe(2);
    },
  );

  it('hold mode: a stream that cannot be cut is rejected', () => {
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const { forwarded, rejected } = run(
      [Buffer.concat([RAWS[0]!, bad])],
      { frame: () => true },
      { hold: true },
    );
    expect(rejected).toBe(true);
    expect(forwarded.equals(RAWS[0]!)).toBe(true);
  });

  it.each(CHUNKINGS)(
    'packets over the assemble limit are not assembled; their pieces pass in order (chunks %o)',
    (size) => {
      const pieces: Buffer[] = [];
      const big: number[] = [];
      const { forwarded } = run(
        chunked(STREAM, size),
        {
          frame: (raw, head) => {
            if (raw === undefined) big.push(head.index);
            return true;
          },
          piece: (bytes) => pieces.push(Buffer.from(bytes)),
        },
        { assembleLimit: 1000 },
      );
      expect(forwarded.equals(STREAM)).toBe(true);
      expect(big).toEqual([6]);
      expect(Buffer.concat(pieces).equals(RAWS[6]!)).toBe(true);
    },
  );

  it('a fixed header cut short goes on at once when nothing can be dropped or held', () => {
    const s = new Splitter({ frame: () => true });
    expect(Buffer.concat(s.push(Buffer.from([0x30, 0x80])).out).toString('hex')).toBe('3080');
    expect(Buffer.concat(s.push(Buffer.from([0x01])).out).toString('hex')).toBe('01');
    expect(s.flush()).toEqual([]);
  });

  it('with --drop-every, a fixed header cut short waits for the rest; flush() gives it back at the end', () => {
    const s = new Splitter({ drop: () => false, frame: () => true });
    expect(s.push(Buffer.from([0x30, 0x80])).out).toEqual([]);
    expect(Buffer.concat(s.flush()).toString('hex')).toBe('3080');
  });
});
