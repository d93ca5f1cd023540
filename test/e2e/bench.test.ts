/**
 * `mq bench` end to end: spawns bin/mq bench against `mq broker --port 0` (directly, or through
 * `mq proxy` for delay and loss) and asserts what a user sees: the summary, the --json report,
 * exit codes, the one-line failures; figures that must hold exactly (no loss at QoS 1/2, the
 * proxy's drops counted as lost) or within a bound (a 20 ms delay in p50, a paused broker in p99).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/bench/proc.js';
import type { BenchReport } from '../../src/bench/report.js';
import { clientHarness } from '../helpers/client-harness.js';
import { startMqProxy } from '../helpers/proxy.js';
import { killAll, MQ_BIN, type MqBroker, spawnMq, spawnProcess, startMqBroker } from '../helpers/spawn.js';

let broker: MqBroker;
let dir: string;
const { opts, connect } = clientHarness({ version: 5, idPrefix: 'bench-watch' });

beforeAll(async () => {
  broker = await startMqBroker(['-q']);
  dir = mkdtempSync(join(tmpdir(), 'mq-bench-e2e-'));
});

afterAll(async () => {
  await broker?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** `mq bench ARGS --json -`: the exit, the report (stdout) and the summary (stderr). */
async function benchJson(args: string[], timeoutMs = 20_000) {
  const r = await spawnMq(['bench', ...args, '--json', '-']).exit(timeoutMs);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let report: BenchReport | undefined;
  try {
    report = JSON.parse(line) as BenchReport;
  } catch {
    throw new Error(`no report on stdout (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { ...r, report };
}

/** Resolves when a bench run's messages flow through the broker on `port` (bounded). */
async function flowing(port: number, topic = 'bench/#'): Promise<void> {
  const c = await connect(opts(port));
  const first = new Promise<void>((resolve) => c.once('message', () => resolve()));
  await c.subscribe([{ topicFilter: topic, qos: 0 }]);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    first,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no bench message on ${topic} within 10 s`)), 10_000);
    }),
  ]);
  clearTimeout(timer);
  c.destroy();
}

const port = () => ['-h', '127.0.0.1', '-p', String(broker.port)];

describe('mq bench: usage', () => {
  it('--help of bench and of each mode has examples and the exit codes', async () => {
    const top = await spawnMq(['bench', '--help']).exit(5000);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/conn \[options\]/);
    expect(top.stdout).toMatch(/merge \[options\] <reports\.\.\.>/);
    expect(top.stdout).toMatch(/`mq bench` alone runs e2e for 10 s against localhost:1883/);
    expect(top.stdout).toMatch(/7 an --assert not met/);
    for (const mode of ['conn', 'pub', 'sub', 'e2e', 'compare', 'merge']) {
      const r = await spawnMq(['bench', mode, '--help']).exit(5000);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Examples:\\n {2}mq bench ${mode}`));
      expect(r.stdout).toMatch(/Exit codes: 0 done, 1 usage error/);
    }
    const root = await spawnMq(['--help']).exit(5000);
    expect(root.stdout).toMatch(/bench +load-test a broker/);
    expect(root.stdout).toMatch(/7 an mq bench --assert\s+not met/);
  });

  it.each([
    [
      ['e2e', '--size', '10'],
      /^mq: --size: 10 bytes is less than mq bench's payload header: the minimum is 28$/,
    ],
    [['e2e', '--bogus'], /^error: unknown option '--bogus'$/],
    [['pub', '--pubs', '0'], /^mq: -c\/--pubs: '0' is not a whole number of at least 1/],
    [['nonsense'], /^mq: bench: unknown mode 'nonsense' \(modes: conn, pub, sub, e2e, compare, merge\)$/],
    [['e2e', '--assert', 'p99<5kg'], /^mq: --assert 'p99<5kg': 'kg' is not a unit of p99/],
    [['--assert', 'latncy<5ms'], /^mq: --assert 'latncy<5ms': unknown metric 'latncy'/],
    [['e2e', '--topic', 'a/#'], /^mq: --topic 'a\/#': topic name 'a\/#' contains the wildcard '#'$/],
    [['sub', '--topic', 'a/#/b'], /^mq: --topic 'a\/#\/b': topic filter/],
  ])('%j: one line, exit 1', async (args, message) => {
    // Usage errors come before any connection: the port is closed, and it does not matter.
    const r = await spawnMq(['bench', ...args, '-p', '1']).exit(10_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  it.each([
    [['compare', 'only-one.json'], /^error: missing required argument 'b'$/],
    [['merge'], /^error: missing required argument 'reports'$/],
    [['merge', 'x.json', '--assert', 'p99'], /^mq: --assert 'p99': not METRIC OP VALUE/],
  ])('%j: one line, exit 1', async (args, message) => {
    const r = await spawnMq(['bench', ...args]).exit(10_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  it('nothing listening: one line with the two ways out, exit 2 (flags or MQ_URL)', async () => {
    const closed = await freePort();
    for (const run of [
      spawnMq(['bench', '-p', String(closed)]),
      spawnMq(['bench'], { env: { MQ_URL: `mqtt://127.0.0.1:${closed}` } }),
    ]) {
      const r = await run.exit(15_000);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        /^mq: nothing listens on mqtt:\/\/(localhost|127\.0\.0\.1):\d+ \(connection refused\): start a broker with `mq broker`, or run mq bench against its own with `--broker builtin`\n$/,
      );
    }
  });
});

