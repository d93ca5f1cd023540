/**
 * What `mq bench` prints: the live line (once a second, on a TTY's stderr, through an ora spinner),
 * the final summary of a report, the side-by-side table of `mq bench compare`, and the verdicts of
 * --assert. Pure text builders (given a Paint) plus the one live-progress helper.
 *
 * Every string that may come from the network (error reasons, a broker's words) is escaped before
 * it reaches the terminal.
 */
import type { BenchProgress } from '../bench/engine.js';
import type { CompareRow } from '../bench/merge.js';
import type { BenchMode, BenchReport, Percentiles } from '../bench/report.js';
import type { AssertResult } from './bench-assert.js';
import { escapeForTerminal } from './escape.js';

/** The colours the text builders use (a chalk instance fits; identity functions for none). */
export interface BenchPaint {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

// --- numbers ---------------------------------------------------------------------------------

/** 12,345 */
export const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Three significant digits, thousands separated above 1000: 0.843, 2.12, 14.3, 143, 1,234. */
export function ms(n: number): string {
  if (n >= 1000) return count(n);
  if (n === 0) return '0';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3);
}

/** Messages per second: 1,000; 12.5 below 100. */
export const rate = (n: number): string => (n >= 100 ? count(n) : n.toFixed(1).replace(/\.0$/, ''));

