/**
 * `mq sub`: subscribe and print messages, like mosquitto_sub (same short flags, same -F codes, same
 * payload-only output on a pipe), with JSON output, --until, and reconnect on by default.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { newCommand, run } from '../cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  resolveConnectionOptions,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { formatProblem, now } from '../cli/format.js';
import { MessageOutput, OUTPUT_MODES, type OutputMode } from '../cli/message-output.js';
import { parseInteger, parseQos, parseSeconds } from '../cli/values.js';
import type { MqttClient } from '../client/index.js';
import { formatReasonCode, type PublishPacket, type QoS, type Subscription } from '../protocol/index.js';
import { matches, validateTopicFilter } from '../protocol/topic.js';
import { asCliError, connectClient, withDebug } from './pub.js';

export interface SubFlags extends ConnectionFlags {
  debug?: boolean;
  topic?: string[];
  qos?: string[];
  filterOut?: string[];
  unsubscribe?: string[];
  count?: string;
  timeout?: string;
  until?: string;
  ignoreRetained?: boolean;
  retainedOnly?: boolean;
  removeRetained?: boolean;
  exitAfterSub?: boolean;
  local?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: string;
  verbose?: boolean;
  eol?: boolean;
  format?: string;
  output?: string;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** A compiled --until expression. */
export type UntilMatcher = (message: PublishPacket) => boolean;

/**
 * --until EXPR: `/regex/flags` (tested on the payload text), `topic=FILTER` (the topic matches an
 * MQTT filter, wildcards allowed), `payload=TEXT` (the payload is exactly TEXT), anything else: the
 * payload contains EXPR.
 */
export function parseUntil(expr: string): UntilMatcher {
  const re = /^\/(.*)\/([a-z]*)$/s.exec(expr);
  if (re) {
    let regex: RegExp;
    try {
      regex = new RegExp(re[1]!, re[2]);
    } catch (err) {
      throw new UsageError(`--until: '${expr}' is not a valid regular expression: ${(err as Error).message}`);
    }
    return (m) => regex.test(m.payload.toString('utf8'));
  }
  if (expr.startsWith('topic=')) {
    const filter = expr.slice(6);
    const problem = validateTopicFilter(filter);
    if (problem) throw new UsageError(`--until topic='${filter}': ${problem.message}`);
    return (m) => matches(filter, m.topic);
  }
  if (expr.startsWith('payload=')) {
    const wanted = Buffer.from(expr.slice(8), 'utf8');
    return (m) => m.payload.equals(wanted);
  }
  const needle = Buffer.from(expr, 'utf8');
  return (m) => m.payload.includes(needle);
}

/** The output mode from --output / --json / -F, checked for conflicts. */
export function pickOutputMode(opts: { output?: string; json?: boolean; format?: string }): OutputMode {
  if (opts.format !== undefined) {
    const problem = formatProblem(opts.format);
    if (problem !== undefined) throw new UsageError(`-F: ${problem}`);
  }
  let mode: OutputMode = 'auto';
  if (opts.output !== undefined) {
    if (!(OUTPUT_MODES as readonly string[]).includes(opts.output)) {
      throw new UsageError(
        `--output: '${opts.output}' is not one of ${OUTPUT_MODES.filter((m) => m !== 'auto').join(', ')}`,
      );
    }
    mode = opts.output as OutputMode;
  }
  if (opts.json === true) {
    if (opts.output !== undefined && opts.output !== 'ndjson' && opts.output !== 'json') {
      throw new UsageError(
        `--json and --output ${opts.output} cannot be combined (--json is --output ndjson)`,
      );
    }
    if (opts.output === undefined) mode = 'ndjson';
  }
  if (opts.format !== undefined && mode !== 'auto' && mode !== 'text') {
    throw new UsageError(`-F and --output ${mode} cannot be combined (-F is text output)`);
  }
  return mode;
}