describe('mq bench against mq broker', () => {
  for (const qos of [1, 2]) {
    it(`e2e QoS ${qos}: received == sent x subscribers, no loss, no duplicates`, async () => {
      const {
        code,
        report: r,
        stderr,
      } = await benchJson([
        'e2e',
        ...port(),
        '-q',
        String(qos),
        '--pubs',
        '3',
        '--subs',
        '2',
        '--count',
        '500',
        '--warmup',
        '0',
      ]);
      expect(code).toBe(0);
      expect(r.outcome).toMatchObject({ completed: true, stopReason: 'finished' });
      expect(r.messages).toMatchObject({
        sent: 1500,
        acknowledged: 1500,
        expected: 3000,
        received: 3000,
        lost: 0,
        duplicated: 0,
        reordered: 0,
      });
      expect(r.latencyMs?.count).toBe(3000);
      expect(r.ackMs?.count).toBe(1500);
      // --json - puts the report on stdout and the summary on stderr.
      expect(stderr).toMatch(
        /^mq bench e2e: mqtt:\/\/127\.0\.0\.1:\d+, MQTT 5, 3 publishers -> 2 subscribers/,
      );
      expect(stderr).toMatch(
        /messages +1,500 sent, 1,500 acknowledged, 3,000 received, 3,000 expected, 0 lost/,
      );
      expect(stderr).toMatch(new RegExp(`publish to ${qos === 1 ? 'PUBACK' : 'PUBCOMP'} +[\\d.]+`));
    });
  }

  it('QoS 0 through a proxy that drops every 10th PUBLISH to the subscriber: exactly those are lost', async () => {
    const proxy = await startMqProxy([
      '--to',
      `mqtt://127.0.0.1:${broker.port}`,
      '--trace',
      'off',
      '--drop-every',
      'down:10',
    ]);
    try {
      const {
        code,
        report: r,
        stderr,
      } = await benchJson([
        'e2e',
        '-p',
        String(proxy.port),
        '-q',
        '0',
        '--count',
        '1000',
        '--warmup',
        '0',
        '--assert',
        'lost==100',
      ]);
      expect(code).toBe(0);
      expect(r.messages).toMatchObject({
        sent: 1000,
        expected: 1000,
        received: 900,
        lost: 100,
        duplicated: 0,
      });
      expect(stderr).toMatch(/1,000 expected, 100 lost/);
      expect(stderr).toMatch(
        /note: QoS 0 messages a broker drops \(e\.g\. under overload\) are counted as lost/,
      );
      expect(stderr).toMatch(/assert lost==100: passed \(lost = 100\)/);
    } finally {
      await proxy.stop();
    }
  });

  it('20 ms added on the way to the broker shows as p50 within [20, 23] ms', async () => {
    const proxy = await startMqProxy([
      '--to',
      `mqtt://127.0.0.1:${broker.port}`,
      '--trace',
      'off',
      '--delay',
      'up:20',
    ]);
    try {
      const file = join(dir, 'delayed.json');
      const r = await spawnMq([
        'bench',
        'e2e',
        '-p',
        String(proxy.port),
        '--rate',
        '200',
        '--duration',
        '2',
        '--json',
        file,
      ]).exit(20_000);
      expect(r.code).toBe(0);
      const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
      expect(report.messages.lost).toBe(0);
      expect(report.latencyMs!.p50).toBeGreaterThanOrEqual(20);
      expect(report.latencyMs!.p50).toBeLessThanOrEqual(23);
    } finally {
      await proxy.stop();
    }
  });

  it('--rate with the broker paused 1 s mid-run: p99 shows the pause (coordinated omission corrected)', async () => {
    const paused = await startMqBroker(['-q']);
    try {
      const run = spawnMq([
        'bench',
        'e2e',
        '-p',
        String(paused.port),
        '-q',
        '1',
        '--inflight',
        '8',
        '--rate',
        '500',
        '--duration',
        '4',
        '--warmup',
        '0',
        '--json',
        '-',
      ]);
      await flowing(paused.port);
      paused.proc.proc.kill('SIGSTOP');
      // The stimulus: a broker that answers nothing for a second.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      paused.proc.proc.kill('SIGCONT');
      const r = await run.exit(20_000);
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as BenchReport;
      expect(report.messages.lost).toBe(0);
      expect(report.latencyMs!.p99).toBeGreaterThanOrEqual(500);
      expect(report.latencyMs!.max).toBeGreaterThanOrEqual(900);
      expect(r.stderr).toMatch(/note: end to end counts from each message's scheduled send time/);
    } finally {
      await paused.stop();
    }
  });

  it('a broker killed mid-run: ends within seconds, summary and --json written, errors counted, exit 2', async () => {
    const doomed = await startMqBroker(['-q']);
    const file = join(dir, 'killed.json');
    const run = spawnMq([
      'bench',
      'e2e',
      '-p',
      String(doomed.port),
      '-q',
      '1',
      '--rate',
      '1000',
      '--duration',
      '60',
      '--warmup',
      '0',
      '--json',
      file,
    ]);
    await flowing(doomed.port);
    await doomed.kill9();
    const killedAt = Date.now();
    const r = await run.exit(15_000);
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/stopped early: every connection was lost/);
    expect(r.stdout).toMatch(/errors +.*connection lost/);
    expect(r.stderr).toMatch(/^mq: every connection was lost before the end of the run \(.+\)\n$/);
    expect(r.stderr).not.toMatch(/\n {4}at /);
    const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
    expect(report.outcome).toMatchObject({ completed: false, stopReason: 'connections-lost' });
    expect(report.messages.sent).toBeGreaterThan(0);
    expect(report.connections.lost).toBe(2);
    expect(Object.keys(report.errors).some((k) => k.startsWith('connection lost'))).toBe(true);
  });

  it('Ctrl-C: the summary of what ran so far, exit 130', async () => {
    const run = spawnMq([
      'bench',
      'e2e',
      ...port(),
      '--rate',
      '500',
      '--duration',
      '60',
      '--warmup',
      '0',
      '--topic',
      'int/%i',
    ]);
    await flowing(broker.port, 'int/#');
    run.proc.kill('SIGINT');
    const r = await run.exit(10_000);
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/^mq bench e2e: /);
    expect(r.stdout).toMatch(/ s recorded, interrupted: the figures of what ran so far/);
    expect(r.stdout).toMatch(/end to end +[\d.]+/);
    expect(r.stderr).toBe('mq: interrupted: the figures above are of what ran so far\n');
  });

  it('--assert: passed ones exit 0, a failed one is named and exits 7 (also with --quiet)', async () => {
    const base = [
      'bench',
      'pub',
      '--broker',
      'builtin',
      '-q',
      '1',
      '--count',
      '200',
      '--warmup',
      '0',
      '--workers',
      '0',
    ];
    const ok = await spawnMq([...base, '--assert', 'sent==200', '--assert', 'ack.p99<30s']).exit(15_000);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/assert sent==200: passed \(sent = 200\)\nassert ack\.p99<30s: passed/);
    const bad = await spawnMq([
      ...base,
      '--assert',
      'sent==200',
      '--assert',
      'sent>1M',
      '--assert',
      'p99<1s',
    ]).exit(15_000);
    expect(bad.code).toBe(7);
    expect(bad.stdout).toMatch(/assert sent>1M: FAILED \(sent = 200\)/);
    expect(bad.stdout).toMatch(/assert p99<1s: FAILED \(p99 was not measured in this run\)/);
    expect(bad.stderr).toBe('mq: 2 asserts not met: sent>1M, p99<1s\n');
    const quiet = await spawnMq([...base, '--quiet', '--assert', 'sent>1M']).exit(15_000);
    expect(quiet.code).toBe(7);
    expect(quiet.stdout).toBe('');
    expect(quiet.stderr).toBe('assert sent>1M: FAILED (sent = 200)\nmq: assert not met: sent>1M\n');
  });

  it('bare mq bench is the small e2e load: 4 publishers at 1,000 msg/s, 1 subscriber', async () => {
    const {
      code,
      report: r,
      stderr,
    } = await benchJson(['--broker', 'builtin', '--duration', '1', '--warmup', '0']);
    expect(code).toBe(0);
    expect(r.settings).toMatchObject({ mode: 'e2e', pubs: 4, subs: 1, rate: 1000, qos: 0, size: 64 });
    expect(r.messages.lost).toBe(0);
    expect(stderr).toMatch(/4 publishers -> 1 subscriber, QoS 0, 64 B, 1,000 msg\/s \(open loop\)/);
    expect(stderr).toMatch(/note: --broker builtin: mq's broker ran in this process/);
  });

  it('over WebSocket with persistent sessions: the same exact counts', async () => {
    const ws = await startMqBroker(['-q', '--ws-port', '0']);
    try {
      const { code, report: r } = await benchJson([
        'e2e',
        '-L',
        `ws://127.0.0.1:${ws.wsPort}`,
        '-q',
        '1',
        '--no-clean',
        '-I',
        'wsbench',
        '--count',
        '300',
        '--warmup',
        '0',
      ]);
      expect(code).toBe(0);
      expect(r.settings).toMatchObject({
        transport: 'ws',
        clean: false,
        sessionExpiry: 60,
        clientIdPrefix: 'wsbench',
      });
      expect(r.messages).toMatchObject({
        sent: 300,
        acknowledged: 300,
        received: 300,
        lost: 0,
        duplicated: 0,
      });
    } finally {
      await ws.stop();
    }
  });

  it('on a terminal: a live line once a second (ora on stderr), then the summary', async () => {
    // `script` (util-linux) gives mq a pseudo-terminal of 120 columns.
    const command = `stty cols 120 rows 40; exec env -u CI "${process.execPath}" "${MQ_BIN}" bench --broker builtin --duration 2 --warmup 0 --workers 0`;
    const r = await spawnProcess('script', ['-qfec', command, '/dev/null']).exit(20_000);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '\n').replace(/\r/g, '\n');
    expect(text).toMatch(/mq bench e2e: connecting/);
    expect(text).toMatch(
      /mq bench e2e [12] s running: sent [\d,]+\/s, received [\d,]+\/s, (p99 [\d.]+ ms, )?0 errors, 5 connections/,
    );
    expect(text).toMatch(/mq bench e2e: mqtt:\/\/127\.0\.0\.1:\d+, MQTT 5, 4 publishers -> 1 subscriber/);
  });

  it('conn: connect latency of every connection, held, with memory per connection', async () => {
    const {
      code,
      report: r,
      stderr,
    } = await benchJson(['conn', ...port(), '-c', '300', '--duration', '1', '-k', '5']);
    expect(code).toBe(0);
    expect(r.connections).toMatchObject({ attempted: 300, connected: 300, failed: 0, lost: 0 });
    expect(r.connectMs.total?.count).toBe(300);
    expect(r.connectMs.tcp?.count).toBe(300);
    expect(r.memory.perConnectionKiB).toEqual(expect.any(Number));
    expect(stderr).toMatch(/mq bench conn: mqtt:\/\/127\.0\.0\.1:\d+, MQTT 5, 300 connections, held/);
    expect(stderr).toMatch(/connections +300 of 300 connected \([\d,.]+\/s\), 0 failed, 0 lost/);
    expect(stderr).toMatch(/KiB per connection/);
    expect(stderr).toMatch(/CONNECT to CONNACK +[\d.]+/);
  });

  it('--auth-method SCRAM-SHA-256 -u -P: every connection logs in with enhanced authentication (worker threads too)', async () => {
    const secured = await startMqBroker(['-q', '--auth', 'alice:secret']);
    try {
      const at = ['-p', String(secured.port), '--auth-method', 'SCRAM-SHA-256', '-u', 'alice'];
      const { code, report: r } = await benchJson([
        'conn',
        ...at,
        '-P',
        'secret',
        '-c',
        '200',
        '--workers',
        '2',
      ]);
      expect(code).toBe(0);
      expect(r.connections).toMatchObject({ attempted: 200, connected: 200, failed: 0 });
      expect(r.settings).toMatchObject({ username: 'alice', authMethod: 'SCRAM-SHA-256' });
      expect(JSON.stringify(r)).not.toContain('secret');
      // Refused: counted under the CONNACK's reason, said once on stderr.
      const bad = await benchJson(['conn', ...at, '-P', 'wrong', '-c', '3', '--workers', '0']);
      expect(bad.report.errors).toEqual({ 'CONNACK 0x86 Bad User Name or Password': 3 });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/0x86 Bad User Name or Password/);
    } finally {
      await secured.stop();
    }
  });
});
