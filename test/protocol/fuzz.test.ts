/**
 * Robustness: random bytes and mutated valid packets must never crash or hang the decoder or the
 * framer. The only acceptable outcomes are a packet or a MalformedPacketError (or subclass); a
 * packet that decodes without complaint must encode back to exactly the bytes it came from.
 *
 * Over 100k inputs per run, each tried under every version in strict and collect mode. The seed is
 * random per run and printed on failure; set MQ_FUZZ_SEED to replay one.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decode,
  encode,
  Framer,
  MalformedPacketError,
  type Packet,
  type ProtocolVersion,
} from '../../src/protocol/index.js';
import { anyPacket } from '../fixtures/arbitraries.js';
import { hex } from '../helpers/codec.js';
import { canonical } from '../helpers/mqtt-packet-adapter.js';

const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];
const SEED = Number(process.env.MQ_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let cases = 0;

/** Decodes `bytes` in strict and collect mode under `version`; fails on anything but a typed outcome. */
function tryDecode(bytes: Buffer, version: ProtocolVersion, origin: string): void {
  cases++;
  let packet: Packet | undefined;
  try {
    packet = decode(bytes, version);
  } catch (err) {
    if (!(err instanceof MalformedPacketError)) {
      throw new Error(`${origin}: v${version} decode(${hex(bytes)}) threw ${String(err)} (seed ${SEED})`);
    }
    if (!Number.isInteger(err.offset) || err.offset < 0 || err.offset > bytes.length) {
      throw new Error(`${origin}: v${version} decode(${hex(bytes)}): offset ${err.offset} outside the input`);
    }
  }
  try {
    decode(bytes, version, { errors: [] });
  } catch (err) {
    if (!(err instanceof MalformedPacketError)) {
      throw new Error(
        `${origin}: v${version} collect-mode decode(${hex(bytes)}) threw ${String(err)} (seed ${SEED})`,
      );
    }
  }
  if (packet === undefined) return;
  // A packet accepted without complaint is valid: it encodes back to the very bytes it came from
  // (the codec keeps what the wire had: short forms, explicit reason codes, empty property lists),
  // and so decodes back to itself.
  const again = packet.type === 'CONNECT' ? packet.protocolVersion : version;
  let reencoded: Buffer;
  try {
    reencoded = encode(packet, again);
  } catch (err) {
    throw new Error(
      `${origin}: v${version} decode(${hex(bytes)}) gave a packet that encode refuses: ${String(err)}`,
    );
  }
  expect(canonical(decode(reencoded, again), again), `${origin}: v${version} ${hex(bytes)}`).toEqual(
    canonical(packet, again),
  );
  expect(hex(reencoded), `${origin}: v${version} decode then encode`).toBe(hex(bytes));
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Rewrites the remaining length to match the bytes after the fixed header (so the body is parsed). */
function fixLength(bytes: Buffer): Buffer {
  if (bytes.length === 0) return bytes;
  let i = 1;
  while (i < bytes.length && i < 5 && (bytes[i]! & 0x80) !== 0) i++;
  const body = bytes.subarray(Math.min(i + 1, bytes.length));
  return Buffer.concat([Buffer.from([bytes[0]!, ...varint(body.length)]), body]);
}

function mutate(bytes: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(bytes);
  const at = Math.floor(rnd() * Math.max(1, b.length));
  switch (Math.floor(rnd() * 6)) {
    case 0: // flip one bit
      if (b.length > 0) b[at] = b[at]! ^ (1 << Math.floor(rnd() * 8));
      return b;
    case 1: // overwrite one byte
      if (b.length > 0) b[at] = Math.floor(rnd() * 256);
      return b;
    case 2: // insert a byte
      return Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(rnd() * 256)]), b.subarray(at)]);
    case 3: // delete a byte
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    case 4: // truncate
      return b.subarray(0, at);
    default: {
      // overwrite with an interesting value: 0x00, 0x7f, 0x80, 0xff
      if (b.length > 0) b[at] = [0x00, 0x7f, 0x80, 0xff][Math.floor(rnd() * 4)]!;
      return b;
    }
  }
}

