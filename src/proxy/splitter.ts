/**
 * Cuts one direction of a proxied byte stream at packet boundaries without buffering it: decides,
 * at each fixed header, whether the packet's bytes go on (`--drop-every` discards them), hands whole
 * packets to an observer (assembled only when they span chunks, and only up to `assembleLimit`),
 * and in `hold` mode (`--strict`) forwards a packet only once it is whole and the observer accepted
 * it. Whatever it forwards is the bytes as received: slices of the chunk (a chunk with nothing
 * dropped or held goes on as it is), never re-encoded.
 *
 * When the stream cannot be cut any more (a remaining length over 4 bytes), the rest passes
 * through unchanged and undecoded (`lost` is called once), or, in hold mode, the lane is rejected.
 */
import { MalformedPacketError } from '../protocol/errors.js';
import { readFixedHeader } from '../protocol/framer.js';

/** One packet's fixed header, where it starts in the stream, and its place among the lane's packets. */
export interface FrameHead {
  typeCode: number;
  flags: number;
  headerLength: number;
  /** Fixed header + remaining length. */
  total: number;
  /** Stream offset of the packet's first byte (bytes received in this direction before it). */
  offset: number;
  /** 0 for the first packet of the lane. */
  index: number;
}

export interface SplitterHooks {
  /** Called at each fixed header: true discards the packet's bytes. */
  drop?(head: FrameHead): boolean;
  /**
   * Each whole packet in order: `raw` its bytes (a view; copy to keep or change it), or undefined
   * when it is larger than assembleLimit. Returning false (hold mode) rejects it: nothing of it is
   * forwarded and the splitter stops.
   */
  frame?(raw: Buffer | undefined, head: FrameHead, dropped: boolean): boolean | undefined;
  /** The bytes of a packet over assembleLimit, as they pass (for a recording). */
  piece?(bytes: Buffer, head: FrameHead): void;
  /** The stream cannot be cut into packets any more; called once. */
  lost?(error: MalformedPacketError, streamOffset: number): void;
}

export interface SplitterOptions {
  /** Whole packets up to this many bytes reach `frame` with their bytes (default 1 MiB). */
  assembleLimit?: number;
  /** Forward a packet only when whole and accepted by `frame` (--strict). */
  hold?: boolean;
}

export interface SplitResult {
  /** What to forward, in order. */
  out: Buffer[];
  /** The observer rejected a packet (hold mode) or, in hold mode, the stream could not be cut. */
  rejected: boolean;
}

const DEFAULT_ASSEMBLE_LIMIT = 1 << 20;

export class Splitter {
  private readonly hooks: SplitterHooks;
  private readonly limit: number;
  private readonly hold: boolean;
  /**
   * Nothing is dropped or held: bytes of a fixed header split across chunks go on as they come
   * (kept here only to read the header). Otherwise they wait until the header says what to do.
   */
  private readonly eager: boolean;
  /** Bytes received before the current chunk. */
  private streamPos = 0;
  private count = 0;
  /** After a framing failure: everything passes through. */
  private passthrough = false;
  private rejected = false;
  /** A fixed header split across chunks (at most 4 bytes wait here; the 5th completes or fails it). */
  private readonly hdr = Buffer.alloc(5);
  private hdrLen = 0;
  private cur: FrameHead | undefined = undefined;
  private curDropped = false;
  /** Whether the current packet is assembled (observer wants it, it fits the limit). */
  private curAssembled = false;
  /** Whether the current packet is held back until whole (hold mode, fits the limit). */
  private curHeld = false;
  /** Bytes of the current packet still to come. */
  private remaining = 0;
  /** The current packet's bytes received so far, when assembled and it spans chunks. */
  private parts: Buffer[] = [];
  // Per push():
  private out: Buffer[] = [];
  private chunk: Buffer = Buffer.alloc(0);
  private runStart = -1;
  private runEnd = -1;

  constructor(hooks: SplitterHooks, options: SplitterOptions = {}) {
    this.hooks = hooks;
    this.limit = options.assembleLimit ?? DEFAULT_ASSEMBLE_LIMIT;
    this.hold = options.hold === true;
    this.eager = !this.hold && hooks.drop === undefined;
  }

  /** Bytes held back (a split fixed header, or a packet in hold mode). */
  get held(): number {
    if (!this.curHeld) return this.eager ? 0 : this.hdrLen;
    let n = 0;
    for (const p of this.parts) n += p.length;
    return n;
  }

  /**
   * The stream ended: the bytes still held (a split fixed header, a packet held whole in hold mode)
   * as received, to be forwarded as they are. The splitter passes everything through afterwards.
   */
  flush(): Buffer[] {
    const out: Buffer[] = [];
    if (this.hdrLen > 0 && !this.eager) out.push(Buffer.from(this.hdr.subarray(0, this.hdrLen)));
    else if (this.curHeld && !this.curDropped) out.push(...this.parts);
    this.hdrLen = 0;
    this.parts = [];
    this.cur = undefined;
    this.passthrough = true;
    return out;
  }

  push(chunk: Buffer): SplitResult {
    if (this.rejected) return { out: [], rejected: true };
    if (this.passthrough) {
      this.streamPos += chunk.length;
      return { out: [chunk], rejected: false };
    }
    this.out = [];
    this.chunk = chunk;
    this.runStart = this.runEnd = -1;
    let pos = 0;
    while (pos < chunk.length && !this.rejected && !this.passthrough) {
      pos = this.cur === undefined ? this.header(pos) : this.body(pos);
    }
    if (this.passthrough && pos < chunk.length) this.keepChunk(pos, chunk.length);
    this.flushRun();
    this.streamPos += chunk.length;
    const out = this.out;
    this.out = [];
    this.chunk = Buffer.alloc(0);
    return { out, rejected: this.rejected };
  }

