/**
 * `--html FILE`: one self-contained page (inline SVG and CSS, no script, no network, system fonts)
 * with, for one run or several compared runs:
 *
 * - the latency percentile curve as HdrHistogram plots it: x = 1/(1-p) on a log scale (0%, 90%,
 *   99%, 99.9%... equally spaced), y = latency in ms; from the report's full histogram (end to
 *   end; publish-to-ack for a pub run, connect time for a conn run);
 * - throughput over time, from report.timeline (sent and received per second);
 * - the key figures side by side.
 */
import { decodeHistogram } from '../bench/histogram.js';
import type { BenchReport } from '../bench/report.js';
import { count, displayMode, ms, rate, seconds } from './bench-output.js';

export interface HtmlRun {
  /** How the run is named in the legend (a file name, "this run"). */
  name: string;
  report: BenchReport;
}

const COLORS = ['#1f6fd1', '#e8590c', '#2b8a3e', '#9c36b5', '#c92a2a', '#0b7285'];
const W = 860;
const H = 360;
const M = { left: 64, right: 36, top: 20, bottom: 46 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

const esc = (text: string): string =>
  text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`).replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '');

const f = (n: number) => (Math.round(n * 10) / 10).toString();

/** A round axis maximum at or above `v` (1, 2, 2.5, 5 x 10^k). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Which distribution of a report the percentile plot shows. */
function distribution(r: BenchReport): { label: string; encoded: string } | undefined {
  const h = r.histograms;
  if (h.latency !== undefined) return { label: 'end to end', encoded: h.latency };
  if (h.ack !== undefined)
    return { label: r.settings.qos === 2 ? 'publish to PUBCOMP' : 'publish to PUBACK', encoded: h.ack };
  if (h.connectTotal !== undefined) return { label: 'connect', encoded: h.connectTotal };
  return undefined;
}

interface Curve {
  run: number;
  label: string;
  /** [decades (log10 of 1/(1-p)), ms] */
  points: [number, number][];
}

/** The percentile curve of one histogram: points every 1/40 decade up to the decade its count reaches. */
function percentileCurve(encoded: string): [number, number][] {
  const h = decodeHistogram(encoded);
  const n = h.totalCount;
  if (n === 0) return [];
  const decades = Math.min(6, Math.max(1, Math.ceil(Math.log10(n))));
  const points: [number, number][] = [];
  for (let i = 0; i <= decades * 40; i++) {
    const d = i / 40;
    const p = 100 * (1 - 10 ** -d);
    points.push([d, h.getValueAtPercentile(Math.min(p, 100)) / 1000]);
  }
  points.push([decades, h.getValueAtPercentile(100) / 1000]);
  return points;
}

function axisLabel(decade: number): string {
  if (decade === 0) return '0%';
  const p = 100 * (1 - 10 ** -decade);
  return `${p.toFixed(Math.max(0, decade - 2))}%`;
}

function legend(items: { color: string; text: string; dashed?: boolean }[]): string {
  return items
    .map((it, i) => {
      const y = M.top + 14 + i * 18;
      const x = M.left + 14;
      return `<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${it.color}" stroke-width="2.5"${
        it.dashed ? ' stroke-dasharray="6 4"' : ''
      }/><text x="${x + 28}" y="${y}" class="legend">${esc(it.text)}</text>`;
    })
    .join('');
}

function frame(id: string, title: string, body: string, xTitle: string, yTitle: string): string {
  return `<figure><figcaption>${esc(title)}</figcaption>
