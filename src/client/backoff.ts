/**
 * Reconnect delays: exponential backoff from min to max, with jitter in the upper half of each
 * step so that many clients dropped together do not come back in lockstep.
 */
export interface BackoffRange {
  minMs: number;
  maxMs: number;
}

/** The delay before reconnect attempt `attempt` (1-based): in [base/2, base], base = min(max, min * 2^(attempt-1)). */
export function backoffDelay(
  attempt: number,
  range: BackoffRange,
  random: () => number = Math.random,
): number {
  const base = Math.min(range.maxMs, range.minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}
