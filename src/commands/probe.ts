/**
 * `mq probe [connection options]`: what a broker supports and whether it behaves as it announces.
 * Parses and checks the flags, runs src/probe, prints the report (text or --json), returns the
 * exit code.
 */
import { setMaxListeners } from 'node:events';
import type { Command } from 'commander';
import { Option } from 'commander';
import { newCommand, run } from '../cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  resolveConnectionOptions,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { collect } from '../cli/options.js';
import { colorEnabled, colors } from '../cli/output.js';
import { packetToJson } from '../cli/packet-json.js';
import { formatPacketLine } from '../cli/render.js';
import { stopWhen } from '../cli/signals.js';
import { parseInteger, parseSeconds } from '../cli/values.js';
import { ConnectError } from '../client/index.js';
import type { CheckStatus, ProbeOptions, SectionName } from '../probe/index.js';
import { validateTopicName } from '../protocol/index.js';

interface ProbeFlags extends ConnectionFlags {
  timeout?: string;
  prefix?: string;
  maxProbe?: string;
  only?: string[];
  skip?: string[];
  concurrency?: string;
}

const SECTION_NAMES: readonly SectionName[] = [
  'versions',
  'announces',
  'delivery',
  'sessions',
  'limits',
  'identity',
];
const DEFAULT_TIMEOUT_S = 5;
const DEFAULT_MAX_PROBE = 1024 * 1024;
const DEFAULT_CONCURRENCY = 8;

export function command(): Command {
  const cmd = newCommand('probe')
    .description(
      'Probe a broker: the MQTT versions it accepts, what its CONNACK announces and whether it behaves so, delivery, sessions, wills, limits found by binary search, identity and TLS.',
    )
    .addOption(new Option('--timeout <seconds>', `time limit of each check (default ${DEFAULT_TIMEOUT_S})`))
    .addOption(
      new Option(
        '--prefix <topic>',
        'topic prefix of every topic the probe uses (default: mq-probe/<random>)',
      ),
    )
    .addOption(
      new Option(
        '--max-probe <bytes>',
        'upper bound of the limit searches: packet size, topic and client id length (default 1M; k, M suffixes)',
      ),
    )
    .addOption(
      new Option(
        '--only <sections>',
        `run only these sections (comma-separated, repeatable): ${SECTION_NAMES.join(', ')}`,
      ).argParser(collect),
    )
    .addOption(new Option('--skip <sections>', 'run every section but these').argParser(collect))
    .addOption(
      new Option(
        '--concurrency <n>',
        `checks run at once (default ${DEFAULT_CONCURRENCY}; 1 for a broker with few connections to spare)`,
      ),
    );
  addConnectionOptions(cmd, { reconnect: false });
  cmd.addHelpText(
    'after',
    `
Examples:
  mq probe                                   probe the broker on localhost:1883
  mq probe -h broker.example -u alice -P secret
  mq probe -L mqtts://broker.example --cafile ca.pem    with TLS details (version, cipher, chain, expiry)
  mq probe --only limits --max-probe 64k     only the limits, packets up to 64 KiB
  mq probe --skip limits,identity --json | jq .delivery
  mq probe -V 3.1.1 --timeout 2              run the checks in MQTT 3.1.1, 2 s per check

Sections: versions, announces (MQTT 5 CONNACK properties), delivery, sessions, limits, identity.
Each line is a check: pass, FAIL, not supported, skipped (and why), or info (a fact). --json prints
one object: sections as keys, each check under its id with status, value (numbers as numbers),
detail; the CONNACK under "connack" as \`mq decode --json\` prints it.

Every topic is under --prefix; retained messages and sessions the probe makes are removed after
each check. A broker that drops a check's connection fails that check only. Without -V, a broker
that refuses MQTT 5 is probed in MQTT 3.1.1. -I sets the client id prefix (the probe opens many
connections, so -i, -c, -x and the will flags do not apply).

Exit codes: 0 the report was printed (whatever it found), 1 usage error, 2 connection refused or
lost before the probe could start (the CONNACK reason in the message), 6 another failure, 130 Ctrl-C
(the report so far is printed).`,
  );
  return run<ProbeFlags>(cmd, (flags) => probeCommand(flags));
}

/** --only / --skip: the sections to run. */
export function pickSections(only: string[] | undefined, skip: string[] | undefined): SectionName[] {
  const parse = (values: string[], flag: string) =>
    values
      .flatMap((v) => v.split(','))
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== '')
      .map((v) => {
        if (!(SECTION_NAMES as readonly string[]).includes(v)) {
          throw new UsageError(`${flag}: unknown section '${v}' (sections: ${SECTION_NAMES.join(', ')})`);
        }
        return v as SectionName;
      });
  if (only !== undefined && skip !== undefined) throw new UsageError('--only and --skip cannot be combined');
  if (only !== undefined) return parse(only, '--only');
  const skipped = new Set(parse(skip ?? [], '--skip'));
  const left = SECTION_NAMES.filter((s) => !skipped.has(s));
  if (left.length === 0) throw new UsageError('--skip: every section is skipped; nothing to probe');
  return left;
}

/** `65536`, `64k`, `1M` (binary multiples). */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*$/.exec(text);
  if (!m) throw new UsageError(`${what}: '${text}' is not a size in bytes (e.g. 65536, 64k, 1M)`);
  const n = Number(m[1]) * (m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1024 : 1024 * 1024);
  return parseInteger(n, what, 64, 268_435_455);
}

