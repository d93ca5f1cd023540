/**
 * `mq pub`: publish messages, like mosquitto_pub (same short flags), plus NDJSON input, repeats and
 * friendly MQTT 5 property flags. Exit 0 only when the broker acknowledged every QoS 1/2 message.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { newCommand, run } from '../cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  type ResolvedConnection,
  resolveConnectionOptions,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { lookupProperty, setProperty } from '../cli/properties-flag.js';
import {
  parseBinaryValue,
  parseInteger,
  parseQos,
  parseSeconds,
  readFileValue,
  readStdin,
} from '../cli/values.js';
import {
  ClientClosedError,
  ConnectError,
  DisconnectError,
  type MqttClient,
  PublishRefusedError,
  type PublishResult,
} from '../client/index.js';
import {
  formatReasonCode,
  type Properties,
  type ProtocolVersion,
  type QoS,
  reasonCodeName,
} from '../protocol/index.js';
import { validateTopicName } from '../protocol/topic.js';

export interface PubFlags extends ConnectionFlags {
  debug?: boolean;
  topic?: string[];
  message?: string;
  file?: string;
  stdinFile?: boolean;
  stdinLine?: boolean;
  ndjson?: boolean;
  nullMessage?: boolean;
  qos?: string;
  retain?: boolean;
  repeat?: string;
  repeatDelay?: string;
  contentType?: string;
  responseTopic?: string;
  correlationData?: string;
  messageExpiry?: string;
  userProperty?: string[];
  topicAlias?: string;
  payloadFormatIndicator?: string;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

// --- helpers shared by pub, sub and req ------------------------------------------------------------

/** Turns a client failure into the CliError main.ts prints (exit 2 connection, 5 refused). */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ConnectError || err instanceof DisconnectError) {
    return new CliError(err.message, ExitCode.Connection);
  }
  if (err instanceof PublishRefusedError) return new CliError(err.message, ExitCode.NotAcknowledged);
  if (err instanceof ClientClosedError) return new CliError(err.message, ExitCode.Connection);
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message, ExitCode.Failure);
}

/** mosquitto's -d: the same as --trace. */
export function withDebug<T extends ConnectionFlags & { debug?: boolean }>(opts: T): T {
  return opts.debug === true && opts.trace === undefined ? { ...opts, trace: true } : opts;
}

/** Connects, or throws the CliError for it (exit 2 with the broker's reason by name). */
export async function connectClient(options: ResolvedConnection): Promise<MqttClient> {
  const { MqttClient } = await import('../client/index.js');
  try {
    return await MqttClient.connect(options);
  } catch (err) {
    throw asCliError(err);
  }
}

/** A topic name from the command line, checked: a UsageError naming the flag when it is invalid. */
export function checkTopicName(topic: string, what: string): void {
  const problem = validateTopicName(topic);
  if (problem) throw new UsageError(`${what}: ${problem.message}`);
}

