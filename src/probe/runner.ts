/**
 * Runs checks concurrently (a bounded pool), each with its time limit; turns whatever a check throws
 * into a failed (or skipped) outcome, so a broker that drops one check's connection does not end
 * the probe; runs every check's cleanup.
 */
import { ConnectError, DisconnectError, PublishRefusedError } from '../client/index.js';
import { VERSION_LABEL } from '../protocol/index.js';
import type { Check } from './check.js';
import { SourceClosed, WaitTimeout } from './inbox.js';
import { CheckScope, type ProbeContext, Verdict } from './scope.js';
import type { CheckResult, Outcome } from './types.js';

export interface RunOptions {
  concurrency: number;
  signal?: AbortSignal;
  onResult?: (result: CheckResult, done: number, total: number) => void;
}

/** Stopped from outside (Ctrl-C): not the broker's fault. */
class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Results in the order of `checks`. */
export async function runChecks(
  checks: readonly Check[],
  ctx: ProbeContext,
  options: RunOptions,
): Promise<CheckResult[]> {
  const results: (CheckResult | undefined)[] = new Array(checks.length);
  // Checks that wait on purpose start first, so they overlap with the quick ones.
  const order = checks
    .map((check, index) => ({ check, index, extra: check.extraMs?.(ctx) ?? 0 }))
    .sort((a, b) => b.extra - a.extra);
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (;;) {
      const item = order[next++];
      if (item === undefined) return;
      const result = await runOne(item.check, ctx, item.extra, options.signal);
      results[item.index] = result;
      options.onResult?.(result, ++done, checks.length);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency, checks.length)) }, worker);
  await Promise.all(workers);
  return results.map((r) => r!);
}

async function runOne(
  check: Check,
  ctx: ProbeContext,
  extraMs: number,
  signal: AbortSignal | undefined,
): Promise<CheckResult> {
  const base = { section: check.section, id: check.id, title: check.title };
  if (signal?.aborted) return { ...base, status: 'skipped', detail: 'interrupted before it ran', ms: 0 };
  if (check.v5 === true && ctx.version !== 5) {
    const running = VERSION_LABEL[ctx.version];
    return { ...base, status: 'skipped', detail: `MQTT 5 only (the probe runs in MQTT ${running})`, ms: 0 };
  }
  const scope = new CheckScope(ctx, check.id);
  const limitMs = ctx.timeoutMs + extraMs;
  const timer = setTimeout(() => scope.abort(new WaitTimeout('time is up')), limitMs);
  const onInterrupt = () => scope.abort(new Interrupted('interrupted'));
  signal?.addEventListener('abort', onInterrupt, { once: true });
  const started = performance.now();
  let outcome: Outcome;
  try {
    // A check that ignores its signal still ends when its time is up.
    const ended = new Promise<never>((_, reject) => {
      const onAbort = () => reject(scope.signal.reason);
      if (scope.signal.aborted) onAbort();
      else scope.signal.addEventListener('abort', onAbort, { once: true });
    });
    outcome = await Promise.race([check.run(scope), ended]);
  } catch (err) {
    outcome = explain(err, limitMs, signal?.aborted === true);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onInterrupt);
  }
  const ms = Math.round(performance.now() - started);
  const cleanupError = await scope.cleanup(ctx.timeoutMs);
  const result: CheckResult = { ...base, ...outcome, ms };
  if (cleanupError !== undefined) result.cleanupError = cleanupError;
  return result;
}

/** What a check's failure means, in one line. */
function explain(err: unknown, limitMs: number, interrupted: boolean): Outcome {
  if (interrupted) return { status: 'skipped', detail: 'interrupted' };
  if (err instanceof Verdict) return err.outcome;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof WaitTimeout) {
    return { status: 'fail', detail: `no answer within ${formatSeconds(limitMs)}: ${message}` };
  }
  if (err instanceof SourceClosed || err instanceof DisconnectError) {
    return { status: 'fail', detail: `connection lost: ${message}` };
  }
  if (err instanceof ConnectError) return { status: 'fail', detail: message };
  if (err instanceof PublishRefusedError) return { status: 'fail', detail: message };
  return { status: 'fail', detail: `probe error: ${message}` };
}

export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