/** Adds -F, -v, -N, --output to sub and req. */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-v, --verbose', 'print the topic before each payload'))
    .addOption(new Option('-N, --no-eol', 'no newline after each message'))
    .addOption(
      new Option(
        '-F, --format <format>',
        "mosquitto_sub's format: %t topic %p payload %q %r %m %l %x %X %j %J %I %U %A %C %D %E %F %P %R %S, @ time codes, \\n escapes",
      ),
    )
    .addOption(
      new Option(
        '--output <mode>',
        'text (mosquitto style), json, ndjson, hex, base64, raw (default: coloured view on a terminal, text otherwise)',
      ),
    );
}

export function command(): Command {
  const cmd = newCommand('sub')
    .description('Subscribe and print messages, like mosquitto_sub. Reconnects by default.')
    .addOption(
      new Option('-t, --topic <filter>', 'topic filter to subscribe to (repeatable)').argParser(collect),
    )
    .addOption(
      new Option(
        '-q, --qos <qos>',
        'QoS 0, 1 or 2: once for every -t, or once per -t in order (default 0)',
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '-T, --filter-out <filter>',
        'do not print messages whose topic matches (repeatable)',
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '-U, --unsubscribe <filter>',
        'unsubscribe from this filter (repeatable; with -c sessions)',
      ).argParser(collect),
    )
    .addOption(new Option('-C, --count <n>', 'exit after printing N messages'))
    .addOption(new Option('-W, --timeout <seconds>', 'give up after this many seconds: exit 3'))
    .addOption(
      new Option(
        '--until <expr>',
        'exit 0 after a message that matches: /regex/, topic=FILTER, payload=TEXT, or a substring of the payload',
      ),
    )
    .addOption(new Option('-R, --ignore-retained', 'do not print stale (retained) messages'))
    .addOption(new Option('--retained-only', 'print only retained messages; exit at the first live one'))
    .addOption(
      new Option('--remove-retained', 'clear every retained message received (use -T to spare some)'),
    )
    .addOption(new Option('-E, --exit-after-sub', 'exit once the broker acknowledged the subscriptions'))
    .addOption(new Option('--no-local', 'v5: do not receive my own publications'))
    .addOption(new Option('--retain-as-published', 'v5: keep the retain flag as the publisher set it'))
    .addOption(
      new Option('--retain-handling <0|1|2>', 'v5: 0 send retained, 1 only for new subscriptions, 2 never'),
    );
  addOutputOptions(cmd);
  cmd.addOption(
    new Option('-d, --debug', "print every packet sent and received (mosquitto's -d; same as --trace)"),
  );
  addConnectionOptions(cmd, { reconnect: true });
  cmd.addHelpText(
    'after',
    `
Examples:
  mq sub -t 'sensors/#' -v                       topic and payload, one message per line
  mq sub -t a/b -C 1 -W 5                        wait up to 5 s for one message (exit 3 on timeout)
  mq sub -t 'a/#' -t 'b/#' -q 1 -q 0             per-filter QoS, in -t order
  mq sub -t 'a/#' --json | jq .payload           one JSON object per line (binary-safe)
  mq sub -t '#' -F '%I %t %x'                     mosquitto_sub's -F codes
  mq sub -t 'jobs/+/status' --until 'payload=done'   exit when a job says done
  mq sub -t 'a/#' --retained-only --remove-retained -E   clear retained messages under a/
  mq sub -t 'a/#' | head -1                       ends quietly when head closes the pipe

--until EXPR: /regex/flags on the payload; topic=FILTER (MQTT wildcards); payload=TEXT (exact);
otherwise a substring of the payload.
Output: payload only when stdout is a pipe or file (like mosquitto_sub), -v adds the topic; on a
terminal a coloured view (topic, QoS, retained, properties, pretty JSON). NO_COLOR turns colour off.

Exit codes: 0 done (-C, --until, -E, Ctrl-C, closed pipe), 1 usage error, 2 connection refused or
lost (with --no-reconnect) or every subscription refused, 3 -W timeout.`,
  );
  return run<SubFlags>(cmd, (opts) => subscribeCommand(opts));
}

interface SubPlan {
  subscriptions: Subscription[];
  unsubscribe: string[];
  filterOut: string[];
  count: number;
  timeoutMs: number | undefined;
  until: UntilMatcher | undefined;
}

