/** The message of the UsageError `p` rejects with (the assertion fails when it resolves or rejects otherwise). */
import { expect } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';

export async function usageError(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  return (err as Error).message;
}
