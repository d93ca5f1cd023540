/**
 * `mq pub`: publish messages, like mosquitto_pub (same short flags), plus NDJSON input, repeats and
 * friendly MQTT 5 property flags. Exit 0 only when the broker acknowledged every QoS 1/2 message.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { commandOf } from '../cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  type ResolvedConnection,
  resolveConnectionOptions,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { type PublishOpts, parseNdjsonLine } from '../cli/ndjson-input.js';
import { collect, exactlyOne } from '../cli/options.js';
import { checkTopicName, type PublishFlags, publishProperties, readPayload } from '../cli/publish-flags.js';
import { asCliError, connectClient, refusedOn } from '../cli/session.js';
import { type Stop, stopWhen } from '../cli/signals.js';
import { parseInteger, parseQos, parseSeconds } from '../cli/values.js';
import { type MqttClient, PublishRefusedError, type PublishResult } from '../client/index.js';
import { type QoS, reasonCodeName } from '../protocol/index.js';

interface PubFlags extends ConnectionFlags, PublishFlags {
  topic?: string[];
  stdinLine?: boolean;
  ndjson?: boolean;
  repeat?: string;
  repeatDelay?: string;
}

const EXAMPLES = `
Examples:
  mq pub -t sensors/t1 -m 21.5                       publish one message (QoS 0)
  mq pub -t a/b -m hello -q 1 -r                     QoS 1, retained; exit 0 once the broker acked it
  mq pub -t a/b -n -r                                clear the retained message on a/b
  mq pub -t cmd -m '{"on":true}' --content-type application/json --user-property src=cli
  mq pub -t logs -l < app.log                        one message per line, one connection
  mq sub -t 'a/#' --json | mq pub --ndjson -L mqtt://other-broker   replay messages elsewhere
  mq pub -t a/b -m ping --repeat 10 --repeat-delay 0.5
  mq pub -L mqtts://user@broker.example.com/a/b -m hi --cafile ca.pem

Exit codes: 0 every message sent (and acknowledged for QoS 1/2), 1 usage error, 2 connection
refused or lost (the broker's reason by name), 5 the broker refused a message (reason by name),
130 Ctrl-C before every message was acknowledged.`;

export function command(): Command {
  return commandOf<PubFlags>({
    name: 'pub',
    description:
      'Publish messages, like mosquitto_pub. The message comes from exactly one of -m, -f, -s, -l, -n, --ndjson.',
    options: pubOptions(),
    groups: [(cmd) => addConnectionOptions(cmd, { reconnect: false })],
    help: EXAMPLES,
    action: publishCommand,
  });
}

/** pub's own flags, in --help order (the connection flags follow). */
function pubOptions(): Option[] {
  return [
    new Option('-t, --topic <topic>', 'topic to publish to (repeatable: publish to each)').argParser(collect),
    new Option('-m, --message <message>', 'the message (text, or hex:..., base64:..., @file)'),
    new Option('-f, --file <file>', 'send the contents of a file as the message'),
    new Option('-s, --stdin-file', 'read all of stdin and send it as one message'),
    new Option('-l, --stdin-line', 'send each line of stdin as a message (empty lines are skipped)'),
    new Option(
      '--ndjson',
      'read stdin lines {"topic","payload"|"payload_base64","qos","retain","properties"} (mq sub --json output replays)',
    ),
    new Option('-n, --null-message', 'send an empty message (with -r: clear the retained message)'),
    new Option('-q, --qos <qos>', 'quality of service 0, 1 or 2').default('0'),
    new Option('-r, --retain', 'retain the message'),
    new Option('--repeat <count>', 'publish the message COUNT times (with -m, -f, -s, -n)'),
    new Option('--repeat-delay <seconds>', 'wait this long between repeats (default 0)'),
    new Option('-M, --max-inflight <count>', 'at most COUNT QoS 1/2 messages unacknowledged at once'),
    new Option('--content-type <type>', 'v5 Content Type, e.g. application/json'),
    new Option('--response-topic <topic>', 'v5 Response Topic'),
    new Option('--correlation-data <value>', 'v5 Correlation Data (text, hex:, base64:, @file)'),
    new Option('--message-expiry <seconds>', 'v5 Message Expiry Interval'),
    new Option('--user-property <k=v>', 'v5 User Property (repeatable)').argParser(collect),
    new Option('--topic-alias <n>', 'v5 Topic Alias'),
    new Option('--payload-format-indicator <0|1>', 'v5 Payload Format Indicator (1 = UTF-8 text)'),
  ];
}