<svg id="${id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">
<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" class="plot"/>
${body}
<text x="${M.left + PW / 2}" y="${H - 8}" class="axis-title" text-anchor="middle">${esc(xTitle)}</text>
<text x="14" y="${M.top + PH / 2}" class="axis-title" text-anchor="middle" transform="rotate(-90 14 ${M.top + PH / 2})">${esc(yTitle)}</text>
</svg></figure>`;
}

function yGrid(yMax: number, unit: (v: number) => string): string {
  let out = '';
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    const y = M.top + PH - (PH * i) / 5;
    out += `<line x1="${M.left}" y1="${f(y)}" x2="${M.left + PW}" y2="${f(y)}" class="grid"/><text x="${M.left - 6}" y="${f(y + 4)}" class="tick" text-anchor="end">${esc(unit(v))}</text>`;
  }
  return out;
}

function latencyChart(runs: readonly HtmlRun[]): string {
  const curves: Curve[] = [];
  runs.forEach((run, i) => {
    const d = distribution(run.report);
    if (d !== undefined)
      curves.push({ run: i, label: `${run.name} (${d.label})`, points: percentileCurve(d.encoded) });
  });
  const title = 'Latency by percentile';
  if (curves.length === 0)
    return `<figure><figcaption>${title}</figcaption><p class="none">No latency was measured.</p></figure>`;
  const decades = Math.max(...curves.map((c) => c.points[c.points.length - 1]?.[0] ?? 1));
  const yMax = niceMax(Math.max(...curves.flatMap((c) => c.points.map((p) => p[1]))));
  const x = (d: number) => M.left + (PW * d) / decades;
  const y = (v: number) => M.top + PH - (PH * v) / yMax;
  let body = yGrid(yMax, (v) => ms(v));
  for (let d = 0; d <= decades; d++) {
    body += `<line x1="${f(x(d))}" y1="${M.top}" x2="${f(x(d))}" y2="${M.top + PH}" class="grid"/><text x="${f(x(d))}" y="${M.top + PH + 16}" class="tick" text-anchor="middle">${axisLabel(d)}</text>`;
  }
  for (const c of curves) {
    const d = c.points.map(([px, v], i) => `${i === 0 ? 'M' : 'L'}${f(x(px))},${f(y(v))}`).join('');
    body += `<path class="curve" data-run="${c.run}" d="${d}" fill="none" stroke="${COLORS[c.run % COLORS.length]}" stroke-width="2.5"/>`;
  }
  body += legend(curves.map((c) => ({ color: COLORS[c.run % COLORS.length]!, text: c.label })));
  return frame('latency', title, body, 'percentile (log scale: 1/(1-p))', 'milliseconds');
}

interface Series {
  run: number;
  label: string;
  dashed: boolean;
  points: [number, number][];
}

/** Per-second rates from the timeline; the last, partial second scaled to a whole one. */
function timelineSeries(run: HtmlRun, i: number): Series[] {
  const r = run.report;
  const mode = displayMode(r);
  const within = r.timeline.filter((p) => p.t < Math.max(r.durationSec, 1));
  const perSec = (t: number, n: number) => n / Math.max(0.05, Math.min(1, r.durationSec - t));
  const out: Series[] = [];
  if (mode === 'pub' || mode === 'e2e') {
    out.push({
      run: i,
      label: `${run.name} sent`,
      dashed: mode === 'e2e',
      points: within.map((p) => [p.t, perSec(p.t, p.sent)]),
    });
  }
  if (mode === 'sub' || mode === 'e2e') {
    out.push({
      run: i,
      label: `${run.name} received`,
      dashed: false,
      points: within.map((p) => [p.t, perSec(p.t, p.received)]),
    });
  }
  return out.filter((s) => s.points.length > 0);
}

function throughputChart(runs: readonly HtmlRun[]): string {
  const series = runs.flatMap((run, i) => timelineSeries(run, i));
  const title = 'Throughput over time';
  if (series.length === 0)
    return `<figure><figcaption>${title}</figcaption><p class="none">No messages were sent or received.</p></figure>`;
  const tMax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0] + 1)));
  const yMax = niceMax(Math.max(...series.flatMap((s) => s.points.map((p) => p[1]))));
  const x = (t: number) => M.left + (PW * t) / tMax;
  const y = (v: number) => M.top + PH - (PH * v) / yMax;
  let body = yGrid(yMax, (v) => rate(v));
  const step = niceMax(tMax / 10);
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    body += `<line x1="${f(x(t))}" y1="${M.top}" x2="${f(x(t))}" y2="${M.top + PH}" class="grid"/><text x="${f(x(t))}" y="${M.top + PH + 16}" class="tick" text-anchor="middle">${f(t)}</text>`;
  }
  for (const s of series) {
    // Each second's rate drawn at the middle of its second.
    const d = s.points.map(([t, v], i) => `${i === 0 ? 'M' : 'L'}${f(x(t + 0.5))},${f(y(v))}`).join('');
    const color = COLORS[s.run % COLORS.length]!;
    body += `<path class="rate" data-run="${s.run}" d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
    for (const [t, v] of s.points)
      body += `<circle cx="${f(x(t + 0.5))}" cy="${f(y(v))}" r="2.5" fill="${color}"/>`;
  }
  body += legend(
    series.map((s) => ({ color: COLORS[s.run % COLORS.length]!, text: s.label, dashed: s.dashed })),
  );
  return frame('throughput', title, body, 'seconds of the recording', 'messages per second');
}

