/**
 * The streaming Framer: chunks of any size in, whole packets out, in order; the size limit is
 * checked from the fixed header alone; the version may change between packets of one chunk.
 */
import { describe, expect, it } from 'vitest';
import {
  encode,
  Framer,
  MalformedPacketError,
  type Packet,
  PacketTooLargeError,
  type ProtocolVersion,
  readFixedHeader,
} from '../../src/protocol/index.js';
import { bytesOf, FIXTURES } from '../fixtures/packets.js';
import { deepCopy, withoutEmptyProperties } from '../helpers/codec.js';

const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];

/** Every fixture of `version`, back to back (CONNECT decodes under any version). */
function streamOf(version: ProtocolVersion) {
  const fixtures = FIXTURES.filter((f) => f.version === version);
  return { fixtures, bytes: Buffer.concat(fixtures.map(bytesOf)) };
}

interface Frame {
  packet: Packet;
  raw: string;
}

/** Pushes `chunks` and records each packet (copied: payloads are views) with its raw bytes. */
function frame(version: ProtocolVersion, chunks: Buffer[]): Frame[] {
  const framer = new Framer(version);
  const out: Frame[] = [];
  for (const chunk of chunks) {
    framer.push(chunk, (packet, raw) => {
      out.push({ packet: deepCopy(withoutEmptyProperties(packet)), raw: raw.toString('hex') });
    });
  }
  expect(framer.buffered).toBe(0);
  return out;
}

const expected = (fixtures: ReturnType<typeof streamOf>['fixtures']): Frame[] =>
  fixtures.map((f) => ({
    packet: deepCopy(withoutEmptyProperties(f.packet)),
    raw: bytesOf(f).toString('hex'),
  }));

describe.each(VERSIONS)('a stream of mixed packets, version %i', (version) => {
  const { fixtures, bytes } = streamOf(version);
  const want = expected(fixtures);

  it(`holds every packet type (${fixtures.length} packets, ${bytes.length} bytes)`, () => {
    const types = new Set(fixtures.map((f) => f.packet.type));
    expect(types.size).toBe(version === 5 ? 15 : 14);
  });

  it('in one chunk', () => {
    expect(frame(version, [bytes])).toEqual(want);
  });

  it('split in two at every split point', () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = frame(version, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      if (got.length !== want.length) throw new Error(`split at ${cut}: ${got.length} packets`);
      expect(got, `split at ${cut}`).toEqual(want);
    }
  });

  it('one byte at a time', () => {
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(frame(version, chunks)).toEqual(want);
  });

  it('in irregular chunks of 1 to 7 bytes', () => {
    const chunks: Buffer[] = [];
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 7) + 1) chunks.push(bytes.subarray(i, i + n));
    expect(frame(version, chunks)).toEqual(want);
  });

  it('keeps no reference to a chunk after push returns (the caller may reuse its read buffer)', () => {
    const scratch = Buffer.alloc(3);
    const framer = new Framer(version);
    const got: Frame[] = [];
    for (let i = 0; i < bytes.length; i += 3) {
      const n = bytes.copy(scratch, 0, i, i + 3);
      framer.push(scratch.subarray(0, n), (packet, raw) => {
        got.push({ packet: deepCopy(withoutEmptyProperties(packet)), raw: raw.toString('hex') });
      });
      scratch.fill(0xee); // what a reused read buffer would hold next
    }
    expect(got).toEqual(want);
  });
});

/** Every v5 fixture back to back, and each packet as [its bytes in hex, its fixed header length]. */
function framesOfV5() {
  const { fixtures, bytes } = streamOf(5);
  const want = fixtures.map((f) => [bytesOf(f).toString('hex'), readFixedHeader(bytesOf(f))?.headerLength]);
  return { fixtures, bytes, want };
}