/** Seconds for people: 0.8 s, 12.0 s, 2 min 5 s. */
export function seconds(s: number): string {
  if (s >= 120) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${s.toFixed(s >= 10 ? 1 : 2)} s`;
}

/** KiB for people: 512 KiB, 110 MiB, 1.5 GiB. */
export function kib(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} GiB`;
  if (n >= 10 * 1024) return `${Math.round(n / 1024)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} MiB`;
  return `${n >= 100 ? Math.round(n) : n.toFixed(1)} KiB`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`;

const VERSION: Record<number, string> = { 3: 'MQTT 3.1', 4: 'MQTT 3.1.1', 5: 'MQTT 5' };

// --- the live line ---------------------------------------------------------------------------

const STAGE: Record<BenchProgress['stage'], string> = {
  connecting: 'connecting',
  warmup: 'warming up',
  running: 'running',
  draining: 'draining',
  holding: 'holding',
  closing: 'closing',
};

/** `e2e 3 s running: sent 1,000/s, received 998/s, p99 0.42 ms, 0 errors, 5 connections` */
export function progressText(mode: BenchMode, p: BenchProgress): string {
  const head = `mq bench ${mode} ${Math.floor(p.elapsedSec)} s ${STAGE[p.stage]}`;
  const parts: string[] = [];
  if (mode === 'pub' || mode === 'e2e') parts.push(`sent ${rate(p.sentPerSec)}/s`);
  if (mode === 'sub' || mode === 'e2e') parts.push(`received ${rate(p.receivedPerSec)}/s`);
  if (p.p99Ms !== null) parts.push(`p99 ${ms(p.p99Ms)} ms`);
  parts.push(plural(p.errors, 'error'), plural(p.connections, 'connection'));
  return `${head}: ${parts.join(', ')}`;
}

export interface LiveProgress {
  update(p: BenchProgress): void;
  stop(): void;
}

/**
 * The live line: an ora spinner on stderr when it is a TTY and not --quiet; nothing otherwise
 * (no animation, no line per second in a log).
 */
export async function liveProgress(mode: BenchMode, quiet: boolean): Promise<LiveProgress> {
  const stream = process.stderr;
  // A terminal without a width (some pseudo-terminals) cannot have a line rewritten in place.
  const terminal = stream.isTTY === true && stream.columns > 0 && process.env.TERM !== 'dumb';
  if (quiet || !terminal) return { update: () => {}, stop: () => {} };
  const { default: ora } = await import('ora');
  // One line, never wrapped (the spinner takes 2 columns).
  const oneLine = (text: string) => text.slice(0, Math.max(10, stream.columns - 3));
  // discardStdin off: stdin stays as it is, so Ctrl-C raises SIGINT as usual (stopWhen takes it).
  const spinner = ora({
    text: oneLine(`mq bench ${mode}: connecting`),
    stream,
    // Decided above (ora alone would also turn it off wherever CI is set, printing a static line).
    isEnabled: true,
    discardStdin: false,
  }).start();
  return {
    update: (p) => {
      spinner.text = oneLine(progressText(mode, p));
    },
    stop: () => spinner.stop(),
  };
}

// --- the summary -----------------------------------------------------------------------------

/**
 * The mode a report is shown as: its own, or e2e for a merge of publishing and subscribing runs
 * (`mq bench pub` on some machines, `mq bench sub` on others).
 */
export function displayMode(r: BenchReport): BenchMode {
  const modes = new Set<BenchMode>([r.settings.mode, ...(r.sources ?? []).map((s) => s.mode)]);
  const publishing = modes.has('pub') || modes.has('e2e');
  const subscribing = modes.has('sub') || modes.has('e2e');
  return publishing && subscribing ? 'e2e' : r.settings.mode;
}

/** The first line: what ran against what. */
function headline(r: BenchReport): string {
  const s = r.settings;
  const parts = [escapeForTerminal(s.target), VERSION[s.protocolVersion] ?? `MQTT ${s.protocolVersion}`];
  const load =
    s.rate === null
      ? `as fast as the broker takes them${s.qos > 0 ? ` (${s.inflight} in flight per publisher)` : ''}`
      : `${rate(s.rate)} msg/s (open loop)`;
  const payload = `QoS ${s.qos}, ${count(s.size)} B${s.retain ? ' retained' : ''}`;
  if (r.sources !== undefined) {
    // Runs of several machines: their loads differ; the counts add up.
    const modes = [...new Set(r.sources.map((x) => x.mode))].join(' + ');
    const hosts = [...new Set(r.sources.map((x) => escapeForTerminal(x.hostname)))].join(', ');
    const clients =
      s.pubs + s.subs > 0
        ? `${plural(s.pubs, 'publisher')}, ${plural(s.subs, 'subscriber')}`
        : plural(s.clients, 'connection');
    return `mq bench ${modes}, merged from ${plural(r.sources.length, 'report')} (${hosts}): ${parts.join(', ')}, ${clients}`;
  }
  switch (s.mode) {
    case 'conn':
      parts.push(`${plural(s.clients, 'connection')}${s.hold ? ', held' : ''}`);
      if (s.connectRate !== null) parts.push(`${rate(s.connectRate)} connections/s`);
      break;
    case 'pub':
      parts.push(`${plural(s.pubs, 'publisher')} on '${escapeForTerminal(s.topic)}'`, payload, load);
      break;
    case 'sub':
      parts.push(`${plural(s.subs, 'subscriber')} on '${escapeForTerminal(s.filter)}'`, `QoS ${s.qos}`);
      break;
    case 'e2e':
      parts.push(`${plural(s.pubs, 'publisher')} -> ${plural(s.subs, 'subscriber')}`, payload, load);
      break;
    default: {
      const never: never = s.mode;
      parts.push(String(never));
    }
  }
  return `mq bench ${s.mode}: ${parts.join(', ')}`;
}

const ENDING: Record<BenchReport['outcome']['stopReason'], string> = {
  finished: 'finished',
  held: 'held until stopped',
  aborted: 'interrupted: the figures of what ran so far',
  'connections-lost': 'stopped early: every connection was lost',
  'connect-failed': 'stopped: could not connect',
  failed: 'stopped: mq bench failed',
};

function durationLine(r: BenchReport, c: BenchPaint): string {
  const s = r.settings;
  const warm = s.warmupSec > 0 && s.mode !== 'conn' ? ` (after ${seconds(s.warmupSec)} warm-up)` : '';
  const ending = ENDING[r.outcome.stopReason];
  return `${seconds(r.durationSec)} recorded${warm}, ${r.outcome.completed ? ending : c.yellow(ending)}`;
}

function messagesLine(r: BenchReport, c: BenchPaint): string | undefined {
  const m = r.messages;
  const bad = (n: number, text: string) => (n > 0 ? c.red(text) : text);
  const parts: string[] = [];
  const mode = displayMode(r);
  if (mode === 'conn') return undefined;
  if (mode !== 'sub') parts.push(`${count(m.sent)} sent`);
  if (mode === 'pub' || (r.settings.qos > 0 && mode === 'e2e'))
    parts.push(`${count(m.acknowledged)} acknowledged`);
  if (mode !== 'pub') {
    parts.push(`${count(m.received)} received`);
    if (mode === 'e2e') parts.push(`${count(m.expected)} expected`);
    parts.push(
      bad(m.lost, `${count(m.lost)} lost`),
      bad(m.duplicated, `${count(m.duplicated)} duplicated`),
      bad(m.reordered, `${count(m.reordered)} reordered`),
    );
  }
  if (m.foreign > 0) parts.push(`${count(m.foreign)} foreign (ignored)`);
  return parts.join(', ');
}

function throughputLine(r: BenchReport): string | undefined {
  const t = r.throughput;
  const mode = displayMode(r);
  if (mode === 'conn') return undefined;
  const parts: string[] = [];
  if (mode !== 'sub') parts.push(`${rate(t.sentPerSec)} msg/s sent`);
  if (mode === 'pub' && r.settings.qos > 0) parts.push(`${rate(t.acknowledgedPerSec)} msg/s acknowledged`);
  if (mode !== 'pub') parts.push(`${rate(t.receivedPerSec)} msg/s received`);
  return parts.join(', ');
}

function connectionsLine(r: BenchReport, c: BenchPaint): string {
  const k = r.connections;
  // The rate means something when connecting is what is measured.
  const speed = r.settings.mode === 'conn' && k.ratePerSec > 0 ? ` (${rate(k.ratePerSec)}/s)` : '';
  const failed = k.failed > 0 ? c.red(`${count(k.failed)} failed`) : '0 failed';
  const lost = k.lost > 0 ? c.red(`${count(k.lost)} lost`) : '0 lost';
  return `${count(k.connected)} of ${count(k.attempted)} connected${speed}, ${failed}, ${lost}`;
}

function errorsLine(r: BenchReport, c: BenchPaint): string {
  const entries = Object.entries(r.errors).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return 'none';
  return entries.map(([reason, n]) => c.red(`${count(n)} x ${escapeForTerminal(reason)}`)).join('; ');
}

function selfLine(r: BenchReport, c: BenchPaint): string {
  const cpu = r.cpu;
  const text = `CPU ${Math.round(cpu.percentOfOneCore)}% of one core (${plural(cpu.cores, 'core')}; user ${cpu.userSec.toFixed(2)} s, system ${cpu.systemSec.toFixed(2)} s)`;
  const mem = `memory ${kib(r.memory.rssMaxKiB)}${
    r.memory.perConnectionKiB !== null ? `, ${kib(r.memory.perConnectionKiB)} per connection` : ''
  }`;
  return `${cpuBusy(r) ? c.yellow(text) : text}, ${mem}`;
}

/** True when mq bench used more than 90% of its cores: it, not the broker, may have been the limit. */
export const cpuBusy = (r: BenchReport): boolean => r.cpu.percentOfOneCore > 90 * Math.max(1, r.cpu.cores);

const COLUMNS = ['p50', 'p90', 'p99', 'p999', 'max'] as const;

function latencyTable(r: BenchReport, c: BenchPaint): string[] {
  const rows: [string, Percentiles | null][] = [];
  const mode = displayMode(r);
  if (mode === 'e2e' || mode === 'sub') rows.push(['end to end', r.latencyMs]);
  if (r.serviceLatencyMs !== null) rows.push(['  from the write', r.serviceLatencyMs]);
  if (mode === 'pub' || mode === 'e2e') {
    const ack = r.settings.qos === 2 ? 'publish to PUBCOMP' : r.settings.qos === 1 ? 'publish to PUBACK' : '';
    if (ack !== '') rows.push([ack, r.ackMs]);
  }
  rows.push(['connect', r.connectMs.total]);
  if (r.connectMs.tcp !== null) rows.push(['  tcp', r.connectMs.tcp]);
  if (r.connectMs.tls !== null) rows.push(['  tls handshake', r.connectMs.tls]);
  if (r.connectMs.connack !== null) rows.push(['  CONNECT to CONNACK', r.connectMs.connack]);
  const width = Math.max(...rows.map(([label]) => label.length), 'milliseconds'.length) + 2;
  const cell = (text: string) => text.padStart(9);
  const head = `  ${'milliseconds'.padEnd(width)}${['p50', 'p90', 'p99', 'p99.9', 'max'].map(cell).join('')}${cell('count')}`;
  const lines = [c.dim(head)];
  for (const [label, p] of rows) {
    const values = p === null ? [cell('-')] : [...COLUMNS.map((k) => cell(ms(p[k]))), cell(count(p.count))];
    lines.push(`  ${label.padEnd(width)}${values.join('')}`);
  }
  return lines;
}

/** The notes under the table: how to read the figures, and warnings. */
function notes(r: BenchReport): string[] {
  const s = r.settings;
  const out: string[] = [];
  if (r.durationSec === 0 && !r.outcome.completed && s.mode !== 'conn') {
    out.push('stopped before the recording began (while connecting or warming up): nothing was measured');
  }
  if (r.serviceLatencyMs !== null && s.rate !== null) {
    out.push(
      'end to end counts from each message\'s scheduled send time (open loop: a stalled broker shows in full); "from the write" counts from the moment it was written',
    );
  }
  if (r.clock.acrossProcesses) {
    out.push(
      `latency of messages from other processes or machines is only as good as the sync of their clocks${
        r.clock.note !== undefined && !/clock/.test(r.clock.note)
          ? ` (${escapeForTerminal(r.clock.note)})`
          : ''
      }`,
    );
  }
  if (r.messages.lost > 0 && s.qos === 0) {
    out.push('QoS 0 messages a broker drops (e.g. under overload) are counted as lost');
  }
  if (s.mode === 'sub' && s.pubs === 0 && r.messages.received === 0) {
    out.push(
      "no message with mq bench's header arrived: run `mq bench pub` (on any machine) on a matching topic",
    );
  }
  if (cpuBusy(r)) {
    out.push(
      `mq bench used ${Math.round(r.cpu.percentOfOneCore)}% of one core on ${r.cpu.cores} cores: the generator, not the broker, may have been the limit (spread the load over machines and \`mq bench merge\` their reports)`,
    );
  }
  if (Object.keys(r.errors).some((k) => /EMFILE|ENFILE/.test(k))) {
    out.push('out of file descriptors: raise the open-file limit (`ulimit -n`, up to `ulimit -Hn`)');
  }
  return out;
}