  /** Reads a fixed header at `pos` (or completes a split one); returns the new position. */
  private header(pos: number): number {
    const chunk = this.chunk;
    // Bytes of a split header that came in earlier chunks (then pos is 0).
    const carried = this.hdrLen;
    let head: ReturnType<typeof readFixedHeader>;
    let p = pos;
    try {
      if (carried === 0) {
        head = readFixedHeader(chunk, pos);
        if (head === undefined) {
          chunk.copy(this.hdr, 0, pos);
          this.hdrLen = chunk.length - pos;
          if (this.eager) this.keepChunk(pos, chunk.length);
          return chunk.length;
        }
      } else {
        do {
          this.hdr[this.hdrLen++] = chunk[p++]!;
          head = readFixedHeader(this.hdr.subarray(0, this.hdrLen), 0);
        } while (head === undefined && p < chunk.length);
        if (this.eager) this.keepChunk(pos, p);
        if (head === undefined) return p;
      }
    } catch (err) {
      // Eager: the bytes from earlier chunks went on already (and this chunk's were not yet taken).
      this.fail(err, this.streamPos + pos - carried, this.eager ? 0 : carried);
      return pos;
    }
    const h: FrameHead = {
      typeCode: head.typeCode,
      flags: head.flags,
      headerLength: head.headerLength,
      total: head.totalLength,
      offset: this.streamPos + pos - carried,
      index: this.count++,
    };
    this.cur = h;
    this.curDropped = this.hooks.drop?.(h) === true;
    const fits = h.total <= this.limit;
    this.curHeld = fits && this.hold;
    this.curAssembled = fits && (this.hold || this.hooks.frame !== undefined);
    this.parts = [];
    this.remaining = h.total;
    if (carried === 0) return this.body(pos);
    // The header began in an earlier chunk: a copy of it is kept for assembly, and forwarded
    // unless it went on already (eager); p passed its bytes in this chunk.
    const hdrBytes = Buffer.from(this.hdr.subarray(0, this.hdrLen));
    this.hdrLen = 0;
    this.remaining -= hdrBytes.length;
    this.take(hdrBytes, -1, -1, this.eager);
    return this.remaining === 0 ? this.complete(p) : p;
  }

  /** Takes the current packet's bytes from `pos`; returns the new position. */
  private body(pos: number): number {
    const chunk = this.chunk;
    const n = Math.min(this.remaining, chunk.length - pos);
    const h = this.cur!;
    if (n === h.total) {
      // The whole packet is in this chunk: no copy, no assembly.
      this.remaining = 0;
      return this.whole(pos, pos + n);
    }
    this.take(chunk.subarray(pos, pos + n), pos, pos + n);
    this.remaining -= n;
    return this.remaining === 0 ? this.complete(pos + n) : pos + n;
  }

  /** A piece of the current packet: kept for assembly, recorded, forwarded unless held or dropped. */
  private take(bytes: Buffer, from: number, to: number, forwarded = false): void {
    const h = this.cur!;
    if (this.curAssembled) this.parts.push(bytes);
    else this.hooks.piece?.(bytes, h);
    if (this.curDropped || this.curHeld || forwarded) return;
    if (from >= 0) this.keepChunk(from, to);
    else this.keepBuffer(bytes);
  }

  /** A packet entirely inside this chunk at [from, to). */
  private whole(from: number, to: number): number {
    const h = this.cur!;
    this.cur = undefined;
    const raw = this.chunk.subarray(from, to);
    if (!this.curAssembled) this.hooks.piece?.(raw, h);
    const verdict = this.hooks.frame?.(this.curAssembled ? raw : undefined, h, this.curDropped);
    if (verdict === false && this.hold) {
      this.rejected = true;
      return to;
    }
    if (!this.curDropped) this.keepChunk(from, to);
    return to;
  }

  /** The current packet, which spanned chunks, is whole at `pos`. */
  private complete(pos: number): number {
    const h = this.cur!;
    this.cur = undefined;
    const raw = this.curAssembled ? Buffer.concat(this.parts) : undefined;
    this.parts = [];
    const verdict = this.hooks.frame?.(raw, h, this.curDropped);
    if (verdict === false && this.hold) {
      this.rejected = true;
      return pos;
    }
    if (this.curHeld && !this.curDropped && raw !== undefined) this.keepBuffer(raw);
    return pos;
  }

  /** Framing failed at the header starting at stream offset `at`; `carried` of its bytes came earlier. */
  private fail(err: unknown, at: number, carried: number): void {
    const error =
      err instanceof MalformedPacketError
        ? err
        : new MalformedPacketError(err instanceof Error ? err.message : String(err), { offset: 0 });
    this.hooks.lost?.(error, at);
    if (this.hold) {
      this.rejected = true;
      return;
    }
    this.passthrough = true;
    // The header bytes from earlier chunks go on first; push() forwards the rest of this chunk.
    if (carried > 0) this.keepBuffer(Buffer.from(this.hdr.subarray(0, carried)));
    this.hdrLen = 0;
  }

  private keepChunk(from: number, to: number): void {
    if (this.runStart >= 0 && this.runEnd === from) {
      this.runEnd = to;
      return;
    }
    this.flushRun();
    this.runStart = from;
    this.runEnd = to;
  }

  private keepBuffer(bytes: Buffer): void {
    this.flushRun();
    this.out.push(bytes);
  }

  private flushRun(): void {
    if (this.runStart < 0) return;
    const whole = this.runStart === 0 && this.runEnd === this.chunk.length;
    this.out.push(whole ? this.chunk : this.chunk.subarray(this.runStart, this.runEnd));
    this.runStart = this.runEnd = -1;
  }
}
