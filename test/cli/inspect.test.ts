/** The decode engine in process (src/cli/inspect.ts): whatever the bytes, it cuts, decodes and renders without throwing. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecords, formatItem, itemToJson } from '../../src/cli/inspect.js';
import type { Paint } from '../../src/cli/render.js';
import { FIXTURES } from '../fixtures/packets.js';

describe('decodeRecords and its renderers (in process): never crash', () => {
  const noPaint: Paint = {
    bold: (s) => s,
    dim: (s) => s,
    cyan: (s) => s,
    green: (s) => s,
    yellow: (s) => s,
    red: (s) => s,
    magenta: (s) => s,
  };
  const check = (bytes: Uint8Array, version: 3 | 4 | 5 | undefined): void => {
    const items = decodeRecords([{ bytes: Buffer.from(bytes) }], version);
    let covered = 0;
    for (const item of items) {
      expect(item.offset).toBe(covered); // packets are cut back to back
      covered += item.raw.length;
      formatItem(item, false, noPaint);
      formatItem(item, true, noPaint);
      JSON.stringify(itemToJson(item));
      for (const v of item.violations) expect(Number.isInteger(v.offset)).toBe(true);
    }
    expect(covered).toBe(bytes.length);
  };

  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(3, 4, 5, undefined), (bytes, v) => {
        check(bytes, v as 3 | 4 | 5 | undefined);
      }),
      { numRuns: 3000 },
    );
  });

  it('on mutated golden fixtures', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...FIXTURES),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom(4, 5, undefined),
        (f, at, value, v) => {
          const bytes = Uint8Array.from(f.bytes);
          bytes[at % bytes.length] = value;
          check(bytes, v as 4 | 5 | undefined);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