describe('pushFrames: framing without decoding', () => {
  const { bytes, want } = framesOfV5();

  function frames(chunks: Buffer[]): (string | number | undefined)[][] {
    const framer = new Framer(5);
    const out: (string | number | undefined)[][] = [];
    for (const chunk of chunks) {
      framer.pushFrames(chunk, (raw, headerLength) => {
        out.push([raw.toString('hex'), headerLength]);
        return true;
      });
    }
    expect(framer.buffered).toBe(0);
    return out;
  }

  it('yields each packet with its fixed header length, at every split point', () => {
    expect(want.some(([, h]) => h === 3)).toBe(true); // a two-byte remaining length is among them
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(frames([bytes.subarray(0, cut), bytes.subarray(cut)]), `split at ${cut}`).toEqual(want);
    }
  });

  it('hands over malformed packets as they are: it does not decode', () => {
    const bad = Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00]); // SUBSCRIBE, flags 0000
    expect(frames([bad])).toEqual([[bad.toString('hex'), 2]]);
  });

  it('stops when the callback returns false, dropping the rest of the chunk', () => {
    const framer = new Framer(4);
    const seen: string[] = [];
    framer.pushFrames(Buffer.from([0xc0, 0x00, 0xc0, 0x00, 0xd0]), (raw) => {
      seen.push(raw.toString('hex'));
      return false;
    });
    expect(seen).toEqual(['c000']);
    expect(framer.buffered).toBe(0);
    expect(framer.pushAll(Buffer.from([0xd0, 0x00]))).toEqual([{ type: 'PINGRESP' }]);
  });

  it('checks the maximum packet size from the fixed header', () => {
    const framer = new Framer(4, { maxPacketSize: 1024 });
    expect(() => framer.pushFrames(Buffer.from([0x30, 0x80, 0x10]), () => true)).toThrow(PacketTooLargeError);
  });
});

describe('pushRaw: each packet as a range of a buffer, no Buffer per packet', () => {
  const { fixtures, bytes, want } = framesOfV5();

  /**
   * Frames `chunks` with pushRaw as a socket's onread hands them over: each chunk at the start of a
   * larger read buffer holding stale bytes after it, with its length, and overwritten after the push.
   */
  function frames(chunks: Buffer[]): (string | number | undefined)[][] {
    const framer = new Framer(5);
    const out: (string | number | undefined)[][] = [];
    const readBuffer = Buffer.alloc(bytes.length + 8);
    for (const chunk of chunks) {
      readBuffer.fill(0x30); // stale bytes: a PUBLISH header, if they were read
      chunk.copy(readBuffer);
      framer.pushRaw(
        readBuffer,
        (buf, start, headerLength, end) => {
          out.push([buf.subarray(start, end).toString('hex'), headerLength]);
          return true;
        },
        chunk.length,
      );
      readBuffer.fill(0xee);
    }
    expect(framer.buffered).toBe(0);
    return out;
  }

  it('yields each packet with its fixed header length, at every split point', () => {
    expect(want.some(([, h]) => h === 3)).toBe(true); // a two-byte remaining length is among them
    for (let cut = 0; cut <= bytes.length; cut++) {
      const got = frames([bytes.subarray(0, cut), bytes.subarray(cut)]);
      if (JSON.stringify(got) !== JSON.stringify(want)) expect(got, `split at ${cut}`).toEqual(want);
    }
  });

  it('cut in three at every pair of split points of the first 200 bytes', () => {
    for (let i = 1; i < 200; i++) {
      for (let j = i; j <= 200; j++) {
        const got = frames([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
        if (JSON.stringify(got) !== JSON.stringify(want)) expect(got, `split at ${i} and ${j}`).toEqual(want);
      }
    }
  });

  it('one byte at a time', () => {
    expect(frames(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)))).toEqual(want);
  });

  it('gives packets whole in the chunk as ranges of the chunk, a completed one as its own buffer', () => {
    const framer = new Framer(5);
    const cut = bytesOf(fixtures[0]!).length + 3; // 3 bytes into the second packet
    framer.pushRaw(bytes.subarray(0, cut), () => true);
    const chunk = bytes.subarray(cut);
    const seen: { own: boolean; start: number; end: number; length: number }[] = [];
    framer.pushRaw(chunk, (buf, start, _hl, end) => {
      seen.push({ own: buf === chunk, start, end, length: buf.length });
      return true;
    });
    const second = bytesOf(fixtures[1]!).length;
    expect(seen[0]).toEqual({ own: false, start: 0, end: second, length: second });
    expect(seen[1]).toEqual({
      own: true,
      start: second - 3,
      end: second - 3 + bytesOf(fixtures[2]!).length,
      length: chunk.length,
    });
    expect(seen.every((f, k) => k === 0 || f.own)).toBe(true);
  });

  it('stops when the callback returns false, dropping the rest of the chunk', () => {
    const framer = new Framer(4);
    const seen: string[] = [];
    framer.pushRaw(Buffer.from([0xc0, 0x00, 0xd0, 0x00, 0xd0]), (buf, start, _hl, end) => {
      seen.push(buf.subarray(start, end).toString('hex'));
      return false;
    });
    expect(seen).toEqual(['c000']);
    expect(framer.buffered).toBe(0);
  });

  it('checks the maximum packet size from the fixed header', () => {
    const framer = new Framer(4, { maxPacketSize: 1024 });
    expect(() => framer.pushRaw(Buffer.from([0x30, 0x80, 0x10]), () => true)).toThrow(PacketTooLargeError);
  });
});

