/**
 * `mq sub`: subscribe and print messages, like mosquitto_sub (same short flags, same -F codes, same
 * payload-only output on a pipe), with JSON output, --until, and reconnect on by default.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { BoundedRegex } from '../cli/bounded-regex.js';
import { commandOf } from '../cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  type ResolvedConnection,
  resolveConnectionOptions,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { now } from '../cli/format.js';
import { note } from '../cli/io.js';
import { addOutputOptions, type MessageOutput, type OutputFlags, outputFor } from '../cli/message-output.js';
import { collect } from '../cli/options.js';
import { reportReconnects, Session } from '../cli/session.js';
import { stopWhen } from '../cli/signals.js';
import { parseInteger, parseQos, parseSeconds } from '../cli/values.js';
import { formatReasonCode, type PublishPacket, type QoS, type Subscription } from '../protocol/index.js';
import { matches, validateTopicFilter } from '../protocol/topic.js';

interface SubFlags extends ConnectionFlags, OutputFlags {
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
}

/** A compiled --until expression. */
export type UntilMatcher = (message: PublishPacket) => boolean;

/** How long --until's regex may run on one message: 1 s, plus 1 s per 10 MB of payload. */
export function untilTimeLimitMs(payloadBytes: number): number {
  return 1000 + Math.ceil(payloadBytes / 10_000);
}

/**
 * --until EXPR: `/regex/flags` (tested on the payload text, within untilTimeLimitMs: a regex that
 * runs longer is treated as no match, and `warn` says so), `topic=FILTER` (the topic matches an
 * MQTT filter, wildcards allowed), `payload=TEXT` (the payload is exactly TEXT), anything else: the
 * payload contains EXPR.
 */