type Source = 'message' | 'file' | 'stdin' | 'lines' | 'ndjson' | 'null';

function pickSource(opts: PubFlags): Source {
  return exactlyOne<Source>(
    [
      ['message', '-m', opts.message !== undefined],
      ['file', '-f', opts.file !== undefined],
      ['stdin', '-s', opts.stdinFile === true],
      ['lines', '-l', opts.stdinLine === true],
      ['ndjson', '--ndjson', opts.ndjson === true],
      ['null', '-n', opts.nullMessage === true],
    ],
    'no message: give one of -m MESSAGE, -f FILE, -s, -l, -n or --ndjson',
    'give one message source',
  );
}

/** Everything a publish run needs, checked before connecting. */
interface PubPlan {
  source: Source;
  conn: ResolvedConnection;
  topics: string[];
  repeat: number;
  repeatDelayMs: number;
  publishOpts: PublishOpts;
  /** The message of -m, -f, -s, -n; undefined for -l and --ndjson (read line by line). */
  payload: Buffer | undefined;
}

async function plan(opts: PubFlags): Promise<PubPlan> {
  const source = pickSource(opts);
  const qos = parseQos(opts.qos ?? '0');
  const conn = await resolveConnectionOptions(opts);
  const topics = opts.topic ?? (conn.topic !== undefined ? [conn.topic] : []);
  if (topics.length === 0 && source !== 'ndjson') {
    throw new UsageError('no topic: give -t TOPIC (or a topic in the -L URL)');
  }
  for (const t of topics) checkTopicName(t, '-t');
  const repeat = opts.repeat !== undefined ? parseInteger(opts.repeat, '--repeat', 1, 2 ** 31) : 1;
  const repeatDelayMs =
    opts.repeatDelay !== undefined ? Math.round(parseSeconds(opts.repeatDelay, '--repeat-delay') * 1000) : 0;
  if (
    (opts.repeat !== undefined || opts.repeatDelay !== undefined) &&
    (source === 'lines' || source === 'ndjson')
  ) {
    throw new UsageError('--repeat works with -m, -f, -s and -n, not with -l or --ndjson');
  }
  if (opts.repeatDelay !== undefined && opts.repeat === undefined) {
    throw new UsageError('--repeat-delay needs --repeat COUNT');
  }
  const properties = await publishProperties(opts, conn.properties.publish, conn.version);
  const publishOpts = {
    qos,
    retain: opts.retain === true,
    properties: Object.keys(properties).length > 0 ? properties : undefined,
  };
  const payload = await readPayload(opts);
  return { source, conn, topics, repeat, repeatDelayMs, publishOpts, payload };
}

interface Tally {
  sent: number;
  /** Acknowledged (QoS 1/2) or written (QoS 0), or failed: no longer waiting. */
  settled: number;
  acked: number;
  failures: number;
  firstFailure?: CliError;
}

interface Handlers {
  ok: (result: PublishResult) => void;
  err: (err: unknown) => void;
}

type MakeHandlers = (topic: string, qos: QoS, after: () => void) => Handlers;