function figuresTable(runs: readonly HtmlRun[]): string {
  const rows: [string, (r: BenchReport) => string][] = [
    ['mode', (r) => r.settings.mode],
    ['broker', (r) => r.settings.target],
    ['started (UTC)', (r) => r.startedAt.replace('T', ' ').slice(0, 19)],
    ['recorded', (r) => `${seconds(r.durationSec)} (${r.outcome.stopReason})`],
    [
      'load',
      (r) =>
        `${r.settings.pubs} pub, ${r.settings.subs} sub, QoS ${r.settings.qos}, ${r.settings.size} B, ${r.settings.rate === null ? 'closed loop' : `${rate(r.settings.rate)} msg/s`}`,
    ],
    ['sent / received', (r) => `${count(r.messages.sent)} / ${count(r.messages.received)}`],
    [
      'lost / duplicated / reordered',
      (r) => `${count(r.messages.lost)} / ${count(r.messages.duplicated)} / ${count(r.messages.reordered)}`,
    ],
    [
      'throughput (msg/s)',
      (r) => `${rate(r.throughput.sentPerSec)} sent, ${rate(r.throughput.receivedPerSec)} received`,
    ],
    [
      'latency p50 / p99 / p99.9 / max (ms)',
      (r) =>
        r.latencyMs === null
          ? '-'
          : [r.latencyMs.p50, r.latencyMs.p99, r.latencyMs.p999, r.latencyMs.max].map(ms).join(' / '),
    ],
    ['ack p50 / p99 (ms)', (r) => (r.ackMs === null ? '-' : `${ms(r.ackMs.p50)} / ${ms(r.ackMs.p99)}`)],
    ['connections', (r) => `${count(r.connections.connected)} of ${count(r.connections.attempted)}`],
    ['errors', (r) => String(Object.values(r.errors).reduce((a, b) => a + b, 0))],
    ['mq bench CPU', (r) => `${Math.round(r.cpu.percentOfOneCore)}% of one core`],
  ];
  const head = runs
    .map(
      (run, i) =>
        `<th><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${esc(run.name)}</th>`,
    )
    .join('');
  const body = rows
    .map(
      ([label, get]) =>
        `<tr><th scope="row">${esc(label)}</th>${runs.map((run) => `<td>${esc(get(run.report))}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<table><thead><tr><th></th>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const CSS = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:${W + 40}px}
h1{font-size:20px;margin:0 0 12px}figure{margin:20px 0}figcaption{font-weight:600;margin-bottom:6px}
svg{max-width:100%;height:auto;background:#fff}.plot{fill:#fafafa;stroke:#999}.grid{stroke:#e2e2e2}
.tick{font-size:11px;fill:#555}.axis-title{font-size:12px;fill:#333}.legend{font-size:12px;fill:#222}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
td{font-variant-numeric:tabular-nums}.swatch{display:inline-block;width:10px;height:10px;margin-right:6px}
.none{color:#777}footer{color:#777;font-size:12px;margin-top:24px}`;

/** The whole page for one run or several (compared) runs. */
export function benchHtml(runs: readonly HtmlRun[], title: string): string {
  const first = runs[0]?.report;
  const tool = first !== undefined ? `${first.tool.name} ${first.tool.version}` : 'mq';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
${figuresTable(runs)}
${latencyChart(runs)}
${throughputChart(runs)}
<footer>Made by ${esc(tool)} (mq bench). Latency from the full HDR histograms of the report; throughput per second of the recording.</footer>
</body></html>
`;
}