/** Publish properties from the friendly flags, merged into -D publish ones (each given once). */
export async function friendlyPublishProperties(
  flags: Pick<
    PubFlags,
    | 'contentType'
    | 'responseTopic'
    | 'correlationData'
    | 'messageExpiry'
    | 'userProperty'
    | 'topicAlias'
    | 'payloadFormatIndicator'
  >,
  base: Properties,
  version: ProtocolVersion,
): Promise<Properties> {
  const props: Properties = { ...base };
  if (base.userProperties !== undefined) props.userProperties = [...base.userProperties];
  const given: [string, string, string[]][] = [];
  if (flags.contentType !== undefined) given.push(['--content-type', 'content-type', [flags.contentType]]);
  if (flags.responseTopic !== undefined)
    given.push(['--response-topic', 'response-topic', [flags.responseTopic]]);
  if (flags.correlationData !== undefined)
    given.push(['--correlation-data', 'correlation-data', [flags.correlationData]]);
  if (flags.messageExpiry !== undefined)
    given.push(['--message-expiry', 'message-expiry-interval', [flags.messageExpiry]]);
  if (flags.topicAlias !== undefined) given.push(['--topic-alias', 'topic-alias', [flags.topicAlias]]);
  if (flags.payloadFormatIndicator !== undefined)
    given.push(['--payload-format-indicator', 'payload-format-indicator', [flags.payloadFormatIndicator]]);
  for (const up of flags.userProperty ?? []) {
    const eq = up.indexOf('=');
    if (eq <= 0) throw new UsageError(`--user-property: '${up}' is not KEY=VALUE`);
    given.push(['--user-property', 'user-property', [up.slice(0, eq), up.slice(eq + 1)]]);
  }
  if (given.length > 0 && version !== 5) {
    throw new UsageError(`${given[0]![0]} sets an MQTT 5 property: it needs -V 5 (not -V 3.1.1 / 3.1)`);
  }
  for (const [flag, name, values] of given) {
    const info = lookupProperty(name);
    if (info === undefined) throw new Error(`no property ${name}`);
    try {
      await setProperty(props, 'publish', info, values);
    } catch (err) {
      if (err instanceof UsageError) {
        throw new UsageError(err.message.replace(`-D publish ${info.flag}`, flag));
      }
      throw err;
    }
  }
  if (props.responseTopic !== undefined) checkTopicName(props.responseTopic, '--response-topic');
  return props;
}