export function parseUntil(expr: string, warn: (message: string) => void = note): UntilMatcher {
  const re = /^\/(.*)\/([a-z]*)$/s.exec(expr);
  if (re) {
    try {
      new RegExp(re[1]!, re[2]);
    } catch (err) {
      throw new UsageError(`--until: '${expr}' is not a valid regular expression: ${(err as Error).message}`);
    }
    const regex = new BoundedRegex(re[1]!, re[2]!);
    return (m) => {
      const limitMs = untilTimeLimitMs(m.payload.length);
      const hit = regex.test(m.payload.toString('utf8'), limitMs);
      if (hit === undefined) {
        warn(
          `--until ${expr}: gave up on the message on '${m.topic}' after ${(limitMs / 1000).toFixed(1)} s (counted as no match)`,
        );
      }
      return hit === true;
    };
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

const EXAMPLES = `
Examples:
  mq sub -t 'sensors/#' -v                       topic and payload, one message per line
  mq sub -t a/b -C 1 -W 5                        wait up to 5 s for one message (exit 3 on timeout)
  mq sub -t 'a/#' -t 'b/#' -q 1 -q 0             per-filter QoS, in -t order
  mq sub -t 'a/#' --json | jq .payload           one JSON object per line (binary-safe)
  mq sub -t '#' -F '%I %t %x'                     mosquitto_sub's -F codes
  mq sub -t 'jobs/+/status' --until 'payload=done'   exit when a job says done
  mq sub -t 'a/#' --retained-only --remove-retained -E   clear retained messages under a/
  mq sub -t 'a/#' | head -1                       ends quietly when head closes the pipe
  mq sub -t 'a/#' --auth-method SCRAM-SHA-512 -u alice -P secret   SCRAM: the password is not sent

--until EXPR: /regex/flags on the payload; topic=FILTER (MQTT wildcards); payload=TEXT (exact);
otherwise a substring of the payload. A regex runs in a worker thread with a time limit per message
(1 s, plus 1 s per 10 MB of payload): one that backtracks longer, like /(a+)+$/ on "aaa...ab", is
counted as no match, with a note on stderr, and mq sub goes on with the next message.
Output: payload only when stdout is a pipe or file (like mosquitto_sub), -v adds the topic; on a
terminal a coloured view (topic, QoS, retained, properties, pretty JSON). NO_COLOR turns colour off.
On a terminal whatever the network sent (topics, payloads, properties) is shown with control
characters escaped (\\x1b, \\u202e): a publisher cannot drive your terminal. On a pipe or a file the
output is byte-exact; --output raw is never escaped. -F widths and precisions are at most 65535.

Exit codes: 0 done (-C, --until, -E, Ctrl-C, closed pipe), 1 usage error, 2 connection refused or
lost (with --no-reconnect) or every subscription refused, 3 -W timeout.`;

export function command(): Command {
  return commandOf<SubFlags>({
    name: 'sub',
    description: 'Subscribe and print messages, like mosquitto_sub. Reconnects by default.',
    options: subOptions(),
    groups: [addOutputOptions, (cmd) => addConnectionOptions(cmd, { reconnect: true })],
    help: EXAMPLES,
    action: subscribeCommand,
  });
}

/** sub's own flags, in --help order (the output and connection flags follow). */
function subOptions(): Option[] {
  return [
    new Option('-t, --topic <filter>', 'topic filter to subscribe to (repeatable)').argParser(collect),
    new Option(
      '-q, --qos <qos>',
      'QoS 0, 1 or 2: once for every -t, or once per -t in order (default 0)',
    ).argParser(collect),
    new Option(
      '-T, --filter-out <filter>',
      'do not print messages whose topic matches (repeatable)',
    ).argParser(collect),
    new Option(
      '-U, --unsubscribe <filter>',
      'unsubscribe from this filter (repeatable; with -c sessions)',
    ).argParser(collect),
    new Option('-C, --count <n>', 'exit after printing N messages'),
    new Option('-W, --timeout <seconds>', 'give up after this many seconds: exit 3'),
    new Option(
      '--until <expr>',
      'exit 0 after a message that matches: /regex/ (time-limited, see below), topic=FILTER, payload=TEXT, or a substring of the payload',
    ),
    new Option('-R, --ignore-retained', 'do not print stale (retained) messages'),
    new Option('--retained-only', 'print only retained messages; exit at the first live one'),
    new Option('--remove-retained', 'clear every retained message received (use -T to spare some)'),
    new Option('-E, --exit-after-sub', 'exit once the broker acknowledged the subscriptions'),
    new Option('--no-local', 'v5: do not receive my own publications'),
    new Option('--retain-as-published', 'v5: keep the retain flag as the publisher set it'),
    new Option('--retain-handling <0|1|2>', 'v5: 0 send retained, 1 only for new subscriptions, 2 never'),
  ];
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
    until:
      opts.until !== undefined ? parseUntil(opts.until, opts.quiet === true ? () => {} : note) : undefined,
  };
}

async function subscribeCommand(opts: SubFlags): Promise<number> {
  const printer = outputFor(opts);
  const conn = await resolveConnectionOptions(opts);
  const p = plan(opts, conn.topic, conn.version);
  const output = printer.open(conn.quiet);
  const session = await Session.open(conn);
  const seen = printMessages(session, opts, p, output, conn.quiet);
  output.onBroken(() => session.end(ExitCode.Ok));
  reportReconnects(session.client, conn.quiet);
  const stop = stopWhen({
    signals: ['SIGINT', 'SIGTERM'],
    deadlineMs: p.timeoutMs,
    onStop: (reason) => session.end(reason === 'deadline' ? timedOut(p, seen.printed) : ExitCode.Ok),
  });
  await session.run(() => subscribeAll(session, opts, p, conn));
  return session.close(stop, () => Promise.allSettled(seen.removals));
}

/** The -W timeout: "timed out after 5 s (1 of 2 messages)". */
function timedOut(p: SubPlan, printed: number): CliError {
  const got =
    p.count > 0
      ? ` (${printed} of ${p.count} messages)`
      : printed > 0
        ? ` (${printed} messages)`
        : ' (no message)';
  return new CliError(`timed out after ${(p.timeoutMs ?? 0) / 1000} s${got}`, ExitCode.Timeout);
}

/** What the message handler has done so far: messages printed, retained messages being cleared. */
interface Seen {
  printed: number;
  removals: Promise<unknown>[];
}

/**
 * Prints each message the flags let through (-R, -T, --retained-only), clears retained ones with
 * --remove-retained, and ends the session at -C, --until or --retained-only's first live message.
 */
function printMessages(
  session: Session,
  opts: SubFlags,
  p: SubPlan,
  output: MessageOutput,
  quiet: boolean,
): Seen {
  const seen: Seen = { printed: 0, removals: [] };
  const client = session.client;
  client.on('message', (packet) => {
    if (session.ended) return;
    const stamp = now();
    if (opts.retainedOnly && !packet.retain) {
      session.end(ExitCode.Ok);
      return;
    }
    if (packet.retain && opts.ignoreRetained) return;
    for (const f of p.filterOut) if (matches(f, packet.topic)) return;
    if (opts.removeRetained && packet.retain && packet.payload.length > 0) {
      seen.removals.push(
        client.publish(packet.topic, Buffer.alloc(0), { qos: 1, retain: true }).catch((err: unknown) => {
          if (!quiet)
            note(`could not remove the retained message on '${packet.topic}': ${(err as Error).message}`);
        }),
      );
    }
    output.write(packet, stamp);
    seen.printed++;
    if (p.count > 0 && seen.printed >= p.count) session.end(ExitCode.Ok);
    else if (p.until?.(packet)) session.end(ExitCode.Ok);
  });
  return seen;
}

/** SUBSCRIBE (every filter refused ends the session: exit 2), then UNSUBSCRIBE; -E ends after. */
async function subscribeAll(
  session: Session,
  opts: SubFlags,
  p: SubPlan,
  conn: ResolvedConnection,
): Promise<void> {
  const client = session.client;
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
      session.end(new CliError(refused.join('; '), ExitCode.Connection));
    } else if (!conn.quiet) {
      for (const r of refused) note(r);
    }
  }
  if (p.unsubscribe.length > 0 && !session.ended) {
    const unsuback = await client.unsubscribe(p.unsubscribe, nonEmpty(conn.properties.unsubscribe));
    unsuback.reasonCodes.forEach((code, i) => {
      if (code >= 0x80 && !conn.quiet) {
        note(`unsubscribe from '${p.unsubscribe[i]}' refused: ${formatReasonCode(code, 'UNSUBACK')}`);
      }
    });
  }
  if (opts.exitAfterSub || p.subscriptions.length === 0) session.end(ExitCode.Ok);
}

function nonEmpty<T extends object>(props: T): T | undefined {
  return Object.keys(props).length > 0 ? props : undefined;
}