describe('a packet straddling chunks', () => {
  const publish = (payload: number, packetId?: number) =>
    encode(
      {
        type: 'PUBLISH',
        dup: false,
        qos: packetId === undefined ? 0 : 1,
        retain: false,
        topic: 'a/b',
        packetId,
        payload: Buffer.alloc(payload, 0x61 + (payload % 26)),
      },
      4,
    );
  const ping = Buffer.from([0xc0, 0x00]);
  const puback = encode({ type: 'PUBACK', packetId: 9 }, 4);
  // 2 + 73 + 2 + 4 + 1,031 (a two-byte remaining length) + 10 bytes.
  const packets = [ping, publish(64, 1), ping, puback, publish(1024), publish(3)];
  const stream = Buffer.concat(packets);
  const want = packets.map((b) => b.toString('hex'));

  /** Frames `chunks` with pushFrames, each chunk in a buffer that is overwritten after the push. */
  function frames(chunks: Buffer[]): string[] {
    const framer = new Framer(4);
    const out: string[] = [];
    for (const chunk of chunks) {
      const reused = Buffer.from(chunk);
      framer.pushFrames(reused, (raw) => {
        out.push(raw.toString('hex'));
        return true;
      });
      reused.fill(0xee);
    }
    expect(framer.buffered).toBe(0);
    return out;
  }

  it('cut in three at every pair of split points around the first four packets', () => {
    for (let i = 1; i < 82; i++) {
      for (let j = i; j <= 83; j++) {
        const got = frames([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        if (got.join() !== want.join()) expect(got, `split at ${i} and ${j}`).toEqual(want);
      }
    }
  });

  it('across 3 and more chunks, the middle ones holding nothing but its bytes', () => {
    const start = 2 + 73 + 2 + 4 + 100; // 100 bytes into the 1 KiB PUBLISH
    for (const middles of [1, 2, 5]) {
      const chunks = [stream.subarray(0, start)];
      const step = Math.floor(800 / middles);
      for (let k = 0; k < middles; k++)
        chunks.push(stream.subarray(start + k * step, start + (k + 1) * step));
      chunks.push(stream.subarray(start + middles * step));
      expect(frames(chunks), `${middles} middle chunks`).toEqual(want);
    }
  });

  it('completed by a one-byte chunk, and by a chunk that holds its last byte and a partial header', () => {
    const end = stream.length - 10; // the last byte of the 1 KiB PUBLISH is at end - 1
    expect(
      frames([stream.subarray(0, end - 1), stream.subarray(end - 1, end), stream.subarray(end)]),
    ).toEqual(want);
    expect(
      frames([stream.subarray(0, end - 1), stream.subarray(end - 1, end + 1), stream.subarray(end + 1)]),
    ).toEqual(want);
  });

  it('frames the rest of the completing chunk in place: its whole packets are views of it', () => {
    const framer = new Framer(4);
    const chunk = stream.subarray(40); // ends the first PUBLISH, then holds every other packet
    const seen: { hex: string; view: boolean }[] = [];
    framer.pushFrames(stream.subarray(0, 40), () => true);
    framer.pushFrames(chunk, (raw) => {
      seen.push({ hex: raw.toString('hex'), view: raw.buffer === chunk.buffer });
      return true;
    });
    expect(seen.map((f) => f.hex)).toEqual(want.slice(1));
    // The completed packet is a copy (its start came from an earlier chunk); the rest are views.
    expect(seen.map((f) => f.view)).toEqual([false, true, true, true, true]);
  });

  it('decodes each packet with the version set by the callback for the one before', () => {
    const connect5 = encode(
      { type: 'CONNECT', protocolVersion: 5, clean: true, keepalive: 10, clientId: 'c' },
      5,
    );
    const publish5 = encode(
      {
        type: 'PUBLISH',
        dup: false,
        qos: 0,
        retain: false,
        topic: 't',
        payload: Buffer.from('x'),
        properties: { contentType: 'c' },
      },
      5,
    );
    const bytes = Buffer.concat([connect5, publish5, publish5]);
    const framer = new Framer(4);
    const seen: Packet[] = [];
    for (const chunk of [bytes.subarray(0, 5), bytes.subarray(5)]) {
      framer.push(chunk, (packet) => {
        if (packet.type === 'CONNECT') framer.version = packet.protocolVersion;
        seen.push(deepCopy(packet));
      });
    }
    expect(seen.map((p) => (p.type === 'PUBLISH' ? p.properties : p.type))).toEqual([
      'CONNECT',
      { contentType: 'c' },
      { contentType: 'c' },
    ]);
  });

  it('stops after the completed packet when the callback returns false', () => {
    const framer = new Framer(4);
    const seen: string[] = [];
    framer.pushFrames(stream.subarray(0, 40), () => true);
    framer.pushFrames(stream.subarray(40), (raw) => {
      seen.push(raw.toString('hex'));
      return false;
    });
    expect(seen).toEqual([want[1]]);
    expect(framer.buffered).toBe(0);
  });

  it('checks the size limit of a packet whose header was split, before buffering its body', () => {
    const framer = new Framer(4, { maxPacketSize: 1000 });
    const big = publish(1024);
    expect(framer.pushAll(Buffer.concat([ping, big.subarray(0, 2)]))).toEqual([{ type: 'PINGREQ' }]);
    expect(() => framer.pushFrames(big.subarray(2, 500), () => true)).toThrow(PacketTooLargeError);
    expect(framer.buffered).toBe(0);
  });
});

describe('maximum packet size', () => {
  const MiB = 1024 * 1024;
  // PUBLISH with remaining length 268,435,455 (0xff 0xff 0xff 0x7f): a 256 MB packet.
  const hugeHeader = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);

  it('rejects a packet from its fixed header alone, before the body arrives', () => {
    const framer = new Framer(4, { maxPacketSize: MiB });
    const seen: Packet[] = [];
    let err: unknown;
    try {
      framer.push(hugeHeader, (p) => seen.push(p));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PacketTooLargeError);
    const e = err as PacketTooLargeError;
    expect(e).toBeInstanceOf(MalformedPacketError);
    expect(e.reasonCode).toBe(0x95);
    expect(e.size).toBe(268_435_455 + 5);
    expect(e.maximum).toBe(MiB);
    expect(seen).toEqual([]);
    expect(framer.buffered).toBeLessThanOrEqual(hugeHeader.length);
  });

  it('rejects it when the fixed header itself arrives split across pushes', () => {
    const framer = new Framer(5, { maxPacketSize: MiB });
    framer.push(hugeHeader.subarray(0, 2), () => {});
    framer.push(hugeHeader.subarray(2, 4), () => {});
    expect(() => framer.push(hugeHeader.subarray(4), () => {})).toThrow(PacketTooLargeError);
  });

  it('rejects it after earlier whole packets in the same chunk were delivered', () => {
    const framer = new Framer(4, { maxPacketSize: MiB });
    const seen: string[] = [];
    const chunk = Buffer.concat([Buffer.from([0xc0, 0x00, 0xd0, 0x00]), hugeHeader]);
    expect(() => framer.push(chunk, (p) => seen.push(p.type))).toThrow(PacketTooLargeError);
    expect(seen).toEqual(['PINGREQ', 'PINGRESP']);
  });

  it('counts the fixed header: a packet of exactly the maximum passes, one byte more does not', () => {
    const publish = (payloadLength: number) =>
      encode(
        {
          type: 'PUBLISH',
          dup: false,
          qos: 0,
          retain: false,
          topic: 't',
          payload: Buffer.alloc(payloadLength),
        },
        4,
      );
    const exact = publish(100);
    const framer = new Framer(4, { maxPacketSize: exact.length });
    expect(framer.pushAll(exact)).toHaveLength(1);
    expect(() => new Framer(4, { maxPacketSize: exact.length }).pushAll(publish(101))).toThrow(
      PacketTooLargeError,
    );
  });
});

describe('protocol version', () => {
  const connect5 = encode(
    { type: 'CONNECT', protocolVersion: 5, clean: true, keepalive: 10, clientId: 'c' },
    5,
  );
  const publishWithProps: Packet = {
    type: 'PUBLISH',
    dup: false,
    qos: 1,
    retain: false,
    topic: 'a/b',
    packetId: 3,
    payload: Buffer.from('hi'),
    properties: { contentType: 'text/plain', userProperties: [['k', 'v']] },
  };
  const publish5 = encode(publishWithProps, 5);

  it('can be changed from inside the callback: the rest of the same chunk decodes with it', () => {
    const framer = new Framer(4);
    const seen: Packet[] = [];
    framer.push(Buffer.concat([connect5, publish5]), (packet) => {
      if (packet.type === 'CONNECT') framer.version = packet.protocolVersion;
      seen.push(packet);
    });
    expect(seen.map((p) => p.type)).toEqual(['CONNECT', 'PUBLISH']);
    expect(seen[1]).toMatchObject({
      topic: 'a/b',
      packetId: 3,
      properties: { contentType: 'text/plain', userProperties: [['k', 'v']] },
    });
    expect((seen[1] as { payload: Buffer }).payload.toString()).toBe('hi');
  });

  it('is not inferred: without the change, the same PUBLISH is read as 3.1.1 (properties become payload)', () => {
    const framer = new Framer(4);
    const seen: Packet[] = [];
    framer.push(Buffer.concat([connect5, publish5]), (packet) => seen.push(packet));
    const p = seen[1];
    if (p?.type !== 'PUBLISH') throw new Error('expected a PUBLISH');
    expect(p.properties).toBeUndefined();
    expect(p.payload.length).toBeGreaterThan(2);
  });
});

describe('errors in a stream', () => {
  it('delivers the packets before a malformed one, then throws a MalformedPacketError', () => {
    const framer = new Framer(4);
    const seen: string[] = [];
    const bad = Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00]); // SUBSCRIBE, flags 0000
    expect(() =>
      framer.push(Buffer.concat([Buffer.from([0xc0, 0x00]), bad]), (p) => seen.push(p.type)),
    ).toThrow(MalformedPacketError);
    expect(seen).toEqual(['PINGREQ']);
  });

  it('a remaining length over 4 bytes throws as soon as the fifth length byte arrives', () => {
    const framer = new Framer(4);
    framer.push(Buffer.from([0x30, 0xff, 0xff]), () => {});
    expect(() => framer.push(Buffer.from([0xff, 0xff, 0x01]), () => {})).toThrow(MalformedPacketError);
  });

  it('reports offsets from the first byte of the offending packet', () => {
    const framer = new Framer(4);
    const bad = Buffer.from([0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x23]); // PUBLISH to 'a/#'
    let err: unknown;
    try {
      framer.push(Buffer.concat([Buffer.from([0xc0, 0x00, 0xd0, 0x00]), bad]), () => {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MalformedPacketError);
    expect((err as MalformedPacketError).offset).toBe(6);
  });
});

describe('readFixedHeader', () => {
  it('reads type, flags and remaining length without decoding the body', () => {
    expect(readFixedHeader(Buffer.from([0x00, 0x3b, 0x80, 0x01, 0xff]), 1)).toEqual({
      typeCode: 3,
      flags: 0x0b,
      remainingLength: 128,
      headerLength: 3,
      totalLength: 131,
    });
  });

  it('returns undefined while the header is incomplete', () => {
    expect(readFixedHeader(Buffer.alloc(0))).toBeUndefined();
    expect(readFixedHeader(Buffer.from([0x30]))).toBeUndefined();
    expect(readFixedHeader(Buffer.from([0x30, 0x80, 0x80]))).toBeUndefined();
  });

  it('throws when the remaining length takes more than 4 bytes', () => {
    expect(() => readFixedHeader(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toThrow(
      MalformedPacketError,
    );
  });
});