/** How a refused or unacknowledged publish reads: "broker refused message on 'a/b': 0x87 Not authorized". */
function refusalMessage(topic: string, err: unknown): string {
  if (err instanceof PublishRefusedError && /refused the message to/.test(err.message)) {
    return `broker refused message on '${topic}': ${formatReasonCode(err.reasonCode, 'PUBACK')}`;
  }
  if (err instanceof PublishRefusedError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

// --- the command -------------------------------------------------------------------------------------

export function command(): Command {
  const cmd = newCommand('pub')
    .description(
      'Publish messages, like mosquitto_pub. The message comes from exactly one of -m, -f, -s, -l, -n, --ndjson.',
    )
    .addOption(
      new Option('-t, --topic <topic>', 'topic to publish to (repeatable: publish to each)').argParser(
        collect,
      ),
    )
    .addOption(new Option('-m, --message <message>', 'the message (text, or hex:..., base64:..., @file)'))
    .addOption(new Option('-f, --file <file>', 'send the contents of a file as the message'))
    .addOption(new Option('-s, --stdin-file', 'read all of stdin and send it as one message'))
    .addOption(
      new Option('-l, --stdin-line', 'send each line of stdin as a message (empty lines are skipped)'),
    )
    .addOption(
      new Option(
        '--ndjson',
        'read stdin lines {"topic","payload"|"payload_base64","qos","retain","properties"} (mq sub --json output replays)',
      ),
    )
    .addOption(
      new Option('-n, --null-message', 'send an empty message (with -r: clear the retained message)'),
    )
    .addOption(new Option('-q, --qos <qos>', 'quality of service 0, 1 or 2').default('0'))
    .addOption(new Option('-r, --retain', 'retain the message'))
    .addOption(new Option('--repeat <count>', 'publish the message COUNT times (with -m, -f, -s, -n)'))
    .addOption(new Option('--repeat-delay <seconds>', 'wait this long between repeats (default 0)'))
    .addOption(
      new Option('-M, --max-inflight <count>', 'at most COUNT QoS 1/2 messages unacknowledged at once'),
    )
    .addOption(new Option('--content-type <type>', 'v5 Content Type, e.g. application/json'))
    .addOption(new Option('--response-topic <topic>', 'v5 Response Topic'))
    .addOption(new Option('--correlation-data <value>', 'v5 Correlation Data (text, hex:, base64:, @file)'))
    .addOption(new Option('--message-expiry <seconds>', 'v5 Message Expiry Interval'))
    .addOption(new Option('--user-property <k=v>', 'v5 User Property (repeatable)').argParser(collect))
    .addOption(new Option('--topic-alias <n>', 'v5 Topic Alias'))
    .addOption(
      new Option('--payload-format-indicator <0|1>', 'v5 Payload Format Indicator (1 = UTF-8 text)'),
    );
  cmd.addOption(
    new Option('-d, --debug', "print every packet sent and received (mosquitto's -d; same as --trace)"),
  );
  addConnectionOptions(cmd, { reconnect: false });
  cmd.addHelpText(
    'after',
    `
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
130 Ctrl-C before every message was acknowledged.`,
  );
  return run<PubFlags>(cmd, (opts) => publishCommand(opts));
}

type Source = 'message' | 'file' | 'stdin' | 'lines' | 'ndjson' | 'null';

function pickSource(opts: PubFlags): Source {
  const sources: [Source, string, boolean][] = [
    ['message', '-m', opts.message !== undefined],
    ['file', '-f', opts.file !== undefined],
    ['stdin', '-s', opts.stdinFile === true],
    ['lines', '-l', opts.stdinLine === true],
    ['ndjson', '--ndjson', opts.ndjson === true],
    ['null', '-n', opts.nullMessage === true],
  ];
  const chosen = sources.filter((s) => s[2]);
  if (chosen.length === 0) {
    throw new UsageError('no message: give one of -m MESSAGE, -f FILE, -s, -l, -n or --ndjson');
  }
  if (chosen.length > 1) {
    throw new UsageError(
      `${chosen.map((s) => s[1]).join(' and ')} cannot be combined: give one message source`,
    );
  }
  return chosen[0]![0];
}

interface Tally {
  sent: number;
  /** Acknowledged (QoS 1/2) or written (QoS 0), or failed: no longer waiting. */
  settled: number;
  acked: number;
  failures: number;
  firstFailure?: CliError;
}

async function publishCommand(opts: PubFlags): Promise<number> {
  // Everything that can be checked is checked before connecting.
  const source = pickSource(opts);
  const qos = parseQos(opts.qos ?? '0');
  const conn = await resolveConnectionOptions(withDebug(opts), 'pub');
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
  const properties = await friendlyPublishProperties(opts, conn.properties.publish, conn.version);
  const retain = opts.retain === true;

  let payload: Buffer | undefined;
  if (source === 'message') payload = await parseBinaryValue(opts.message ?? '', '-m');
  else if (source === 'file') payload = await readFileValue(opts.file ?? '', '-f');
  else if (source === 'stdin') payload = await readStdin();
  else if (source === 'null') payload = Buffer.alloc(0);

  const client = await connectClient(conn);
  const tally: Tally = { sent: 0, settled: 0, acked: 0, failures: 0 };
  const publishOpts = {
    qos,
    retain,
    properties: Object.keys(properties).length > 0 ? properties : undefined,
  };
  let lostError: unknown;
  client.on('close', (err) => {
    if (err) lostError = err;
  });
  // Ctrl-C: stop reading and sending, stop waiting for acknowledgements, leave cleanly.
  let fire: () => void = () => {};
  const interrupted: Interrupt = { value: false, signal: new Promise<void>((resolve) => (fire = resolve)) };
  const onSigint = () => {
    interrupted.value = true;
    if (source === 'lines' || source === 'ndjson') process.stdin.destroy();
    fire();
  };
  process.on('SIGINT', onSigint);
  try {
    const makeHandlers = (topic: string, q: QoS, after: () => void): Handlers => ({
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
        if (interrupted.value) return; // the client was closed on Ctrl-C: not the broker's failure
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
    const noop = () => {};

    if (payload !== undefined) {
      const pending: Promise<void>[] = [];
      for (let i = 0; i < repeat && !interrupted.value; i++) {
        if (i > 0 && repeatDelayMs > 0) await Promise.race([delay(repeatDelayMs), interrupted.signal]);
        if (interrupted.value) break;
        for (const topic of topics) {
          tally.sent++;
          const h = makeHandlers(topic, qos, noop);
          pending.push(client.publish(topic, payload, publishOpts).then(h.ok, h.err));
        }
        // With a delay, each repeat is acknowledged before the next one goes out.
        if (repeatDelayMs > 0) await Promise.race([Promise.all(pending.splice(0)), interrupted.signal]);
      }
      await Promise.race([Promise.all(pending), interrupted.signal]);
    } else {
      await streamStdin(client, source === 'ndjson', topics, publishOpts, tally, makeHandlers, interrupted);
    }
  } catch (err) {
    // A bad --ndjson line (or any other failure mid-stream): leave the broker cleanly, then report.
    await client.end().catch(() => undefined);
    throw asCliError(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
  const unsettled = tally.sent - tally.settled;
  if (lostError === undefined) {
    try {
      // mq exits next: once DISCONNECT is with the OS, the broker's close is not worth waiting for.
      await client.end(0, undefined, { flushOnly: true });
    } catch {
      // already closed
    }
  }
  if (interrupted.value && unsettled > 0) {
    throw new CliError(
      `interrupted: ${unsettled} of ${tally.sent} messages were not acknowledged`,
      INTERRUPTED_EXIT,
    );
  }
  if (tally.firstFailure !== undefined) {
    if (tally.failures > 1 && !conn.quiet) {
      process.stderr.write(`mq: ${tally.failures} of ${tally.sent} messages failed\n`);
    }
    throw tally.firstFailure;
  }
  if (lostError !== undefined) throw asCliError(lostError);
  return ExitCode.Ok;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exit code after Ctrl-C while messages still waited for their acknowledgement (128 + SIGINT). */
const INTERRUPTED_EXIT = ExitCode.Interrupted;

interface Interrupt {
  value: boolean;
  /** Resolves on Ctrl-C. */
  signal: Promise<void>;
}

interface Handlers {
  ok: (result: PublishResult) => void;
  err: (err: unknown) => void;
}

type PublishOpts = { qos: QoS; retain: boolean; properties?: Properties | undefined };

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
  makeHandlers: (topic: string, qos: QoS, after: () => void) => Handlers,
  interrupted: Interrupt,
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
    if (!interrupted.value) throw err; // stdin destroyed on Ctrl-C ends the loop with an error
  }
  // Every publish has been acknowledged (or failed) once outstanding reaches 0.
  while (outstanding > 0 && !interrupted.value) {
    await Promise.race([
      new Promise<void>((resolve) => {
        wake = resolve;
        if (outstanding === 0) resolve();
      }),
      interrupted.signal,
    ]);
  }

  async function readLines(): Promise<void> {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      if (interrupted.value || tally.firstFailure?.exitCode === ExitCode.Connection) break;
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
            interrupted.signal,
          ]);
          if (interrupted.value) return;
        }
      }
      if (start < data.length) carry = Buffer.from(data.subarray(start));
    }
    if (carry !== undefined && carry.length > 0 && !interrupted.value) await publishLine(carry);
  }
}

