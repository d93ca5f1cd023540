import { describe, expect, it } from 'vitest';
import {
  FLAG_RECORDED,
  HEADER_BYTES,
  hasHeader,
  headerPayload,
  OFF_FLAGS,
  OFF_LAG,
  OFF_PUBLISHER,
  OFF_RUN,
  OFF_SEQ,
  OFF_TIME,
  readF64,
  readU32,
  stampHeader,
} from '../../src/bench/payload.js';

describe('payload header', () => {
  it('lays out the fields as documented (little-endian), read back by the receiver', () => {
    const p = headerPayload(64, 0xdeadbeef, 7);
    expect(p.length).toBe(64);
    stampHeader(p, 0, 0xfffffffe, 1_765_000_000_123.456, 1234.9, true);
    expect(p.subarray(0, 3)).toEqual(Buffer.from([0x6d, 0x71, 1]));
    expect(p[OFF_FLAGS]).toBe(FLAG_RECORDED);
    expect(p.readUInt32LE(OFF_RUN)).toBe(0xdeadbeef);
    expect(p.readUInt32LE(OFF_PUBLISHER)).toBe(7);
    expect(p.readUInt32LE(OFF_SEQ)).toBe(0xfffffffe);
    expect(p.readDoubleLE(OFF_TIME)).toBe(1_765_000_000_123.456);
    expect(p.readUInt32LE(OFF_LAG)).toBe(1234);
    expect(readU32(p, OFF_RUN)).toBe(0xdeadbeef);
    expect(readU32(p, OFF_SEQ)).toBe(0xfffffffe);
    expect(readF64(p, OFF_TIME)).toBe(1_765_000_000_123.456);
    expect(p.subarray(HEADER_BYTES).every((b) => b === 0x2e)).toBe(true);
    expect(hasHeader(p, 0, p.length)).toBe(true);
    expect(hasHeader(p, 0, HEADER_BYTES - 1)).toBe(false);
    expect(hasHeader(Buffer.from('hello, this is not an mq bench payload'), 0, 38)).toBe(false);
  });

  it("reads and writes each buffer's own bytes when buffers alternate, views at an offset included", () => {
    const pool = Buffer.alloc(256, 0x2e);
    const a = pool.subarray(13, 13 + 64); // a view at an odd offset of a larger buffer
    const b = Buffer.alloc(64, 0x2e);
    for (let k = 0; k < 3; k++) {
      stampHeader(a, 0, k, 1000.5 + k, 0, true);
      stampHeader(b, 0, k, 2000.25 + k, 0, true);
      expect(readF64(a, OFF_TIME)).toBe(1000.5 + k);
      expect(readF64(b, OFF_TIME)).toBe(2000.25 + k);
      expect(a.readDoubleLE(OFF_TIME)).toBe(1000.5 + k);
    }
    expect(pool.subarray(0, 13).every((x) => x === 0x2e)).toBe(true);
    expect(pool.subarray(13 + 64).every((x) => x === 0x2e)).toBe(true);
  });

  it('clamps the send lag to the u32 range and marks warm-up messages unrecorded', () => {
    const p = headerPayload(HEADER_BYTES, 1, 0);
    stampHeader(p, 0, 1, 0, -5, false);
    expect(p.readUInt32LE(OFF_LAG)).toBe(0);
    expect(p[OFF_FLAGS]).toBe(0);
    stampHeader(p, 0, 1, 0, 1e12, true);
    expect(p.readUInt32LE(OFF_LAG)).toBe(0xffffffff);
    expect(() => headerPayload(HEADER_BYTES - 1, 1, 0)).toThrow(/below the 28-byte header/);
  });
});
