/**
 * One direction of a proxied connection: bytes read from `source` are written to `sink`, through
 * the splitter when packets must be seen or dropped, and through a timestamped queue when they are
 * delayed (`--delay`: every byte leaves `delayMs` after it arrived, in order, at the rate it came)
 * or throttled (`--throttle`: a token bucket of `bytesPerSecond`). Backpressure: the source is
 * paused while the sink asks to wait, or while the queue holds more than QUEUE_HIGH bytes.
 * Without a splitter and without faults each chunk is written as it came (no copy, no timer).
 */
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Splitter } from './splitter.js';

export interface LaneFaults {
  /** Every byte is held this many milliseconds (0 = not delayed). */
  delayMs: number;
  /** At most this many bytes per second (0 = unlimited). */
  bytesPerSecond: number;
}

/** Queued (delayed or throttled) bytes above which the source is paused; it resumes below half. */
const QUEUE_HIGH = 1 << 20;
/** A throttled lane may send this much of a second's allowance at once (20 ms worth). */
const BURST_SECONDS = 0.02;

interface Queued {
  due: number;
  buf: Buffer;
}

export class Lane {
  private readonly shaping: boolean;
  private readonly queue: Queued[] = [];
  private head = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined = undefined;
  /** The last stretch before a due time, waited turn by turn (see pump). */
  private immediate: NodeJS.Immediate | undefined = undefined;
  private tokens: number;
  private refilledAt = performance.now();
  private readonly burst: number;
  /** Paused because of the sink (waiting for 'drain') and/or the queue. */
  private sinkFull = false;
  private paused = false;
  private ending: (() => void) | undefined = undefined;
  private stopped = false;
  /** Bytes forwarded so far. */
  forwarded = 0;

  constructor(
    private readonly source: Duplex,
    private readonly sink: Duplex,
    private readonly faults: LaneFaults,
    private readonly splitter: Splitter | undefined,
    /** The splitter rejected a packet (--strict): the connection is to be closed. */
    private readonly onReject: () => void,
  ) {
    this.shaping = faults.delayMs > 0 || faults.bytesPerSecond > 0;
    this.burst = Math.max(1, Math.floor(faults.bytesPerSecond * BURST_SECONDS));
    this.tokens = this.burst;
    sink.on('drain', this.onDrain);
  }

  /** Starts reading the source. */
  start(): void {
    this.source.on('data', this.onData);
    this.source.resume();
  }

  /** The source ended: `done` runs once everything queued has been written. */
  finish(done: () => void): void {
    if (this.stopped) return;
    this.source.off('data', this.onData);
    const rest = this.splitter?.flush() ?? [];
    for (const b of rest) this.send(b);
    this.ending = done;
    this.checkEnded();
  }

  /** Stops at once: nothing more is read or written, queued bytes are dropped. */
  stop(): void {
    this.stopped = true;
    this.source.off('data', this.onData);
    this.sink.off('drain', this.onDrain);
    this.cancelWait();
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.ending = undefined;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.stopped) return;
    if (this.splitter === undefined) {
      this.send(chunk);
      return;
    }
    const { out, rejected } = this.splitter.push(chunk);
    for (const b of out) this.send(b);
    if (rejected) this.onReject();
  };

  private send(buf: Buffer): void {
    if (!this.shaping) {
      this.write(buf);
      return;
    }
    this.queue.push({ due: performance.now() + this.faults.delayMs, buf });
    this.queuedBytes += buf.length;
    if (this.queuedBytes > QUEUE_HIGH) this.pause();
    if (this.queue.length - this.head === 1 && !this.sinkFull) this.pump();
  }

  private write(buf: Buffer): void {
    if (!this.sink.writable) return;
    this.forwarded += buf.length;
    if (!this.sink.write(buf)) {
      this.sinkFull = true;
      this.pause();
    }
  }

  private readonly onDrain = (): void => {
    this.sinkFull = false;
    if (this.shaping) this.pump();
    this.maybeResume();
  };

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.source.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.sinkFull || this.stopped || this.queuedBytes > QUEUE_HIGH / 2) return;
    this.paused = false;
    this.source.resume();
  }

  /** Writes every queued byte that is due (and allowed by the throttle); schedules the next turn. */
  private readonly pump = (): void => {
    this.cancelWait();
    if (this.stopped) return;
    const now = performance.now();
    const rate = this.faults.bytesPerSecond;
    if (rate > 0) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * rate) / 1000);
      this.refilledAt = now;
    }
    let corked = false;
    let wait = -1;
    while (this.head < this.queue.length && !this.sinkFull) {
      const q = this.queue[this.head]!;
      if (q.due > now) {
        wait = q.due - now;
        break;
      }
      let buf = q.buf;
      if (rate > 0) {
        const n = Math.floor(this.tokens);
        if (n < 1) {
          wait = ((Math.min(this.burst, buf.length) - this.tokens) * 1000) / rate;
          break;
        }
        if (n < buf.length) {
          q.buf = buf.subarray(n);
          buf = buf.subarray(0, n);
        }
        this.tokens -= buf.length;
      }
      if (q.buf === buf) this.head++;
      this.queuedBytes -= buf.length;
      if (!corked) {
        this.sink.cork();
        corked = true;
      }
      this.write(buf);
    }
    if (corked) this.sink.uncork();
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (wait >= 0) this.waitFor(wait);
    this.maybeResume();
    this.checkEnded();
  };

  /**
   * Runs pump again in `ms`. A timer fires up to a millisecond or more late (whole milliseconds,
   * checked once per event loop turn), which --delay would add to every byte: so the timer is set
   * a millisecond early and the last stretch is waited one event loop turn at a time (I/O keeps
   * flowing meanwhile). Throttled bytes (a token wait) need no such precision.
   */
  private waitFor(ms: number): void {
    if (ms >= 2 || this.faults.delayMs === 0) this.timer = setTimeout(this.pump, ms >= 2 ? ms - 1 : ms);
    else this.immediate = setImmediate(this.pump);
  }

  private cancelWait(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private checkEnded(): void {
    if (this.ending === undefined || this.head < this.queue.length) return;
    const done = this.ending;
    this.ending = undefined;
    done();
  }
}
