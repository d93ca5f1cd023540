/**
 * The flags of `mq bench conn|pub|sub|e2e`: which mode takes which (a flag a mode cannot use is
 * not offered: commander refuses it), their defaults, and the one resolver that turns them into
 * the engine's BenchOptions plus what the command does around the run (builtin broker, --json,
 * --html, --assert, --quiet).
 *
 * From the shared connection table bench takes where to connect (-h -p -L -V, TLS, WebSocket,
 * profiles), -u/-P (and --auth-method: SCRAM, each connection's exchange done by the engine), -k,
 * -x, --connect-timeout and -I (client id prefix). Two letters differ from
 * the table, as CLI.md's bench line says: `-c` is the number of clients here (as in every load
 * tool), so persistent sessions are `--no-clean` (long form only); `-q` is the QoS, as in pub/sub,
 * and `--quiet` is long only. -i, the will, -D, --reconnect and --trace do not apply to a load of
 * many raw clients and are not offered.
 */
import { type Command, Option } from 'commander';
import { HEADER_BYTES } from '../bench/payload.js';
import type { BenchMode } from '../bench/report.js';
import type { BenchOptions, BenchTarget } from '../bench/settings.js';
import { type Assertion, parseAssertion } from './bench-assert.js';
import {
  type ConnectionFlags,
  resolveConnectionOptions,
  scramLogin,
  someConnectionOptions,
  TRANSPORT_FLAGS,
} from './connection-options.js';
import { UsageError } from './errors.js';
import { collect } from './options.js';
import { parseDuration, parseInteger, parseQos, parseQuantity } from './values.js';

export interface BenchFlags extends Omit<ConnectionFlags, 'json'> {
  clients?: string;
  pubs?: string;
  subs?: string;
  rate?: string;
  inflight?: string;
  size?: string;
  qos?: string;
  topic?: string;
  filter?: string;
  retain?: boolean;
  duration?: string;
  count?: string;
  warmup?: string;
  connectRate?: string;
  hold?: boolean;
  workers?: string;
  broker?: string;
  json?: string;
  html?: string;
  assert?: string[];
}

/** Defaults that differ between `mq bench e2e` and bare `mq bench` (a small fixed load). */
export interface BenchPreset {
  pubs?: number;
  subs?: number;
  rate?: number;
}

/** What the command does: the engine's options and what happens around the run. */
export interface BenchPlan {
  options: BenchOptions;
  builtin: boolean;
  json?: string;
  html?: string;
  asserts: Assertion[];
  quiet: boolean;
}

/** The shared connection flags bench uses (attribute names in the shared table). */
const SHARED = [
  'host',
  'port',
  'url',
  'protocolVersion',
  'idPrefix',
  'keepalive',
  'username',
  'password',
  'authMethod',
  'profile',
  ...TRANSPORT_FLAGS,
  'sessionExpiry',
] as const;

/** Shared flags that name another broker than `--broker builtin`. */
const TARGET_FLAGS: [keyof BenchFlags, string][] = [
  ['host', '-h'],
  ['port', '-p'],
  ['url', '-L'],
  ['cafile', '--cafile'],
  ['cert', '--cert'],
  ['key', '--key'],
  ['insecure', '--insecure'],
  ['tlsVersion', '--tls-version'],
  ['alpn', '--alpn'],
  ['servername', '--servername'],
  ['wsPath', '--ws-path'],
  ['wsHeader', '--ws-header'],
];

const PUBLISHING: readonly BenchMode[] = ['pub', 'e2e'];

