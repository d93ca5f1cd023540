/** Helpers for the flags of every command: repeatable options, one source out of several. */
import { UsageError } from './errors.js';

/** commander argParser of a repeatable option: every value, in order (`-t a -t b` -> ['a', 'b']). */
export const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

/**
 * The one choice given among `choices` ([value, flag, given]): a UsageError saying `none` when none
 * is, or "-m and -f cannot be combined: `several`" when more than one is.
 */
export function exactlyOne<T>(choices: readonly [T, string, boolean][], none: string, several: string): T {
  const chosen = choices.filter((c) => c[2]);
  if (chosen.length === 0) throw new UsageError(none);
  if (chosen.length > 1) {
    throw new UsageError(`${chosen.map((c) => c[1]).join(' and ')} cannot be combined: ${several}`);
  }
  return chosen[0]![0];
}