interface NdjsonMessage {
  topics: string[];
  payload: Buffer;
  opts: PublishOpts;
}

/** One --ndjson line: {"topic","payload" | "payload_base64" | "payload_hex","qos","retain","properties"}. */
async function parseNdjsonLine(
  line: Buffer,
  lineNo: number,
  defaultTopics: string[],
  defaults: PublishOpts,
  version: ProtocolVersion,
): Promise<NdjsonMessage | undefined> {
  const where = `--ndjson line ${lineNo}`;
  const text = line.toString('utf8').trim();
  if (text === '') return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where}: not JSON (${(err as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UsageError(`${where}: expected an object like {"topic":"a/b","payload":"hi"}`);
  }
  const o = data as Record<string, unknown>;
  let topics = defaultTopics;
  if (o.topic !== undefined) {
    if (typeof o.topic !== 'string') throw new UsageError(`${where}: "topic" must be a string`);
    checkTopicName(o.topic, `${where}: topic`);
    topics = [o.topic];
  }
  if (topics.length === 0) throw new UsageError(`${where}: no "topic" (and no -t default)`);
  let payload: Buffer;
  if (typeof o.payload_base64 === 'string') payload = Buffer.from(o.payload_base64, 'base64');
  else if (typeof o.payload_hex === 'string') payload = Buffer.from(o.payload_hex, 'hex');
  else if (o.payload === undefined || o.payload === null) payload = Buffer.alloc(0);
  else if (typeof o.payload === 'string') {
    payload =
      o.encoding === 'base64'
        ? Buffer.from(o.payload, 'base64')
        : o.encoding === 'hex'
          ? Buffer.from(o.payload, 'hex')
          : Buffer.from(o.payload, 'utf8');
  } else payload = Buffer.from(JSON.stringify(o.payload), 'utf8'); // an embedded JSON value is sent as JSON text
  let qos = defaults.qos;
  if (o.qos !== undefined) {
    if (o.qos !== 0 && o.qos !== 1 && o.qos !== 2) throw new UsageError(`${where}: "qos" must be 0, 1 or 2`);
    qos = o.qos;
  }
  let retain = defaults.retain;
  if (o.retain !== undefined) {
    if (typeof o.retain !== 'boolean' && o.retain !== 0 && o.retain !== 1) {
      throw new UsageError(`${where}: "retain" must be true or false`);
    }
    retain = o.retain === true || o.retain === 1;
  }
  let properties = defaults.properties;
  if (o.properties !== undefined) {
    if (version !== 5) throw new UsageError(`${where}: "properties" need MQTT 5 (-V 5)`);
    properties = await ndjsonProperties(o.properties, where, defaults.properties ?? {});
  }
  return { topics, payload, opts: { qos, retain, properties } };
}

/** Properties from JSON: keys as mq prints them (contentType) or spec names (content-type). */
async function ndjsonProperties(value: unknown, where: string, base: Properties): Promise<Properties> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where}: "properties" must be an object`);
  }
  const props: Properties = { ...base };
  const record = value as Record<string, unknown>;
  for (const [key, v] of Object.entries(record)) {
    if (key.endsWith('Encoding')) continue;
    const info = lookupProperty(key);
    if (info === undefined) throw new UsageError(`${where}: unknown property "${key}"`);
    if (info.key === 'subscriptionIdentifiers') continue; // what a broker added on delivery: not ours to send
    if (info.type === 'pair') {
      const pairs: [string, string][] = Array.isArray(v)
        ? (v as unknown[]).map((p) => (Array.isArray(p) ? [String(p[0]), String(p[1])] : ['', '']))
        : typeof v === 'object' && v !== null
          ? Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)])
          : [];
      props.userProperties = [...(props.userProperties ?? []), ...pairs];
      continue;
    }
    if (info.type === 'binary' && typeof v === 'string') {
      const enc = record[`${info.key}Encoding`];
      (props as Record<string, unknown>)[info.key] =
        enc === 'base64'
          ? Buffer.from(v, 'base64')
          : enc === 'hex'
            ? Buffer.from(v, 'hex')
            : Buffer.from(v, 'utf8');
      continue;
    }
    const copy = { ...props } as Record<string, unknown>;
    delete copy[info.key];
    try {
      await setProperty(copy as Properties, 'publish', info, [String(v)]);
    } catch (err) {
      if (err instanceof UsageError)
        throw new UsageError(`${where}: ${err.message.replace(/^-D publish /, '')}`);
      throw err;
    }
    Object.assign(props, copy);
  }
  return props;
}