/** The final summary of a report (several lines, ending in a newline). */
export function formatSummary(r: BenchReport, c: BenchPaint): string {
  const rows: [string, string | undefined][] = [
    ['duration', durationLine(r, c)],
    ['messages', messagesLine(r, c)],
    ['throughput', throughputLine(r)],
    ['connections', connectionsLine(r, c)],
    ['errors', errorsLine(r, c)],
    ['mq bench', selfLine(r, c)],
  ];
  const lines = [c.bold(headline(r)), ''];
  for (const [label, text] of rows) if (text !== undefined) lines.push(`  ${label.padEnd(13)}${text}`);
  lines.push('', ...latencyTable(r, c));
  const n = notes(r);
  if (n.length > 0) lines.push('', ...n.map((t) => c.dim(`note: ${t}`)));
  return `${lines.join('\n')}\n`;
}

// --- asserts ---------------------------------------------------------------------------------

/** `assert p99<5ms: passed (p99 = 1.23 ms)` per assertion. */
export function formatAsserts(results: readonly AssertResult[], c: BenchPaint): string {
  return results
    .map((a) =>
      a.ok
        ? `assert ${a.assertion.text}: ${c.green('passed')} (${a.detail})\n`
        : `assert ${a.assertion.text}: ${c.red('FAILED')} (${a.detail})\n`,
    )
    .join('');
}

