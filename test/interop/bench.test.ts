/**
 * `mq bench` against real peers: a real Mosquitto (exact counts at QoS 1 and 2), headless Chromium
 * (the --html page renders its plots), and 10,000 held connections to a spawned mq broker (both
 * processes with the open-file limit raised to the hard limit, 20,000 here).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/report.js';
import { benchApart } from '../helpers/bench.js';
import { testPki } from '../helpers/certs.js';
import { chromiumDumpDom, chromiumScreenshot, countPixels, decodePng } from '../helpers/chromium.js';
import { type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { killAll, MQ_BIN, type Spawned, spawnMq, spawnProcess, startMqBroker } from '../helpers/spawn.js';

let mosq: MosquittoHandle;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-bench-interop-'));
  // NOTES.md: stock limits make Mosquitto drop QoS 2 messages beyond 20 in flight.
  mosq = await startMosquitto({ extraConfig: ['max_queued_messages 100000', 'max_inflight_messages 64'] });
});

afterAll(async () => {
  await mosq?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function benchJson(
  args: string[],
  timeoutMs = 30_000,
): Promise<{ code: number | null; report: BenchReport; stderr: string }> {
  const r = await spawnMq(['bench', ...args, '--json', '-']).exit(timeoutMs);
  try {
    return { code: r.code, report: JSON.parse(r.stdout) as BenchReport, stderr: r.stderr };
  } catch {
    throw new Error(`no report (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

describe('mq bench against Mosquitto', () => {
  for (const qos of [1, 2]) {
    for (const version of ['5', '3.1.1']) {
      it(`e2e QoS ${qos}, MQTT ${version}: received == sent x subscribers, no loss, no duplicates`, async () => {
        const { code, report: r } = await benchJson([
          'e2e',
          '-h',
          '127.0.0.1',
          '-p',
          String(mosq.port),
          '-V',
          version,
          '-q',
          String(qos),
          '--pubs',
          '4',
          '--subs',
          '2',
          '--count',
          '1000',
          '--warmup',
          '0',
        ]);
        expect(code).toBe(0);
        expect(r.outcome.stopReason).toBe('finished');
        expect(r.messages).toMatchObject({
          sent: 4000,
          acknowledged: 4000,
          expected: 8000,
          received: 8000,
          lost: 0,
          duplicated: 0,
          reordered: 0,
          foreign: 0,
        });
        expect(r.errors).toEqual({});
      });
    }
  }

  it('sub mode across processes: what `mq bench pub` sent, counted by `mq bench sub` on a shared subscription', async () => {
    const subFile = join(dir, 'shared-sub.json');
    const { pub, sub: s } = await benchApart(
      mosq.port,
      3,
      ['--topic', '$share/g/shared/+', '-q', '1', '--count', '2000', '--json', subFile],
      ['-c', '2', '--topic', 'shared/%i', '-q', '1', '--count', '1000', '--warmup', '0'],
      30_000,
    );
    expect(pub.code).toBe(0);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/only as good as the sync of their clocks/);
    const r = JSON.parse(readFileSync(subFile, 'utf8')) as BenchReport;
    // One delivery per message to the group: 2 x 1000 in all, none lost or twice.
    expect(r.messages).toMatchObject({ received: 2000, lost: 0, duplicated: 0 });
  });
});

describe('mq bench over TLS (a CA made with openssl)', () => {
  it('conn and e2e against mq broker with --tls-port: the TLS handshake timed apart, exact counts', async () => {
    const pki = testPki(dir);
    pki.ca('ca', 'mq bench interop CA');
    pki.server('server', 'DNS:localhost,IP:127.0.0.1');
    const broker = await startMqBroker([
      '-q',
      '--tls-port',
      '0',
      '--cert',
      join(dir, 'server.pem'),
      '--key',
      join(dir, 'server.key'),
    ]);
    try {
      const line = await broker.proc.waitForLine(/^mq broker listening on mqtts:\/\/[^\s:]+:(\d+)/, 10_000);
      const url = `mqtts://localhost:${/:(\d+)$/.exec(line)?.[1]}`;
      const conn = await benchJson(['conn', '-L', url, '--cafile', join(dir, 'ca.pem'), '-c', '50']);
      expect(conn.code).toBe(0);
      expect(conn.report.settings.transport).toBe('mqtts');
      expect(conn.report.connections).toMatchObject({ attempted: 50, connected: 50, failed: 0 });
      expect(conn.report.connectMs.tls?.count).toBe(50);
      expect(conn.stderr).toMatch(/ {2}tls handshake +[\d.]+/);
      const e2e = await benchJson([
        'e2e',
        '-L',
        url,
        '--cafile',
        join(dir, 'ca.pem'),
        '-q',
        '2',
        '--count',
        '500',
        '--warmup',
        '0',
      ]);
      expect(e2e.code).toBe(0);
      expect(e2e.report.messages).toMatchObject({ sent: 500, received: 500, lost: 0, duplicated: 0 });
      // Without the CA the certificate is refused: one line, exit 2.
      const refused = await spawnMq(['bench', 'conn', '-L', url, '-c', '1']).exit(15_000);
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(/^mq: .*certificate/);
    } finally {
      await broker.stop();
    }
  });
});

describe('mq bench --html in headless Chromium', () => {
  /** The page with a script that measures what the browser laid out, into <pre id="measured">. */
  function measured(file: string): string {
    const out = join(dir, `measured-${Math.random().toString(16).slice(2)}.html`);
    const script = `<script>
const m = [...document.querySelectorAll('svg path')].map((p) => {
  const b = p.getBBox();
  return { cls: p.getAttribute('class'), run: p.dataset.run, length: p.getTotalLength(), width: b.width, height: b.height };
});
const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = JSON.stringify(m);
document.body.appendChild(pre);
</script>`;
    writeFileSync(out, readFileSync(file, 'utf8').replace('</body>', `${script}</body>`));
    return out;
  }

  type Shape = { cls: string; run: string; length: number; width: number; height: number };
  const shapes = (dom: string): Shape[] =>
    JSON.parse(
      /<pre id="measured">([^<]*)<\/pre>/.exec(dom)?.[1]?.replace(/&quot;/g, '"') ?? '[]',
    ) as Shape[];

  it('one run: the percentile curve and the throughput lines are laid out and painted', async () => {
    const html = join(dir, 'run.html');
    const r = await spawnMq([
      'bench',
      'e2e',
      '-p',
      String(mosq.port),
      '--rate',
      '2000',
      '--duration',
      '2',
      '--warmup',
      '0',
      '--html',
      html,
      '--quiet',
    ]).exit(30_000);
    expect(r.code).toBe(0);
    const s = shapes(await chromiumDumpDom(measured(html)));
    const curve = s.filter((x) => x.cls === 'curve');
    expect(curve).toHaveLength(1);
    // 4,000 samples: 3 decades of percentiles over most of the 804-pixel plot width.
    expect(curve[0]!.width).toBeGreaterThan(500);
    expect(curve[0]!.length).toBeGreaterThan(curve[0]!.width);
    expect(s.filter((x) => x.cls === 'rate' && x.width > 100)).toHaveLength(2);
    const png = decodePng(await chromiumScreenshot(html, 1000, 1400));
    // The first run's colour (#1f6fd1) along the curve and the lines, not only in the legend.
    expect(countPixels(png, [0x1f, 0x6f, 0xd1], 50)).toBeGreaterThan(800);
    const dark = countPixels(png, [0, 0, 0], 100);
    expect(dark).toBeGreaterThan(1000); // text and axes: the page is not blank
  });

  it('compare: both runs plotted, each in its colour', async () => {
    const files = ['a', 'b'].map((n) => join(dir, `${n}.json`));
    for (const [i, f] of files.entries()) {
      const r = await spawnMq([
        'bench',
        'e2e',
        '-p',
        String(mosq.port),
        '-q',
        String(i),
        '--rate',
        '1000',
        '--duration',
        '1',
        '--warmup',
        '0',
        '--json',
        f,
        '--quiet',
      ]).exit(30_000);
      expect(r.code).toBe(0);
    }
    const html = join(dir, 'compare.html');
    const c = await spawnMq(['bench', 'compare', files[0]!, files[1]!, '--html', html]).exit(10_000);
    expect(c.code).toBe(0);
    const s = shapes(await chromiumDumpDom(measured(html)));
    const curves = s.filter((x) => x.cls === 'curve');
    expect(curves.map((x) => x.run)).toEqual(['0', '1']);
    for (const x of curves) expect(x.width).toBeGreaterThan(300);
    const png = decodePng(await chromiumScreenshot(html, 1000, 1400));
    expect(countPixels(png, [0x1f, 0x6f, 0xd1], 50)).toBeGreaterThan(500);
    expect(countPixels(png, [0xe8, 0x59, 0x0c], 50)).toBeGreaterThan(500);
  });
});

