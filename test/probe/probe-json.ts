/**
 * Reading `mq probe --json` in tests: each check as one comparable line (status, value, detail with
 * what varies from run to run masked: times, the random prefix, broker-assigned ids), and the lines
 * that differ between two reports.
 */
import { expect } from 'vitest';
import { spawnMq } from '../helpers/spawn.js';

export const SECTIONS = ['versions', 'announces', 'delivery', 'sessions', 'limits', 'identity'] as const;

export interface CheckJson {
  status: 'pass' | 'fail' | 'unsupported' | 'skipped' | 'info';
  value?: number | boolean | string;
  announced?: boolean;
  bounded?: boolean;
  unit?: string;
  numbers?: Record<string, number>;
  detail: string;
  ms: number;
  cleanupError?: string;
}

export type ProbeJson = Record<string, unknown> & {
  prefix: string;
  version: string;
  durationMs: number;
  interrupted: boolean;
  summary: Record<CheckJson['status'], number>;
  connack: { reasonCode: number; properties?: Record<string, unknown> };
};

/** `mq probe -p PORT --json ARGS`: the parsed report (exit 0 and nothing on stderr asserted). */
export async function probeJson(port: number, args: string[] = [], timeoutMs = 30_000): Promise<ProbeJson> {
  const r = await spawnMq(['probe', '-h', '127.0.0.1', '-p', String(port), '--json', ...args]).exit(
    timeoutMs,
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as ProbeJson;
}

/** Every check of a report, `section.id` -> the check. */
export function checks(report: ProbeJson): Map<string, CheckJson> {
  const out = new Map<string, CheckJson>();
  for (const section of SECTIONS) {
    const entries = (report[section] ?? {}) as Record<string, CheckJson>;
    for (const [id, check] of Object.entries(entries)) out.set(`${section}.${id}`, check);
  }
  return out;
}

/** The probe's client ids: mqp, 8 random hex digits, -N. */
const PROBE_CLIENT_ID = /mqp[0-9a-f]{8}-\d+/g;

/** A check as one line, with what varies between runs of the same broker masked. */
export function line(check: CheckJson, prefix: string): string {
  const detail = check.detail
    .split(prefix)
    .join('<prefix>')
    .replace(/\d+(?:\.\d+)? (?:ms|s)\b/g, '<time>')
    .replace(/\d+\.\d+x/g, '<ratio>')
    .replace(/"mq-[0-9a-f]{16}"/g, '<assigned id>');
  // A value may hold a random name too (mq broker's Response Information holds the client id).
  const value = JSON.stringify(check.value)?.replace(PROBE_CLIENT_ID, '<client id>');
  return `${check.status} ${value} ${detail.replace(PROBE_CLIENT_ID, '<client id>')}`;
}

/** The `section.id` keys whose lines differ between two reports (a check missing from one counts). */
export function changedLines(a: ProbeJson, b: ProbeJson): string[] {
  const ca = checks(a);
  const cb = checks(b);
  const keys = new Set([...ca.keys(), ...cb.keys()]);
  const changed: string[] = [];
  for (const key of keys) {
    const x = ca.get(key);
    const y = cb.get(key);
    if (x === undefined || y === undefined || line(x, a.prefix) !== line(y, b.prefix)) changed.push(key);
  }
  return changed.sort();
}
