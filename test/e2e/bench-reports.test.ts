/**
 * `mq bench` reports end to end: publishers and subscribers in separate processes (as on several
 * machines), `mq bench merge` of real reports (the merged histogram holds both runs' samples),
 * `mq bench compare`, and the --html page as a file (its rendering in Chromium: test/interop).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHistogram, newHistogram } from '../../src/bench/histogram.js';
import type { BenchReport } from '../../src/bench/report.js';
import { benchApart } from '../helpers/bench.js';
import { quietProxyTo } from '../helpers/proxy.js';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

let broker: MqBroker;
let dir: string;
/** Two e2e runs of 400 messages: `slow` through a proxy adding 20 ms, `fast` direct. */
let slowFile: string;
let fastFile: string;

const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as BenchReport;

/** How many samples of `h` are below `micros` (from its percentiles: the rank of the last one below). */
function countBelow(h: ReturnType<typeof decodeHistogram>, micros: number): number {
  const total = h.totalCount;
  let lo = 0;
  let hi = total;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    // The value of the mid-th smallest sample (the percentile falls inside its rank).
    if (h.getValueAtPercentile((100 * (mid - 0.5)) / total) < micros) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

beforeAll(async () => {
  broker = await startMqBroker(['-q']);
  dir = mkdtempSync(join(tmpdir(), 'mq-bench-reports-'));
  slowFile = join(dir, 'slow.json');
  fastFile = join(dir, 'fast.json');
  const proxy = await quietProxyTo(broker.port, ['--delay', 'up:20']);
  try {
    const run = (port: number, file: string, topic: string) =>
      spawnMq([
        'bench',
        'e2e',
        '-p',
        String(port),
        '--topic',
        topic,
        '--rate',
        '400',
        '--count',
        '400',
        '--warmup',
        '0',
        '--json',
        file,
      ]).exit(20_000);
    // One after the other: each measures its own path, not the other's load.
    expect((await run(proxy.port, slowFile, 'slow/%i')).code).toBe(0);
    expect((await run(broker.port, fastFile, 'fast/%i')).code).toBe(0);
  } finally {
    await proxy.stop();
  }
}, 30_000);

afterAll(async () => {
  await broker?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('mq bench merge', () => {
  it('merges histograms (the merged one holds both runs’ samples) and sums counters', async () => {
    const out = join(dir, 'merged.json');
    const r = await spawnMq(['bench', 'merge', slowFile, fastFile, '--json', out]).exit(10_000);
    expect(r.code).toBe(0);
    const [slow, fast, merged] = [read(slowFile), read(fastFile), read(out)];
    // Every sample of the slow run is above 20 ms (the proxy held each PUBLISH 20 ms), most of
    // the fast run's below.
    expect(slow.latencyMs!.min).toBeGreaterThanOrEqual(20);
    expect(fast.latencyMs!.p50).toBeLessThan(20);
    expect(merged.messages.sent).toBe(slow.messages.sent + fast.messages.sent);
    expect(merged.messages.received).toBe(800);
    expect(merged.messages.lost).toBe(0);
    expect(merged.throughput.sentPerSec).toBeCloseTo(
      slow.throughput.sentPerSec + fast.throughput.sentPerSec,
      6,
    );
    expect(merged.latencyMs!.count).toBe(800);
    // The merged histogram holds exactly both runs' samples: below 20 ms the fast run's, above
    // them all 400 of the slow run's too. (Averaging the runs' percentiles would give neither.)
    const [hs, hf, h] = [slow, fast, merged].map((r) => decodeHistogram(r.histograms.latency!)) as [
      ReturnType<typeof decodeHistogram>,
      ReturnType<typeof decodeHistogram>,
      ReturnType<typeof decodeHistogram>,
    ];
    expect(countBelow(hs, 20_000)).toBe(0);
    const fastBelow = countBelow(hf, 20_000);
    expect(fastBelow).toBeGreaterThan(200);
    expect(countBelow(h, 20_000)).toBe(fastBelow);
    expect(h.totalCount - countBelow(h, 20_000)).toBe(400 + (400 - fastBelow));
    expect(merged.latencyMs!.max).toBe(Math.max(slow.latencyMs!.max, fast.latencyMs!.max));
    // The same as recording both runs' samples into one histogram.
    const both = newHistogram();
    for (const f of [slow, fast]) both.add(decodeHistogram(f.histograms.latency!));
    for (const p of [1, 10, 25, 50, 75, 90, 99, 99.9, 100]) {
      expect(h.getValueAtPercentile(p)).toBe(both.getValueAtPercentile(p));
    }
    expect(merged.sources?.map((s) => s.runId)).toEqual([slow.runId, fast.runId]);
    expect(r.stdout).toMatch(
      /^mq bench e2e, merged from 2 reports \(.+\): mqtt:\/\/localhost:\d+, MQTT 5, 2 publishers, 2 subscribers/,
    );
    expect(r.stdout).toMatch(/messages +800 sent, 800 received, 800 expected, 0 lost/);
  });

  it('publishers and subscribers in separate processes: sub counts what pub sent; merged, one report', async () => {
    const subFile = join(dir, 'sub.json');
    const pubFile = join(dir, 'pub.json');
    const { pub, sub: s } = await benchApart(
      broker.port,
      2,
      ['--topic', 'apart/#', '-q', '1', '--count', '1200', '--json', subFile],
      ['-c', '2', '--topic', 'apart/%i', '-q', '1', '--count', '300', '--warmup', '0', '--json', pubFile],
      20_000,
    );
    expect(pub.code).toBe(0);
    expect(pub.stdout).toMatch(/messages +600 sent, 600 acknowledged/);
    expect(s.code).toBe(0);
    // Each of the 2 subscribers gets each of the 600 messages.
    expect(s.stdout).toMatch(/messages +1,200 received, 0 lost, 0 duplicated, 0 reordered/);
    expect(s.stdout).toMatch(
      /note: latency of messages from other processes or machines is only as good as the sync of their clocks/,
    );
    const subReport = read(subFile);
    expect(subReport.clock.acrossProcesses).toBe(true);
    expect(subReport.messages).toMatchObject({ received: 1200, lost: 0, duplicated: 0 });
    const m = await spawnMq([
      'bench',
      'merge',
      pubFile,
      subFile,
      '--assert',
      'lost==0',
      '--assert',
      'received==1200',
    ]).exit(10_000);
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(/^mq bench pub \+ sub, merged from 2 reports/);
    expect(m.stdout).toMatch(/messages +600 sent, 600 acknowledged, 1,200 received, 1,200 expected, 0 lost/);
    expect(m.stdout).toMatch(/assert lost==0: passed/);
  });

  it('files that are not reports: exit 4; missing: exit 6; an unwritable --json: exit 6 before anything runs', async () => {
    const notReport = join(dir, 'not-a-report.json');
    writeFileSync(notReport, '{"hello": 1}');
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, 'hello');
    const a = await spawnMq(['bench', 'merge', notReport]).exit(10_000);
    expect(a.code).toBe(4);
    expect(a.stderr).toMatch(
      /^mq: .*not-a-report\.json: not an mq bench report \(no "schema": "mq-bench-report"\)\n$/,
    );
    const b = await spawnMq(['bench', 'compare', fastFile, notJson]).exit(10_000);
    expect(b.code).toBe(4);
    expect(b.stderr).toMatch(/not-json\.json: not JSON/);
    const c = await spawnMq(['bench', 'merge', join(dir, 'missing.json')]).exit(10_000);
    expect(c.code).toBe(6);
    expect(c.stderr).toMatch(/^mq: cannot read .*missing\.json: no such file\n$/);
    const d = await spawnMq([
      'bench',
      '-p',
      String(broker.port),
      '--json',
      join(dir, 'no/such/dir/r.json'),
    ]).exit(10_000);
    expect(d.code).toBe(6);
    expect(d.stderr).toMatch(/^mq: --json: cannot write .*r\.json: ENOENT/);
  });
});

describe('mq bench compare', () => {
  it('prints both runs side by side with the change of each figure', async () => {
    const r = await spawnMq(['bench', 'compare', slowFile, fastFile]).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^mq bench compare\n {2}a {2}slow\.json: e2e against mqtt:\/\/localhost:\d+, [\d-]+ [\d:]+ UTC, [\d.]+ s on /,
    );
    expect(r.stdout).toMatch(/\n {2}b {2}fast\.json: e2e against/);
    // p50: 20+ ms against well under 20: a drop of more than 50%.
    const p50 = /latency p50 \(ms\) +([\d.,]+) +([\d.,]+) +-(\d+(?:\.\d)?)%/.exec(r.stdout);
    expect(p50).not.toBeNull();
    expect(Number(p50![1])).toBeGreaterThanOrEqual(20);
    expect(Number(p50![3])).toBeGreaterThan(50);
    expect(r.stdout).toMatch(/messages sent +400 +400 +\+0\.0%/);
  });

  it('--json - gives the rows; --html plots both runs', async () => {
    const html = join(dir, 'compare.html');
    const r = await spawnMq(['bench', 'compare', slowFile, fastFile, '--json', '-', '--html', html]).exit(
      10_000,
    );
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout) as {
      a: string;
      b: string;
      rows: { key: string; a: number; b: number; change: number }[];
    };
    const p99 = data.rows.find((row) => row.key === 'latencyMs.p99');
    expect(p99?.a).toBe(read(slowFile).latencyMs!.p99);
    expect(p99?.change).toBeCloseTo(p99!.b / p99!.a - 1, 9);
    // The table went to stderr, not into the JSON.
    expect(r.stderr).toMatch(/^mq bench compare/);
    const page = readFileSync(html, 'utf8');
    expect(page.match(/<path class="curve" data-run="\d"/g)).toEqual([
      '<path class="curve" data-run="0"',
      '<path class="curve" data-run="1"',
    ]);
    expect(page).toContain('slow.json (end to end)');
    expect(page).toContain('fast.json (end to end)');
  });
});

describe('mq bench --html', () => {
  it('writes one self-contained page: inline SVG, nothing fetched', async () => {
    const html = join(dir, 'run.html');
    const r = await spawnMq(['bench', 'merge', fastFile, '--quiet', '--html', html]).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    // No network: no URL, no script, no stylesheet or font to load, no image.
    for (const banned of [/https?:/i, /<script/i, /\bsrc=/i, /<link/i, /@import/i, /url\(/i, /<img/i]) {
      expect(page).not.toMatch(banned);
    }
    // The percentile curve: a point every 1/40 decade over the decades 400 samples reach (3).
    const curve = /<path class="curve" data-run="0" d="([^"]+)"/.exec(page)?.[1] ?? '';
    expect(curve.split('L').length).toBeGreaterThanOrEqual(3 * 40);
    expect(page).toMatch(/>99\.9%</);
    // Throughput over time: sent and received per second.
    expect(page.match(/<path class="rate" data-run="0"/g)).toHaveLength(2);
  });
});