describe('mq bench conn: 10,000 connections', () => {
  /** bin/mq ARGS with the soft open-file limit raised to the hard one (20,000 here). */
  const withFiles = (args: string[]): Spawned =>
    spawnProcess('bash', [
      '-c',
      'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"',
      process.execPath,
      MQ_BIN,
      ...args,
    ]);

  it('holds 10,000 connections to mq broker and reports its own memory per connection', async () => {
    const broker = withFiles(['broker', '--port', '0', '-q']);
    try {
      const line = await broker.waitForLine(/^mq broker listening on mqtt:\/\/[^\s:]+:(\d+)/, 10_000);
      const port = /:(\d+)/.exec(line)?.[1] ?? '';
      const run = withFiles([
        'bench',
        'conn',
        '-p',
        port,
        '-c',
        '10k',
        '--duration',
        '3',
        '-k',
        '30',
        '--json',
        '-',
      ]);
      const r = await run.exit(55_000);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as BenchReport;
      expect(report.connections).toMatchObject({ attempted: 10_000, connected: 10_000, failed: 0, lost: 0 });
      expect(report.errors).toEqual({});
      expect(report.connectMs.total?.count).toBe(10_000);
      expect(report.memory.perConnectionKiB).toBeGreaterThan(0);
      expect(report.memory.perConnectionKiB).toBeLessThan(100);
      expect(r.stderr).toMatch(/10,000 of 10,000 connected/);
      expect(r.stderr).toMatch(/, [\d.]+ KiB per connection/);
    } finally {
      await broker.kill('SIGTERM', 10_000);
    }
  }, 60_000);
});