/** The load flags of `mode`, in --help order. */
function loadOptions(mode: BenchMode, preset: BenchPreset): Option[] {
  const out: Option[] = [];
  const publishing = PUBLISHING.includes(mode);
  if (mode === 'conn') {
    out.push(
      new Option('-c, --clients <n>', 'connections to open (default 100; k suffix: 10k)'),
      new Option(
        '--hold',
        'keep them open (keepalive) until Ctrl-C or --duration; report memory per connection',
      ),
    );
  } else if (mode === 'pub') {
    out.push(new Option('-c, --pubs <n>', 'publishers (default 1)'));
  } else if (mode === 'sub') {
    out.push(new Option('-c, --subs <n>', 'subscribers (default 1)'));
  } else {
    out.push(
      new Option('--pubs <n>', `publishers (default ${preset.pubs ?? 1})`),
      new Option('--subs <n>', `subscribers (default ${preset.subs ?? 1})`),
    );
  }
  if (publishing) {
    out.push(
      new Option(
        '--rate <msgs/s>',
        preset.rate !== undefined
          ? `messages per second, all publishers together, open loop (default ${preset.rate})`
          : 'messages per second, all publishers together, open loop (default: as fast as the broker takes them)',
      ),
      new Option('--inflight <n>', 'QoS 1/2: most messages un-acknowledged per publisher (default 64)'),
      new Option(
        '--size <bytes>',
        `payload bytes, at least ${HEADER_BYTES} (mq's header; default 64; k = 1024)`,
      ),
      new Option('-q, --qos <qos>', 'QoS 0, 1 or 2 (default 0)'),
      new Option(
        '--topic <template>',
        'publish topic: %i publisher index, %c client id, %w worker (default bench/%i)',
      ),
    );
    if (mode === 'e2e') {
      out.push(
        new Option(
          '--filter <template>',
          "subscribers' filter, %i subscriber index (default: --topic with % levels as +)",
        ),
      );
    }
    out.push(new Option('--retain', 'publish retained messages'));
  } else if (mode === 'sub') {
    out.push(
      new Option('-q, --qos <qos>', 'subscription QoS 0, 1 or 2 (default 0)'),
      new Option(
        '--topic <filter>',
        'filter to subscribe to, %i subscriber index; $share/GROUP/... works (default bench/+)',
      ),
    );
  }
  return out;
}

/** The time flags of `mode`. */
function timeOptions(mode: BenchMode): Option[] {
  if (mode === 'conn') {
    return [
      new Option('--duration <time>', 'hold the connections this long, then close them (implies --hold)'),
    ];
  }
  const out = [
    new Option('--duration <time>', 'recorded time: 10s, 2m, 500ms; a bare number is seconds (default 10s)'),
  ];
  out.push(
    new Option(
      '--count <n>',
      mode === 'sub'
        ? 'stop after receiving this many messages (all subscribers), instead of --duration'
        : 'messages per publisher, instead of --duration',
    ),
    new Option(
      '--warmup <time>',
      `load before recording starts, left out of every figure (default ${mode === 'sub' ? '0' : '1s'})`,
    ),
  );
  return out;
}

/** Every bench-specific flag of `mode` (load, time, run, output), grouped for --help. */
export function benchOptions(mode: BenchMode, preset: BenchPreset = {}): Option[] {
  const groups: [string, Option[]][] = [
    ['Load:', [...loadOptions(mode, preset), ...timeOptions(mode)]],
    [
      'Run:',
      [
        new Option('--connect-rate <n>', 'new connections per second, all together (default: 100 at a time)'),
        new Option('--workers <n>', 'worker threads sharing the clients (default: the cores; 0 = none)'),
        new Option('--broker <builtin>', "run against mq's own broker started in this process (no setup)"),
      ],
    ],
    [
      'Output:',
      [
        new Option('--json <file>', 'write the full report (versioned JSON) to FILE, or - for stdout'),
        new Option('--html <file>', 'write a self-contained page with the latency and throughput plots'),
        new Option(
          '--assert <expr>',
          "a threshold, e.g. 'p99<5ms', 'lost==0' (repeatable); one not met: exit 7",
        ).argParser(collect),
        new Option('--quiet', 'no live line, no summary (failed asserts and errors still show)'),
      ],
    ],
  ];
  return groups.flatMap(([heading, options]) => options.map((o) => o.helpGroup(heading)));
}