async function publishCommand(opts: PubFlags): Promise<number> {
  // Everything that can be checked is checked before connecting.
  const p = await plan(opts);
  const client = await connectClient(p.conn);
  const tally: Tally = { sent: 0, settled: 0, acked: 0, failures: 0 };
  let lostError: unknown;
  client.on('close', (err) => {
    if (err) lostError = err;
  });
  const streaming = p.source === 'lines' || p.source === 'ndjson';
  // Ctrl-C: stop reading and sending, stop waiting for acknowledgements, leave cleanly.
  const stop = stopWhen({
    onStop: () => {
      if (streaming) process.stdin.destroy();
    },
  });
  try {
    const makeHandlers = handlersFor(tally, p.conn, stop);
    if (p.payload !== undefined) {
      await publishRepeats(client, p, p.payload, tally, makeHandlers, stop);
    } else {
      await streamStdin(client, p.source === 'ndjson', p.topics, p.publishOpts, tally, makeHandlers, stop);
    }
  } catch (err) {
    // A bad --ndjson line (or any other failure mid-stream): leave the broker cleanly, then report.
    await client.end().catch(() => undefined);
    throw asCliError(err);
  } finally {
    stop.dispose();
  }
  if (lostError === undefined) {
    try {
      // mq exits next: once DISCONNECT is with the OS, the broker's close is not worth waiting for.
      await client.end(0, undefined, { flushOnly: true });
    } catch {
      // already closed
    }
  }
  return outcome(tally, lostError, stop.signal.aborted, p.conn.quiet);
}

/** The exit code (or the CliError) once publishing ended: every message acknowledged is exit 0. */
function outcome(tally: Tally, lostError: unknown, interrupted: boolean, quiet: boolean): number {
  const unsettled = tally.sent - tally.settled;
  if (interrupted && unsettled > 0) {
    throw new CliError(
      `interrupted: ${unsettled} of ${tally.sent} messages were not acknowledged`,
      ExitCode.Interrupted,
    );
  }
  if (tally.firstFailure !== undefined) {
    if (tally.failures > 1 && !quiet) {
      process.stderr.write(`mq: ${tally.failures} of ${tally.sent} messages failed\n`);
    }
    throw tally.firstFailure;
  }
  if (lostError !== undefined) throw asCliError(lostError);
  return ExitCode.Ok;
}

