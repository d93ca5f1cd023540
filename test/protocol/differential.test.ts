/**
 * Differential tests: random valid packets (fast-check) must decode identically with mq and with
 * mqtt-packet (the test oracle), and encode to identical bytes wherever mqtt-packet's encoding is
 * the canonical one.
 *
 * Intentional differences, all in v5 packets without properties, where the spec lets the property
 * length (and a 0x00 reason code) be left out. mq writes the reason code exactly when the packet
 * has one (`reasonCode` undefined = short form), so decoded packets encode back to their bytes:
 *   - PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code: mq writes it and no property length;
 *     mqtt-packet drops a 0x00 and appends a 0 property length to any other.
 *   - DISCONNECT and AUTH: mq writes the reason code if present and no property length;
 *     mqtt-packet always writes both.
 * In those cases both codecs must still read each other's bytes back to the same packet.
 * Property order: both write properties in the order given; the arbitraries give identifier order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, encode, type Packet, type ProtocolVersion, packetSize } from '../../src/protocol/index.js';
import { packetArbitraries } from '../fixtures/arbitraries.js';
import { canonical, mpGenerate, mpParse } from '../helpers/mqtt-packet-adapter.js';

const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];
/** Per packet type and version: 14-15 types x 200 = 2,800-3,000 packets per version. */
const RUNS_PER_TYPE = 200;

/** True where mq's bytes differ from mqtt-packet's by design (see the header comment). */
function differsByDesign(p: Packet, version: ProtocolVersion): boolean {
  if (version !== 5) return false;
  switch (p.type) {
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return p.properties === undefined && p.reasonCode !== undefined;
    case 'DISCONNECT':
    case 'AUTH':
      return p.properties === undefined;
    default:
      return false;
  }
}

describe.each(VERSIONS)('mq and mqtt-packet agree on random valid packets, version %i', (version) => {
  for (const [type, arbitrary] of Object.entries(packetArbitraries(version))) {
    it(`${type}: ${RUNS_PER_TYPE} random packets`, () => {
      fc.assert(
        fc.property(arbitrary, (p) => {
          const want = canonical(p, version);
          const ours = encode(p, version);
          const theirs = mpGenerate(p, version);

          expect(packetSize(p, version)).toBe(ours.length);
          // mq reads mqtt-packet's bytes, and its own, back to the same packet.
          expect(canonical(decode(theirs, version), version)).toEqual(want);
          expect(canonical(decode(ours, version), version)).toEqual(want);
          // mqtt-packet reads mq's bytes back to the same packet.
          expect(mpParse(ours, version)).toEqual([expect.anything()]);
          expect(canonical(mpParse(ours, version)[0] as Packet, version)).toEqual(want);
          // Same bytes, except for the documented short forms.
          if (!differsByDesign(p, version)) expect(ours.toString('hex')).toBe(theirs.toString('hex'));
        }),
        { numRuns: RUNS_PER_TYPE },
      );
    });
  }
});