/** The shared connection flags bench takes (see the header), added to `cmd`. */
export function addBenchConnectionOptions(cmd: Command): Command {
  for (const o of someConnectionOptions([...SHARED, 'clean'])) {
    const name = o.attributeName();
    if (name === 'clean') {
      cmd.addOption(
        new Option(
          '--no-clean',
          'persistent sessions (clean start off); v5 sessions expire 60 s after the run unless -x',
        ).helpGroup('Session:'),
      );
      continue;
    }
    if (name === 'idPrefix')
      o.description = 'client id prefix: ids are PREFIX-p0, PREFIX-s0, PREFIX-c0... (default mq-bench-RUNID)';
    if (name === 'sessionExpiry') o.helpGroup('Session:');
    cmd.addOption(o);
  }
  return cmd;
}

const given = (v: unknown) => v !== undefined && v !== false;

/** The connection part: where, as whom, which version and session. */
async function connection(
  mode: BenchMode,
  flags: BenchFlags,
  builtin: boolean,
  env: NodeJS.ProcessEnv,
): Promise<{ target: BenchTarget; options: Partial<BenchOptions>; urlTopic?: string }> {
  if (builtin) {
    const named = TARGET_FLAGS.filter(([k]) => given(flags[k])).map(([, f]) => f);
    if (named.length > 0) {
      throw new UsageError(
        `${named.join(', ')}: --broker builtin starts its own broker (plain TCP on 127.0.0.1)`,
      );
    }
  }
  // --auth-method: checked here, the exchange is the engine's (its connections are raw).
  const { json: _json, authMethod, ...rest } = flags;
  const c = await resolveConnectionOptions(
    { ...rest, reconnect: false },
    builtin ? { ...env, MQ_URL: '' } : env,
  );
  const scram = scramLogin(c, authMethod);
  const target: BenchTarget = { transport: c.transport, host: c.host, port: c.port };
  if (c.path !== undefined) target.path = c.path;
  if (c.wsHeaders !== undefined) target.wsHeaders = c.wsHeaders;
  if (c.tls !== undefined) target.tls = c.tls;
  if (c.username !== undefined) target.username = c.username;
  if (c.password !== undefined) target.password = c.password;
  if (scram !== undefined) target.authMethod = scram.method;
  const options: Partial<BenchOptions> = { version: c.version, keepalive: c.keepalive, clean: c.clean };
  if (c.connectTimeoutMs !== undefined) options.connectTimeoutMs = c.connectTimeoutMs;
  if (flags.sessionExpiry !== undefined) options.sessionExpiry = c.sessionExpiry ?? 0;
  // A load tool's sessions must not collect messages forever (the shared table's -c means "never").
  else if (!c.clean && c.version === 5) options.sessionExpiry = 60;
  if (flags.idPrefix !== undefined) options.clientIdPrefix = flags.idPrefix;
  if (c.topic !== undefined && mode === 'conn') {
    throw new UsageError(`-L: the topic in the URL ('${c.topic}') has no use in mq bench conn`);
  }
  return c.topic !== undefined ? { target, options, urlTopic: c.topic } : { target, options };
}

/** The load part: clients, rate, payload, topics. */
function load(
  mode: BenchMode,
  flags: BenchFlags,
  preset: BenchPreset,
  urlTopic: string | undefined,
): Partial<BenchOptions> {
  const o: Partial<BenchOptions> = {};
  const n = (v: string | undefined, what: string, dflt?: number) =>
    v !== undefined ? parseQuantity(v, what, 1, true) : dflt;
  if (mode === 'conn') o.clients = n(flags.clients, '-c/--clients', 100);
  const pubs = n(flags.pubs, mode === 'pub' ? '-c/--pubs' : '--pubs', preset.pubs);
  const subs = n(flags.subs, mode === 'sub' ? '-c/--subs' : '--subs', preset.subs);
  if (pubs !== undefined) o.pubs = pubs;
  if (subs !== undefined) o.subs = subs;
  const r = flags.rate !== undefined ? parseQuantity(flags.rate, '--rate', 0.001, false) : preset.rate;
  if (r !== undefined) o.rate = r;
  if (flags.inflight !== undefined) o.inflight = parseInteger(flags.inflight, '--inflight', 1, 65535);
  if (flags.size !== undefined) o.size = parseSize(flags.size);
  if (flags.qos !== undefined) o.qos = parseQos(flags.qos);
  const topic = flags.topic ?? urlTopic;
  if (topic !== undefined) {
    // sub mode: the one topic flag is the filter.
    if (mode === 'sub') o.filter = topic;
    else o.topic = topic;
  }
  if (flags.filter !== undefined) o.filter = flags.filter;
  if (flags.retain === true) o.retain = true;
  return o;
}