// --- compare ---------------------------------------------------------------------------------

const UNIT: Record<CompareRow['unit'], string> = {
  'msg/s': 'msg/s',
  msgs: '',
  ms: 'ms',
  '%': '%',
  'us/msg': 'us/msg',
  conns: '',
};

function compareValue(row: CompareRow, v: number | null): string {
  if (v === null) return '-';
  switch (row.unit) {
    case 'ms':
      return ms(v);
    case 'msg/s':
      return rate(v);
    case '%':
      return `${Math.round(v)}`;
    case 'us/msg':
      return v.toPrecision(3);
    default:
      return count(v);
  }
}

/** The change of one row, coloured: green when better, red when worse. */
function changeText(row: CompareRow, c: BenchPaint): string {
  if (row.change === null) {
    if (row.a === row.b) return '';
    return row.a === 0 && row.b !== null && row.b > 0
      ? row.better === 'higher'
        ? c.green('new')
        : c.red('new')
      : '';
  }
  const pct = row.change * 100;
  const text = `${pct >= 0 ? '+' : ''}${Math.abs(pct) >= 100 ? pct.toFixed(0) : pct.toFixed(1)}%`;
  if (Math.abs(row.change) < 0.005) return c.dim(text);
  const better = row.better === 'higher' ? row.change > 0 : row.change < 0;
  return better ? c.green(text) : c.red(text);
}

/** One line naming a report: `a.json: e2e against mqtt://h:1883, 2026-05-01 10:00, 10 s`. */
export function describeRun(name: string, r: BenchReport): string {
  const when = r.startedAt.replace('T', ' ').slice(0, 16);
  return `${escapeForTerminal(name)}: ${r.settings.mode} against ${escapeForTerminal(r.settings.target)}, ${when} UTC, ${seconds(r.durationSec)} on ${escapeForTerminal(r.host.hostname)}`;
}

/** Two reports side by side with the change of each figure. */
export function formatCompare(
  names: [string, string],
  reports: [BenchReport, BenchReport],
  rows: readonly CompareRow[],
  c: BenchPaint,
): string {
  const labels = rows.map((r) => (UNIT[r.unit] === '' ? r.label : `${r.label} (${UNIT[r.unit]})`));
  const width = Math.max(...labels.map((l) => l.length), 6) + 2;
  const colA = Math.max(12, names[0].length + 2);
  const colB = Math.max(12, names[1].length + 2);
  const lines = [
    c.bold('mq bench compare'),
    `  a  ${describeRun(names[0], reports[0])}`,
    `  b  ${describeRun(names[1], reports[1])}`,
    '',
    c.dim(`  ${''.padEnd(width)}${'a'.padStart(colA)}${'b'.padStart(colB)}   change`),
  ];
  rows.forEach((row, i) => {
    lines.push(
      `  ${labels[i]!.padEnd(width)}${compareValue(row, row.a).padStart(colA)}${compareValue(row, row.b).padStart(colB)}   ${changeText(row, c)}`,
    );
  });
  return `${lines.join('\n')}\n`;
}