/** How a refused or unacknowledged publish reads: "broker refused message on 'a/b': 0x87 Not authorized". */
function refusalMessage(topic: string, err: unknown): string {
  if (err instanceof PublishRefusedError && /refused the message to/.test(err.message)) {
    return refusedOn(topic, err.reasonCode);
  }
  if (err instanceof PublishRefusedError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** The callbacks of one publish: count it, print --json acks, keep the first failure. */
function handlersFor(tally: Tally, conn: ResolvedConnection, stop: Stop): MakeHandlers {
  return (topic, q, after) => ({
    ok: (result: PublishResult) => {
      after();
      tally.settled++;
      if (q > 0) tally.acked++;
      if (conn.json) {
        const rc = result.reasonCode;
        process.stdout.write(
          `${JSON.stringify({ topic, qos: q, packetId: result.packetId, reasonCode: rc, reason: reasonCodeName(rc, 'PUBACK') })}\n`,
        );
      }
    },
    err: (err: unknown) => {
      after();
      if (stop.signal.aborted) return; // the client was closed on Ctrl-C: not the broker's failure
      tally.settled++;
      tally.failures++;
      const cli = asCliError(err);
      const failure =
        cli.exitCode === ExitCode.NotAcknowledged
          ? new CliError(refusalMessage(topic, err), cli.exitCode)
          : cli;
      tally.firstFailure ??= failure;
      if (!conn.quiet && tally.failures > 1 && tally.failures <= 5)
        process.stderr.write(`mq: ${failure.message}\n`);
    },
  });
}

/** -m, -f, -s, -n: the message to every topic, --repeat times; with a delay, each round acknowledged first. */
async function publishRepeats(
  client: MqttClient,
  p: PubPlan,
  payload: Buffer,
  tally: Tally,
  makeHandlers: MakeHandlers,
  stop: Stop,
): Promise<void> {
  const noop = () => {};
  const pending: Promise<void>[] = [];
  for (let i = 0; i < p.repeat && !stop.signal.aborted; i++) {
    if (i > 0 && p.repeatDelayMs > 0) await Promise.race([delay(p.repeatDelayMs), stop.stopped]);
    if (stop.signal.aborted) break;
    for (const topic of p.topics) {
      tally.sent++;
      const h = makeHandlers(topic, p.publishOpts.qos, noop);
      pending.push(client.publish(topic, payload, p.publishOpts).then(h.ok, h.err));
    }
    // With a delay, each repeat is acknowledged before the next one goes out.
    if (p.repeatDelayMs > 0) await Promise.race([Promise.all(pending.splice(0)), stop.stopped]);
  }
  await Promise.race([Promise.all(pending), stop.stopped]);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** At most this many publishes waiting in the client before stdin reading pauses (backpressure). */
const HIGH_WATER = 4096;

/**
 * -l and --ndjson: reads stdin a chunk at a time, splits lines, publishes each; pauses reading while
 * HIGH_WATER publishes wait, so memory stays bounded whatever the input size.
 */
async function streamStdin(
  client: MqttClient,
  ndjson: boolean,
  topics: string[],
  defaults: PublishOpts,
  tally: Tally,
  makeHandlers: MakeHandlers,
  stop: Stop,
): Promise<void> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const settled = () => {
    outstanding--;
    if (wake !== undefined && outstanding < HIGH_WATER / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  // One pair of callbacks per (topic, QoS), not per message: this loop runs 100k+ times a second.
  const handlerCache = new Map<string, Handlers>();
  const handlers = (topic: string, qos: QoS): Handlers => {
    const key = `${qos}${topic}`;
    let h = handlerCache.get(key);
    if (h === undefined) {
      h = makeHandlers(topic, qos, settled);
      if (handlerCache.size < 10_000) handlerCache.set(key, h);
    }
    return h;
  };
  const lineHandlers = topics.map((t) => handlers(t, defaults.qos));
  let lineNo = 0;
  let carry: Buffer | undefined;

  const publishLine = (line: Buffer): Promise<void> | undefined => {
    lineNo++;
    if (line.length === 0) return undefined; // as mosquitto_pub -l: empty lines are not sent
    if (ndjson) {
      return parseNdjsonLine(line, lineNo, topics, defaults, client.version).then((m) => {
        if (m === undefined) return;
        for (const topic of m.topics) {
          const h = handlers(topic, m.opts.qos);
          outstanding++;
          tally.sent++;
          client.publish(topic, m.payload, m.opts).then(h.ok, h.err);
        }
      });
    }
    for (let i = 0; i < topics.length; i++) {
      const h = lineHandlers[i]!;
      outstanding++;
      tally.sent++;
      client.publishWith(topics[i]!, line, defaults, h.ok, h.err);
    }
    return undefined;
  };

  try {
    await readLines();
  } catch (err) {
    if (!stop.signal.aborted) throw err; // stdin destroyed on Ctrl-C ends the loop with an error
  }
  // Every publish has been acknowledged (or failed) once outstanding reaches 0.
  while (outstanding > 0 && !stop.signal.aborted) {
    await Promise.race([
      new Promise<void>((resolve) => {
        wake = resolve;
        if (outstanding === 0) resolve();
      }),
      stop.stopped,
    ]);
  }

  async function readLines(): Promise<void> {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      if (stop.signal.aborted || tally.firstFailure?.exitCode === ExitCode.Connection) break;
      const data = carry !== undefined ? Buffer.concat([carry, chunk]) : chunk;
      carry = undefined;
      let start = 0;
      for (;;) {
        const nl = data.indexOf(0x0a, start);
        if (nl < 0) break;
        const pending = publishLine(data.subarray(start, nl));
        if (pending !== undefined) await pending;
        start = nl + 1;
        if (outstanding >= HIGH_WATER) {
          await Promise.race([
            new Promise<void>((resolve) => {
              wake = resolve;
            }),
            stop.stopped,
          ]);
          if (stop.signal.aborted) return;
        }
      }
      if (start < data.length) carry = Buffer.from(data.subarray(start));
    }
    if (carry !== undefined && carry.length > 0 && !stop.signal.aborted) await publishLine(carry);
  }
}