describe(`never crashes or hangs (seed ${SEED})`, () => {
  // Most inputs end in an error; capturing a stack trace for each one is most of the cost.
  const stackTraceLimit = Error.stackTraceLimit;
  beforeAll(() => {
    Error.stackTraceLimit = 0;
  });
  afterAll(() => {
    Error.stackTraceLimit = stackTraceLimit;
  });

  it('random bytes: 15,000 buffers x 3 versions x strict/collect', { timeout: 60_000 }, () => {
    const rnd = prng(SEED);
    for (let n = 0; n < 15_000; n++) {
      const bytes = Buffer.alloc(Math.floor(rnd() * 40));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rnd() * 256);
      for (const v of VERSIONS) tryDecode(bytes, v, 'random bytes');
    }
  });

  it('random bodies behind a valid fixed header: 22,000 buffers x 3 versions x strict/collect', {
    timeout: 60_000,
  }, () => {
    const rnd = prng(SEED + 1);
    for (let n = 0; n < 22_000; n++) {
      const type = 1 + Math.floor(rnd() * 15);
      // Mostly the flags each type requires, sometimes any.
      const required =
        type === 3 ? Math.floor(rnd() * 16) & 0x0b : type === 6 || type === 8 || type === 10 ? 2 : 0;
      const flags = rnd() < 0.9 ? required : Math.floor(rnd() * 16);
      const body = Buffer.alloc(Math.floor(rnd() * 48));
      for (let i = 0; i < body.length; i++) {
        // Small values make plausible lengths, property ids and flags more often than uniform bytes.
        body[i] = rnd() < 0.5 ? Math.floor(rnd() * 8) : Math.floor(rnd() * 256);
      }
      const bytes = Buffer.concat([Buffer.from([(type << 4) | flags, ...varint(body.length)]), body]);
      for (const v of VERSIONS) tryDecode(bytes, v, 'random body');
    }
  });

  it.each(VERSIONS)(
    'mutated valid packets, version %i: 1,200 packets x 15 mutations',
    { timeout: 60_000 },
    (version) => {
      const rnd = prng(SEED + 10 + version);
      const packets = fc.sample(anyPacket(version), { numRuns: 1_200, seed: SEED + version });
      for (const p of packets) {
        const bytes = encode(p, version);
        for (let m = 0; m < 15; m++) {
          let mutated = mutate(bytes, rnd);
          if (rnd() < 0.3) mutated = mutate(mutated, rnd);
          // Half the time repair the remaining length, so the mutation reaches the body's parser.
          if (rnd() < 0.5) mutated = fixLength(mutated);
          tryDecode(mutated, version, `mutated ${p.type}`);
        }
      }
    },
  );

  it.each(VERSIONS)(
    'the framer on streams of valid and mutated packets in random chunks, version %i',
    { timeout: 60_000 },
    (version) => {
      const rnd = prng(SEED + 20 + version);
      const packets = fc.sample(anyPacket(version), { numRuns: 400, seed: SEED + 30 + version });
      for (let s = 0; s < 600; s++) {
        const parts: Buffer[] = [];
        for (let k = 0; k < 6; k++) {
          const p = packets[Math.floor(rnd() * packets.length)]!;
          const bytes = encode(p, version);
          parts.push(rnd() < 0.2 ? mutate(bytes, rnd) : bytes);
        }
        const stream = Buffer.concat(parts);
        let framer = new Framer(version, { maxPacketSize: 1 + Math.floor(rnd() * 4096) });
        let pos = 0;
        while (pos < stream.length) {
          const n = 1 + Math.floor(rnd() * 24);
          const chunk = stream.subarray(pos, pos + n);
          pos += n;
          cases++;
          try {
            framer.push(chunk, (packet) => {
              expect(typeof packet.type).toBe('string');
            });
          } catch (err) {
            if (!(err instanceof MalformedPacketError)) {
              throw new Error(`framer v${version} on ${hex(stream)} threw ${String(err)} (seed ${SEED})`);
            }
            framer = new Framer(version); // the stream is unusable after an error; start a new one
          }
        }
      }
    },
  );

  it('tried over 100,000 inputs in total', () => {
    expect(cases).toBeGreaterThan(100_000);
  });
});