function refuseFlags(flags: ProbeFlags): void {
  const notHere: [boolean, string][] = [
    [flags.id !== undefined, '-i (use -I PREFIX: the probe opens many connections)'],
    [flags.clean === false, '-c'],
    [flags.sessionExpiry !== undefined, '-x'],
    [
      flags.willTopic !== undefined ||
        flags.willPayload !== undefined ||
        flags.willQos !== undefined ||
        flags.willRetain === true,
      'the will flags',
    ],
    [flags.reconnect !== undefined && flags.reconnect !== false, '--reconnect'],
  ];
  const given = notHere.filter(([g]) => g).map(([, name]) => name);
  if (given.length > 0) {
    throw new UsageError(
      `${given.join(', ')}: not for mq probe (each check makes its own sessions and wills)`,
    );
  }
}

async function probeCommand(flags: ProbeFlags): Promise<number> {
  refuseFlags(flags);
  const sections = pickSections(flags.only, flags.skip);
  const timeoutS = flags.timeout !== undefined ? parseSeconds(flags.timeout, '--timeout') : DEFAULT_TIMEOUT_S;
  if (timeoutS <= 0) throw new UsageError('--timeout must be more than 0 seconds');
  const maxProbe =
    flags.maxProbe !== undefined ? parseSize(flags.maxProbe, '--max-probe') : DEFAULT_MAX_PROBE;
  if (flags.prefix !== undefined) {
    const problem = validateTopicName(flags.prefix);
    if (problem) throw new UsageError(`--prefix: ${problem.message}`);
    if (flags.prefix.startsWith('$'))
      throw new UsageError(
        "--prefix: a prefix starting with '$' is not matched by wildcards; choose another",
      );
  }
  const { trace, ...traceless } = flags;
  const client = await resolveConnectionOptions({ ...traceless, reconnect: false });
  delete client.trace;
  const json = client.json;
  const quiet = client.quiet;

  const { runProbe, formatReport, reportJson } = await import('../probe/index.js');
  const stop = stopWhen();
  setMaxListeners(0, stop.signal);
  const progress = !quiet && process.stderr.isTTY === true ? progressLine() : undefined;
  const options: ProbeOptions = {
    client,
    timeoutMs: Math.round(timeoutS * 1000),
    maxProbe,
    sections,
    concurrency:
      flags.concurrency !== undefined
        ? parseInteger(flags.concurrency, '--concurrency', 1, 64)
        : DEFAULT_CONCURRENCY,
    signal: stop.signal,
  };
  // -V (or a profile's version) is kept; without one the probe may fall back from 5 to 3.1.1.
  if (flags.protocolVersion !== undefined || client.version !== 5) options.version = client.version;
  if (flags.prefix !== undefined) options.prefix = flags.prefix;
  if (flags.idPrefix !== undefined) options.idPrefix = flags.idPrefix;
  if (trace !== undefined && trace !== false) options.trace = await probeTracer(trace);
  if (progress !== undefined)
    options.onResult = (r, done, total) => progress.update(`${done}/${total} ${r.section}: ${r.title}`);
  let report: Awaited<ReturnType<typeof runProbe>>;
  try {
    progress?.update('connecting');
    report = await runProbe(options);
  } catch (err) {
    if (stop.signal.aborted) throw new CliError('interrupted before the probe started', ExitCode.Interrupted);
    // The broker's reason string may be in it: main.ts escapes it like every CliError message.
    if (err instanceof ConnectError) throw new CliError(err.message, ExitCode.Connection);
    throw err;
  } finally {
    progress?.clear();
    stop.dispose();
  }
  if (json) {
    const out = reportJson(report);
    const ordered = { ...out, connack: packetToJson(report.connack, { version: report.version }) };
    process.stdout.write(`${JSON.stringify(ordered)}\n`);
  } else {
    process.stdout.write(formatReport(report, paintFor()));
  }
  return report.interrupted ? ExitCode.Interrupted : ExitCode.Ok;
}

function paintFor() {
  const c = colors(process.stdout);
  const byStatus: Record<CheckStatus, (t: string) => string> = {
    pass: c.green,
    fail: c.red.bold,
    unsupported: c.yellow,
    skipped: c.dim,
    info: c.cyan,
  };
  return {
    status: (status: CheckStatus, text: string) => byStatus[status](text),
    heading: (text: string) => c.bold(text),
    dim: (text: string) => c.dim(text),
  };
}

/** --trace: every packet of every probe connection on stderr, labelled `[check#n]`. */
async function probeTracer(mode: string | true): Promise<NonNullable<ProbeOptions['trace']>> {
  if (mode !== true && mode !== 'hex') {
    throw new UsageError(`--trace: '${mode}' is not a trace mode (use --trace or --trace=hex)`);
  }
  return (label, version, direction, packet, raw) => {
    let line = `[${label}] ${direction === 'out' ? '->' : '<-'} ${formatPacketLine(packet, version)}\n`;
    if (mode === 'hex') line += `   ${raw.toString('hex').replace(/(..)(?!$)/g, '$1 ')}\n`;
    process.stderr.write(line);
  };
}

/** One line of progress on a terminal's stderr, rewritten in place. */
function progressLine() {
  const dim = colorEnabled(process.stderr) ? (t: string) => `\x1b[2m${t}\x1b[22m` : (t: string) => t;
  let shown = false;
  const width = () => Math.max(20, (process.stderr.columns ?? 80) - 1);
  return {
    update(text: string) {
      process.stderr.write(`\r\x1b[K${dim(`mq probe: ${text}`.slice(0, width()))}`);
      shown = true;
    },
    clear() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}