/** `--size`: bytes (k = 1024), at least the header. */
function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([kK]?)\s*$/.exec(text);
  if (!m) throw new UsageError(`--size: '${text}' is not a number of bytes (e.g. 64, 1k)`);
  const bytes = Number(m[1]) * (m[2] === '' ? 1 : 1024);
  if (bytes < HEADER_BYTES) {
    throw new UsageError(
      `--size: ${bytes} bytes is less than mq bench's payload header: the minimum is ${HEADER_BYTES}`,
    );
  }
  return parseInteger(bytes, '--size', HEADER_BYTES, 268_435_000);
}

/** The time part: duration or count, warm-up, hold. */
function timing(mode: BenchMode, flags: BenchFlags): Partial<BenchOptions> {
  const o: Partial<BenchOptions> = {};
  if (flags.duration !== undefined && flags.count !== undefined) {
    throw new UsageError('--duration and --count cannot be combined: the run ends on one or the other');
  }
  if (flags.duration !== undefined) o.durationSec = parseDuration(flags.duration, '--duration');
  if (flags.count !== undefined) o.count = parseQuantity(flags.count, '--count', 1, true);
  if (flags.warmup !== undefined) {
    o.warmupSec = parseDuration(flags.warmup, '--warmup', true);
  }
  if (mode === 'conn') {
    // --duration says how long to hold: it implies --hold; --hold alone holds until Ctrl-C.
    o.hold = flags.hold === true || flags.duration !== undefined;
    if (o.hold && flags.duration === undefined) o.durationSec = null;
  }
  return o;
}

/** The run part: connect rate, workers. */
function running(flags: BenchFlags): Partial<BenchOptions> {
  const o: Partial<BenchOptions> = {};
  if (flags.connectRate !== undefined)
    o.connectRate = parseQuantity(flags.connectRate, '--connect-rate', 0.001, false);
  if (flags.workers !== undefined) o.workers = parseInteger(flags.workers, '--workers', 0, 256);
  return o;
}

/**
 * Every flag checked and turned into the plan (UsageError at the first mistake, before anything
 * runs: --assert expressions first, then load, time, connection).
 */
export async function resolveBenchFlags(
  mode: BenchMode,
  flags: BenchFlags,
  preset: BenchPreset = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<BenchPlan> {
  const asserts = (flags.assert ?? []).map(parseAssertion);
  if (flags.broker !== undefined && flags.broker !== 'builtin') {
    throw new UsageError(`--broker: '${flags.broker}' is not a broker mq can start (use --broker builtin)`);
  }
  const builtin = flags.broker === 'builtin';
  if (flags.json !== undefined && flags.json === '')
    throw new UsageError('--json needs a file name, or - for stdout');
  if (flags.html === '-')
    throw new UsageError('--html needs a file name (the page is not written to stdout)');
  const conn = await connection(mode, flags, builtin, env);
  const options: BenchOptions = {
    mode,
    target: conn.target,
    ...conn.options,
    ...load(mode, flags, preset, conn.urlTopic),
    ...timing(mode, flags),
    ...running(flags),
  };
  const plan: BenchPlan = { options, builtin, asserts, quiet: flags.quiet === true };
  if (flags.json !== undefined) plan.json = flags.json;
  if (flags.html !== undefined) plan.html = flags.html;
  return plan;
}
