/**
 * A probe report as people read it (one line per check, in sections) and as machines read it (one
 * JSON object, sections as keys, each check under its id with its status, value and detail).
 */
import { escapeForTerminal } from '../cli/escape.js';
import { VERSION_LABEL } from '../protocol/index.js';
import { type CheckResult, type CheckStatus, type ProbeReport, SECTION_TITLES, SECTIONS } from './types.js';

/** How each status is written in the text report. */
export const STATUS_LABEL: Record<CheckStatus, string> = {
  pass: 'pass',
  fail: 'FAIL',
  unsupported: 'not supported',
  skipped: 'skipped',
  info: 'info',
};

/** Colouring, supplied by the caller (identity functions when colour is off). */
export interface Paint {
  status(status: CheckStatus, text: string): string;
  heading(text: string): string;
  dim(text: string): string;
}

export const NO_PAINT: Paint = { status: (_s, t) => t, heading: (t) => t, dim: (t) => t };

export type Summary = Record<CheckStatus, number>;

export function summarize(results: readonly CheckResult[]): Summary {
  const s: Summary = { pass: 0, fail: 0, unsupported: 0, skipped: 0, info: 0 };
  for (const r of results) s[r.status]++;
  return s;
}

/** The text report, ending in a newline. */
export function formatReport(report: ProbeReport, paint: Paint = NO_PAINT): string {
  const lines: string[] = [];
  const version = VERSION_LABEL[report.version];
  lines.push(paint.heading(`mq probe ${report.target}: MQTT ${version}, topics under ${report.prefix}`));
  if (report.fallback !== undefined) lines.push(`(${report.fallback}: probed in MQTT 3.1.1)`);
  const width = Math.max(...report.results.map((r) => r.title.length), 10);
  const statusWidth = Math.max(...Object.values(STATUS_LABEL).map((s) => s.length));
  for (const section of SECTIONS) {
    const rows = report.results.filter((r) => r.section === section);
    if (rows.length === 0) continue;
    lines.push('', paint.heading(SECTION_TITLES[section]));
    for (const r of rows) {
      const status = paint.status(r.status, STATUS_LABEL[r.status].padEnd(statusWidth));
      // Details quote what came from the network; error messages may carry it raw.
      let detail = escapeForTerminal(r.detail);
      if (r.cleanupError !== undefined)
        detail += paint.dim(` (cleanup failed: ${escapeForTerminal(r.cleanupError)})`);
      lines.push(`  ${r.title.padEnd(width)}  ${status}  ${detail}`);
    }
  }
  const s = summarize(report.results);
  const counts = [
    `${s.pass} pass`,
    `${s.fail} fail`,
    `${s.unsupported} not supported`,
    `${s.skipped} skipped`,
    `${s.info} info`,
  ].join(', ');
  lines.push(
    '',
    `${report.interrupted ? 'Interrupted: ' : ''}${counts} in ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  return `${lines.join('\n')}\n`;
}

/** The JSON report: one object, sections as keys, checks under their ids. */
export function reportJson(report: ProbeReport): Record<string, unknown> {
  const out: Record<string, unknown> = {
    target: report.target,
    transport: report.transport,
    version: VERSION_LABEL[report.version],
    prefix: report.prefix,
  };
  if (report.fallback !== undefined) out.fallback = report.fallback;
  out.durationMs = report.durationMs;
  out.interrupted = report.interrupted;
  out.summary = summarize(report.results);
  for (const section of SECTIONS) {
    const rows = report.results.filter((r) => r.section === section);
    if (rows.length === 0) continue;
    const checks: Record<string, unknown> = {};
    for (const r of rows) checks[r.id] = checkJson(r);
    out[section] = checks;
  }
  return out;
}

/** One check in the JSON report: the verdict and the figures first, then the words. */
function checkJson(r: CheckResult): Record<string, unknown> {
  const out: Record<string, unknown> = { status: r.status };
  if (r.value !== undefined) out.value = r.value;
  if (r.unit !== undefined) out.unit = r.unit;
  if (r.bounded !== undefined) out.bounded = r.bounded;
  if (r.announced !== undefined) out.announced = r.announced;
  if (r.numbers !== undefined) out.numbers = r.numbers;
  out.detail = r.detail;
  out.ms = r.ms;
  if (r.cleanupError !== undefined) out.cleanupError = r.cleanupError;
  return out;
}