function plan(opts: SubFlags, urlTopic: string | undefined, version: number): SubPlan {
  const filters = opts.topic ?? (urlTopic !== undefined ? [urlTopic] : []);
  const unsubscribe = opts.unsubscribe ?? [];
  if (filters.length === 0 && unsubscribe.length === 0) {
    throw new UsageError('no topic: give -t FILTER (or a topic in the -L URL)');
  }
  const checks: [string, string[]][] = [
    ['-t', filters],
    ['-U', unsubscribe],
    ['-T', opts.filterOut ?? []],
  ];
  for (const [flag, list] of checks) {
    for (const f of list) {
      const problem = validateTopicFilter(f);
      if (problem) {
        throw new UsageError(`${flag}: ${problem.message} (are all '+' and '#' wildcards correct?)`);
      }
    }
  }
  const qosList = (opts.qos ?? []).map((q) => parseQos(q));
  if (qosList.length > 1 && qosList.length !== filters.length) {
    throw new UsageError(
      `-q given ${qosList.length} times for ${filters.length} -t filter(s): give one -q for all, or one per -t in order`,
    );
  }
  const v5Only: [boolean, string][] = [
    [opts.local === false, '--no-local'],
    [opts.retainAsPublished === true, '--retain-as-published'],
    [opts.retainHandling !== undefined, '--retain-handling'],
  ];
  for (const [given, flag] of v5Only) {
    if (given && version !== 5)
      throw new UsageError(`${flag} is an MQTT 5 subscription option: it needs -V 5`);
  }
  const retainHandling =
    opts.retainHandling !== undefined
      ? (parseInteger(opts.retainHandling, '--retain-handling', 0, 2) as 0 | 1 | 2)
      : undefined;
  const subscriptions = filters.map((topicFilter, i): Subscription => {
    const sub: Subscription = {
      topicFilter,
      qos: (qosList.length === 1 ? qosList[0] : qosList[i]) ?? (0 as QoS),
    };
    if (opts.local === false) sub.noLocal = true;
    if (opts.retainAsPublished === true) sub.retainAsPublished = true;
    if (retainHandling !== undefined) sub.retainHandling = retainHandling;
    return sub;
  });
  if (opts.ignoreRetained && opts.retainedOnly) {
    throw new UsageError(
      '-R and --retained-only cannot be combined: one skips retained messages, the other wants only them',
    );
  }
  const count = opts.count !== undefined ? parseInteger(opts.count, '-C', 1, 2 ** 31) : 0;
  let timeoutMs: number | undefined;
  if (opts.timeout !== undefined) {
    const s = parseSeconds(opts.timeout, '-W');
    if (s <= 0) throw new UsageError('-W must be more than 0 seconds');
    timeoutMs = Math.round(s * 1000);
  }
  return {
    subscriptions,
    unsubscribe,
    filterOut: opts.filterOut ?? [],
    count,
    timeoutMs,
    until: opts.until !== undefined ? parseUntil(opts.until) : undefined,
  };
}

/** Prints reconnect notices on stderr (unless --quiet). */
export function reportReconnects(client: MqttClient, quiet: boolean): void {
  if (quiet) return;
  client.on('reconnect', (_attempt, delayMs, lastError) => {
    const why = lastError?.message ?? 'no reason given';
    process.stderr.write(`mq: connection lost: ${why}; reconnecting in ${(delayMs / 1000).toFixed(1)} s\n`);
  });
  client.on('connect', (_connack, resumed) => {
    process.stderr.write(`mq: reconnected${resumed ? ' (session resumed)' : ''}\n`);
  });
}

