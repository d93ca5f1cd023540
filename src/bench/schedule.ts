/**
 * Open-loop send times (`rate`), fixed in advance as wrk2 does: publisher i of P sends its k-th
 * message of a phase at
 *
 *   start + (k * P + i) * 1000 / rate      (ms; rate = messages per second for all publishers)
 *
 * so the publishers take turns at an even spacing and together send `rate` messages a second. A
 * message is stamped with that time, not the time it was actually written: when the broker stalls
 * (a full socket or in-flight window keeps the generator from writing) the wait is part of the
 * latency it reports (coordinated omission corrected).
 */
export class OpenLoopSchedule {
  /** ms between two consecutive messages of all publishers together. */
  readonly gapMs: number;

  constructor(
    /** Messages per second, every publisher of the run together. */
    readonly rate: number,
    /** Publishers in the run (all workers). */
    readonly publishers: number,
    /** Phase start, ms (same clock as nowMs()). */
    readonly startMs: number,
  ) {
    if (!(rate > 0)) throw new RangeError(`rate must be above 0 (got ${rate})`);
    if (!(publishers > 0)) throw new RangeError(`publishers must be above 0 (got ${publishers})`);
    this.gapMs = 1000 / rate;
  }

  /** When publisher `i` sends its k-th message (k from 0). */
  timeOf(i: number, k: number): number {
    return this.startMs + (k * this.publishers + i) * this.gapMs;
  }

  /**
   * How many messages publisher `i` sends in a phase of `durationMs`: those scheduled strictly
   * before its end. Computed from the duration, not from an end time: at epoch-ms magnitudes a
   * float cannot hold the end to better than ~0.2 us, and one message too many would be sent.
   */
  countWithin(i: number, durationMs: number): number {
    // Global slots before the end: the smallest n with n * gap >= duration (1e-9: 1000/3 * 3 ...).
    const slots = Math.ceil(durationMs / this.gapMs - 1e-9);
    if (slots <= i) return 0;
    return Math.floor((slots - 1 - i) / this.publishers) + 1;
  }

  /** How many messages publisher `i` should have sent by `now` (its k-th is due when timeOf(i, k) <= now). */
  dueBy(i: number, now: number): number {
    const slots = Math.floor((now - this.startMs) / this.gapMs);
    if (slots < i) return 0;
    return Math.floor((slots - i) / this.publishers) + 1;
  }
}
