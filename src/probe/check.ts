/**
 * One check: an independent unit with its own connections, topics, time limit and cleanup, that
 * ends in an Outcome. The runner runs them concurrently (runner.ts).
 */
import type { CheckScope, ProbeContext } from './scope.js';
import type { Outcome, SectionName } from './types.js';

export interface Check {
  section: SectionName;
  /** Key in its section of the JSON report. */
  id: string;
  /** Label of its line in the text report. */
  title: string;
  /** Runs only when the probe speaks MQTT 5 (else: skipped). */
  v5?: boolean;
  /**
   * Time the check waits on purpose (an expiry, a keepalive, a binary search of many round trips),
   * in milliseconds, added to --timeout. Checks with more start first.
   */
  extraMs?: (ctx: ProbeContext) => number;
  run(scope: CheckScope): Promise<Outcome>;
}

/** The check factory of one section: `const check = checksOf('sessions')`, then `check(id, title, run)`. */
export function checksOf(section: SectionName) {
  return (
    id: string,
    title: string,
    run: Check['run'],
    extra: Pick<Check, 'v5' | 'extraMs'> = {},
  ): Check => ({
    section,
    id,
    title,
    run,
    ...extra,
  });
}