async function subscribeCommand(opts: SubFlags): Promise<number> {
  const mode = pickOutputMode(opts);
  const conn = await resolveConnectionOptions(withDebug(opts), 'sub');
  const p = plan(opts, conn.topic, conn.version);
  const output = new MessageOutput(
    { mode, verbose: opts.verbose === true, eol: opts.eol !== false, format: opts.format },
    process.stdout,
    (m) => {
      if (!conn.quiet) process.stderr.write(`mq: ${m}\n`);
    },
  );
  const client = await connectClient(conn);

  let resolveDone: (code: number) => void = () => {};
  let rejectDone: (err: CliError) => void = () => {};
  const done = new Promise<number>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  let finished = false;
  const finish = (code: number | CliError) => {
    if (finished) return;
    finished = true;
    if (typeof code === 'number') resolveDone(code);
    else rejectDone(code);
  };

  const removals: Promise<unknown>[] = [];
  let printed = 0;
  client.on('message', (packet) => {
    if (finished) return;
    const stamp = now();
    if (opts.retainedOnly && !packet.retain) {
      finish(ExitCode.Ok);
      return;
    }
    if (packet.retain && opts.ignoreRetained) return;
    for (const f of p.filterOut) if (matches(f, packet.topic)) return;
    if (opts.removeRetained && packet.retain && packet.payload.length > 0) {
      removals.push(
        client.publish(packet.topic, Buffer.alloc(0), { qos: 1, retain: true }).catch((err: unknown) => {
          if (!conn.quiet)
            process.stderr.write(
              `mq: could not remove the retained message on '${packet.topic}': ${(err as Error).message}\n`,
            );
        }),
      );
    }
    output.write(packet, stamp);
    printed++;
    if (p.count > 0 && printed >= p.count) finish(ExitCode.Ok);
    else if (p.until?.(packet)) finish(ExitCode.Ok);
  });
  output.onBroken(() => finish(ExitCode.Ok));
  client.on('close', (err) => {
    if (err) finish(asCliError(err));
    else finish(ExitCode.Ok);
  });
  reportReconnects(client, conn.quiet);

  const onSignal = () => finish(ExitCode.Ok);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let timer: NodeJS.Timeout | undefined;
  if (p.timeoutMs !== undefined) {
    const seconds = p.timeoutMs / 1000;
    timer = setTimeout(() => {
      const got =
        p.count > 0
          ? ` (${printed} of ${p.count} messages)`
          : printed > 0
            ? ` (${printed} messages)`
            : ' (no message)';
      finish(new CliError(`timed out after ${seconds} s${got}`, ExitCode.Timeout));
    }, p.timeoutMs);
  }

  try {
    if (p.subscriptions.length > 0) {
      const suback = await client.subscribe(p.subscriptions, nonEmpty(conn.properties.subscribe));
      const refused: string[] = [];
      suback.reasonCodes.forEach((code, i) => {
        const filter = p.subscriptions[i]?.topicFilter ?? '?';
        if (code >= 0x80)
          refused.push(
            `subscription to '${filter}' refused: ${formatReasonCode(code, 'SUBACK', conn.version)}`,
          );
      });
      if (refused.length === p.subscriptions.length) {
        finish(new CliError(refused.join('; '), ExitCode.Connection));
      } else if (!conn.quiet) {
        for (const r of refused) process.stderr.write(`mq: ${r}\n`);
      }
    }
    if (p.unsubscribe.length > 0 && !finished) {
      const unsuback = await client.unsubscribe(p.unsubscribe, nonEmpty(conn.properties.unsubscribe));
      unsuback.reasonCodes.forEach((code, i) => {
        if (code >= 0x80 && !conn.quiet) {
          process.stderr.write(
            `mq: unsubscribe from '${p.unsubscribe[i]}' refused: ${formatReasonCode(code, 'UNSUBACK')}\n`,
          );
        }
      });
    }
    if (opts.exitAfterSub || p.subscriptions.length === 0) finish(ExitCode.Ok);
  } catch (err) {
    finish(asCliError(err));
  }

  let code: number | CliError;
  try {
    code = await done;
  } catch (err) {
    code = err as CliError;
  }
  clearTimeout(timer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (removals.length > 0) await Promise.allSettled(removals);
  await client.end().catch(() => undefined);
  if (typeof code !== 'number') throw code;
  return code;
}

function nonEmpty<T extends object>(props: T): T | undefined {
  return Object.keys(props).length > 0 ? props : undefined;
}
