/**
 * `mq bench`'s flags as the engine gets them: which mode takes which, the two letters that differ
 * from the shared table (-c clients, --no-clean), defaults, units, and every mistake as one
 * UsageError naming the flag.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES } from '../../src/bench/payload.js';
import {
  addBenchConnectionOptions,
  type BenchFlags,
  benchOptions,
  resolveBenchFlags,
} from '../../src/cli/bench-options.js';
import { usageError } from '../helpers/usage-error.js';

const ENV = {};
const resolve = (mode: 'conn' | 'pub' | 'sub' | 'e2e', flags: BenchFlags, preset = {}) =>
  resolveBenchFlags(mode, flags, preset, ENV);

/** The flags of a mode's command as commander parses argv. */
function parse(mode: 'conn' | 'pub' | 'sub' | 'e2e', argv: string[]): BenchFlags {
  const cmd = new Command(mode).exitOverride().configureOutput({ writeErr: () => {} });
  for (const o of benchOptions(mode)) cmd.addOption(o);
  addBenchConnectionOptions(cmd);
  cmd.parse(argv, { from: 'user' });
  return cmd.opts() as BenchFlags;
}

describe('mq bench flags', () => {
  it('-c counts clients in every mode; persistent sessions are --no-clean, expiring after 60 s in v5', async () => {
    expect((await resolve('conn', parse('conn', ['-c', '10k']))).options.clients).toBe(10_000);
    expect((await resolve('pub', parse('pub', ['-c', '8']))).options.pubs).toBe(8);
    expect((await resolve('sub', parse('sub', ['-c', '3']))).options.subs).toBe(3);
    const persistent = await resolve('e2e', parse('e2e', ['--no-clean', '-I', 'load']));
    expect(persistent.options).toMatchObject({ clean: false, sessionExpiry: 60, clientIdPrefix: 'load' });
    const never = await resolve('e2e', parse('e2e', ['--no-clean', '-x', 'never']));
    expect(never.options.sessionExpiry).toBe(0xffffffff);
    expect((await resolve('e2e', parse('e2e', []))).options.clean).toBe(true);
    // The shared table's -c (--no-clean), -q (--quiet), -i and the will are not bench flags.
    expect(() => parse('e2e', ['-c', '3'])).toThrow(/unknown option '-c'/);
    expect(() => parse('e2e', ['-i', 'x'])).toThrow(/unknown option '-i'/);
    expect(() => parse('e2e', ['--will-topic', 'x'])).toThrow(/unknown option/);
    expect(() => parse('conn', ['--rate', '5'])).toThrow(/unknown option '--rate'/);
  });

  it('load, time and run flags reach the engine with their units', async () => {
    const plan = await resolve(
      'e2e',
      parse('e2e', [
        '--pubs',
        '8',
        '--subs',
        '2',
        '--rate',
        '1.5k',
        '-q',
        '2',
        '--inflight',
        '16',
        '--size',
        '1k',
        '--topic',
        'load/%w/%i',
        '--filter',
        '$share/g/load/#',
        '--retain',
        '--duration',
        '2m',
        '--warmup',
        '500ms',
        '--connect-rate',
        '50',
        '--workers',
        '0',
        '-V',
        '3.1.1',
        '-k',
        '30',
        '--connect-timeout',
        '2',
      ]),
    );
    expect(plan.options).toMatchObject({
      mode: 'e2e',
      pubs: 8,
      subs: 2,
      rate: 1500,
      qos: 2,
      inflight: 16,
      size: 1024,
      topic: 'load/%w/%i',
      filter: '$share/g/load/#',
      retain: true,
      durationSec: 120,
      warmupSec: 0.5,
      connectRate: 50,
      workers: 0,
      version: 4,
      keepalive: 30,
      connectTimeoutMs: 2000,
    });
    expect(plan.options.target).toEqual({ transport: 'mqtt', host: 'localhost', port: 1883 });
    const counted = await resolve('pub', parse('pub', ['--count', '10k', '--warmup', '0']));
    expect(counted.options).toMatchObject({ count: 10_000, warmupSec: 0 });
    expect(counted.options.durationSec).toBeUndefined();
  });

  it('bare mq bench is e2e with the small preset; a flag overrides it', async () => {
    const quick = await resolve('e2e', parse('e2e', []), { pubs: 4, subs: 1, rate: 1000 });
    expect(quick.options).toMatchObject({ pubs: 4, subs: 1, rate: 1000 });
    const faster = await resolve('e2e', parse('e2e', ['--rate', '5000']), { pubs: 4, rate: 1000 });
    expect(faster.options.rate).toBe(5000);
  });

  it('conn: --duration holds for that long; --hold alone until stopped', async () => {
    expect((await resolve('conn', parse('conn', ['--duration', '30s']))).options).toMatchObject({
      hold: true,
      durationSec: 30,
    });
    expect((await resolve('conn', parse('conn', ['--hold']))).options).toMatchObject({
      hold: true,
      durationSec: null,
    });
    expect((await resolve('conn', parse('conn', []))).options).toMatchObject({ hold: false, clients: 100 });
  });

  it('TLS and WebSocket through the shared options; sub mode subscribes to --topic or the URL topic', async () => {
    const tls = await resolve('e2e', parse('e2e', ['-L', 'mqtts://u:pw@broker.example', '--insecure']));
    expect(tls.options.target).toMatchObject({
      transport: 'mqtts',
      host: 'broker.example',
      port: 8883,
      username: 'u',
      password: Buffer.from('pw'),
      tls: { insecure: true },
    });
    const ws = await resolve('pub', parse('pub', ['-L', 'ws://h:8080', '--ws-path', '/mq']));
    expect(ws.options.target).toMatchObject({ transport: 'ws', host: 'h', port: 8080, path: '/mq' });
    const sub = await resolve('sub', parse('sub', ['-L', 'mqtt://h/load/%23']));
    expect(sub.options.filter).toBe('load/#');
    const env = await resolveBenchFlags('e2e', parse('e2e', []), {}, { MQ_URL: 'mqtt://env-host:1999' });
    expect(env.options.target).toMatchObject({ host: 'env-host', port: 1999 });
  });

  it('--auth-method SCRAM-SHA-*: the method reaches the engine with -u/-P (the password as SCRAM uses it)', async () => {
    const plan = await resolve(
      'conn',
      parse('conn', ['--auth-method', 'scram-sha-512', '-u', 'alice', '-P', 'secret']),
    );
    expect(plan.options.target).toMatchObject({
      username: 'alice',
      password: Buffer.from('secret'),
      authMethod: 'SCRAM-SHA-512',
    });
    expect((await resolve('conn', parse('conn', ['-u', 'alice']))).options.target.authMethod).toBeUndefined();
    for (const [argv, message] of [
      [['--auth-method', 'PLAIN', '-u', 'a', '-P', 'b'], "--auth-method: 'PLAIN' is not SCRAM-SHA-1"],
      [['--auth-method', 'SCRAM-SHA-1', '-u', 'a'], '--auth-method SCRAM-SHA-1 needs -u and -P'],
      [['--auth-method', 'SCRAM-SHA-1', '-u', 'a', '-P', 'b', '-V', '3.1.1'], '--auth-method needs MQTT 5'],
    ] as const) {
      expect(await usageError(resolve('conn', parse('conn', [...argv])))).toContain(message);
    }
  });

  it('--broker builtin refuses flags naming another broker, and ignores MQ_URL', async () => {
    const ok = await resolveBenchFlags(
      'e2e',
      parse('e2e', ['--broker', 'builtin']),
      {},
      { MQ_URL: 'mqtt://x:1' },
    );
    expect(ok.builtin).toBe(true);
    expect(await usageError(resolve('e2e', parse('e2e', ['--broker', 'builtin', '-p', '1884'])))).toMatch(
      /^-p: --broker builtin starts its own broker/,
    );
  });

  it.each([
    [
      ['--size', '10'],
      `--size: 10 bytes is less than mq bench's payload header: the minimum is ${HEADER_BYTES}`,
    ],
    [['--size', 'big'], "--size: 'big' is not a number of bytes"],
    [['--pubs', '0'], "--pubs: '0' is not a whole number of at least 1"],
    [['--pubs', '1.5'], "--pubs: '1.5' is not a whole number"],
    [['--rate', 'fast'], "--rate: 'fast' is not a number of at least"],
    [['-q', '3'], "-q: '3' is not a whole number from 0 to 2"],
    [['--inflight', '70000'], "--inflight: '70000' is not a whole number from 1 to 65535"],
    [['--duration', '10x'], "--duration: '10x' is not a duration (e.g. 10s, 2m, 500ms"],
    [['--duration', '0'], "--duration: '0' is not a duration"],
    [['--duration', '5s', '--count', '3'], '--duration and --count cannot be combined'],
    [['--broker', 'emqx'], "--broker: 'emqx' is not a broker mq can start (use --broker builtin)"],
    [['--assert', 'p99<5kg'], "--assert 'p99<5kg': 'kg' is not a unit of p99"],
    [['--html', '-'], '--html needs a file name'],
    [['-V', '6'], "-V: unknown MQTT version '6'"],
    [['-L', 'ftp://x'], "-L: unknown scheme 'ftp://'"],
  ])('%j: %s', async (argv, message) => {
    expect(await usageError(resolve('e2e', parse('e2e', argv)))).toContain(message);
  });
});
