/** Small wording helpers shared by the checks. */
import { safeJson } from '../cli/escape.js';
import { formatReasonCode, type PacketTypeName } from '../protocol/index.js';

/**
 * A string that came from the network, made safe for a terminal: JSON-quoted (control characters
 * escaped by JSON, the rest by escape.ts's safeJson), cut at `max` characters.
 */
export function quoted(text: string, max = 80): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return safeJson(JSON.stringify(cut));
}

/** `0x87 Not authorized` (v5), `return code 5 (not authorized)` (3.1/3.1.1 CONNACK). */
export function code(rc: number, packet: PacketTypeName, version: 3 | 4 | 5 = 5): string {
  if (version !== 5 && packet === 'CONNACK') {
    return `return code ${rc} (${formatReasonCode(rc, 'CONNACK', version).replace(/^0x[0-9a-f]+ /, '')})`;
  }
  return formatReasonCode(rc, packet);
}

/** Milliseconds with one decimal below 10 ms: `0.4 ms`, `12 ms`. */
export function ms(value: number): string {
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

/** A duration for people: `40 ms` below a second, `1.52 s` above. */
export function secs(valueMs: number): string {
  return valueMs < 1000 ? ms(valueMs) : `${(valueMs / 1000).toFixed(2)} s`;
}

/** The median of some numbers (0 for none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
