/** Errors in log lines: one line, escaped, bounded. */

/** An error's message for a log line: control characters escaped, cut at 200 characters. */
export function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const cut = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
