/**
 * `mq req`: MQTT 5 request/response, like mosquitto_rr. Subscribes to the response topic first,
 * publishes the request with Response Topic and Correlation Data, prints the first response whose
 * Correlation Data matches, exits.
 */
import { randomBytes } from 'node:crypto';
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
import { now } from '../cli/format.js';
import { BINARY_PROPERTY_LIMIT, note } from '../cli/io.js';
import { addOutputOptions, type MessageOutput, type OutputFlags, outputFor } from '../cli/message-output.js';
import { collect, exactlyOne } from '../cli/options.js';
import { checkTopicName, type PublishFlags, publishProperties, readPayload } from '../cli/publish-flags.js';
import { asCliError, refusedOn, Session } from '../cli/session.js';
import { stopWhen } from '../cli/signals.js';
import { parseBinaryValue, parseQos, parseSeconds } from '../cli/values.js';
import { formatReasonCode, type Properties, type QoS, validateTopicName } from '../protocol/index.js';
import { quoteTopic } from '../protocol/topic.js';

interface ReqFlags extends ConnectionFlags, PublishFlags, OutputFlags {
  topic?: string;
  timeout?: string;
}

/** Default -W: a request nobody answers should not hang a script forever. */
const DEFAULT_TIMEOUT_S = 10;

const EXAMPLES = `
Examples:
  mq req -t svc/time -m now                         print the reply (payload only on a pipe)
  mq req -t svc/echo -m hi -e replies/me -v         choose the response topic; print topic too
  mq req -t svc/echo -m hi -v -d                    see the broker's Response Information used
  mq req -t svc/calc -m '{"op":"add","a":1,"b":2}' --content-type application/json --json
  mq req -t svc/slow -m x -W 60                     wait up to a minute
  mq req -t svc/time -m now --auth-method SCRAM-SHA-1 -u alice -P secret   enhanced authentication

Needs MQTT 5 (Response Topic and Correlation Data are v5 properties). Responses on the response
topic whose Correlation Data differs are ignored. Default timeout ${DEFAULT_TIMEOUT_S} s (-W 0: forever).

Without -e, mq req asks the broker for Response Information (Request Response Information 1)
and, when the CONNACK has one (mq broker: resp/CLIENT-ID/), uses it as the prefix of its
response topic (PREFIX + random, '/' between unless PREFIX ends with one); from a broker that
sends none (Mosquitto), or one that makes no valid topic name, it uses mq/rr/CLIENT-ID/RANDOM.
-D connect request-response-information 0 keeps to mq/rr/.

The request payload (-m @file, -f, -s) is at most 268435455 bytes, --correlation-data 65535.

Exit codes: 0 response printed, 1 usage error, 2 connection refused or lost, 3 no response in time,
5 the broker refused the request, 130 Ctrl-C.`;

export function command(): Command {
  return commandOf<ReqFlags>({
    name: 'req',
    description:
      'MQTT 5 request/response, like mosquitto_rr: publish a request with a response topic and correlation data, print the matching response.',
    options: reqOptions(),
    groups: [addOutputOptions, (cmd) => addConnectionOptions(cmd, { reconnect: false })],
    help: EXAMPLES,
    action: requestCommand,
  });
}

/** req's own flags, in --help order (the output and connection flags follow). */
function reqOptions(): Option[] {
  return [
    new Option('-t, --topic <topic>', 'request topic'),
    new Option(
      '-e, --response-topic <topic>',
      "response topic to subscribe to (default: the broker's Response Information + random, else mq/rr/<client id>/<random>)",
    ),
    new Option('-m, --message <message>', 'request payload (text, hex:, base64:, @file)'),
    new Option('-f, --file <file>', 'request payload from a file'),
    new Option('-s, --stdin-file', 'request payload from stdin'),
    new Option('-n, --null-message', 'empty request payload'),
    new Option('-q, --qos <qos>', 'QoS of the request and the response subscription').default('0'),
    new Option('-r, --retain', 'retain the request (rarely what you want)'),
    new Option(
      '-W, --timeout <seconds>',
      `give up waiting for the response: exit 3 (default ${DEFAULT_TIMEOUT_S}; 0 waits forever)`,
    ),
    new Option('--correlation-data <value>', 'correlation data to send and match (default: random)'),
    new Option('--content-type <type>', 'v5 Content Type of the request'),
    new Option('--message-expiry <seconds>', 'v5 Message Expiry Interval of the request'),
    new Option('--user-property <k=v>', 'v5 User Property (repeatable)').argParser(collect),
  ];
}

/** The request, checked before connecting (the response topic may wait for the CONNACK). */
interface Request {
  conn: ResolvedConnection;
  topic: string;
  /** -e, or the default without Response Information (chooseResponseTopic). */
  responseTopic: string;
  /** No -e: a broker's Response Information may give the response topic's prefix. */
  askBroker: boolean;
  correlation: Buffer;
  qos: QoS;
  timeoutS: number;
  properties: Properties;
  payload: Buffer;
}

async function plan(opts: ReqFlags): Promise<Request> {
  const conn = await resolveConnectionOptions(opts);
  if (conn.version !== 5) {
    throw new UsageError(
      'mq req needs MQTT 5: Response Topic and Correlation Data do not exist in 3.1/3.1.1 (drop -V)',
    );
  }
  const topic = opts.topic ?? conn.topic;
  if (topic === undefined) throw new UsageError('no request topic: give -t TOPIC');
  checkTopicName(topic, '-t');
  exactlyOne(
    [
      [0, '-m', opts.message !== undefined],
      [1, '-f', opts.file !== undefined],
      [2, '-s', opts.stdinFile === true],
      [3, '-n', opts.nullMessage === true],
    ],
    'no request payload: give one of -m, -f, -s or -n',
    'give one payload',
  );
  const qos = parseQos(opts.qos ?? '0');
  const timeoutS = opts.timeout !== undefined ? parseSeconds(opts.timeout, '-W') : DEFAULT_TIMEOUT_S;

  const safeId = (conn.clientId || 'mq').replace(/[+#/\0]/g, '_');
  const responseTopic = opts.responseTopic ?? `mq/rr/${safeId}/${randomBytes(4).toString('hex')}`;
  // A Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
  checkTopicName(responseTopic, '-e');
  // Without -e, ask for Response Information (unless -D connect request-response-information says).
  const askBroker =
    opts.responseTopic === undefined && conn.connectProperties?.requestResponseInformation !== 0;
  if (askBroker) conn.connectProperties = { ...conn.connectProperties, requestResponseInformation: 1 };
  const correlation =
    opts.correlationData !== undefined
      ? await parseBinaryValue(opts.correlationData, '--correlation-data', BINARY_PROPERTY_LIMIT)
      : Buffer.from(randomBytes(8).toString('hex'));
  const properties = await publishProperties(
    { ...opts, responseTopic: undefined, correlationData: undefined },
    conn.properties.publish,
    5,
  );
  properties.correlationData = correlation;
  const payload = (await readPayload(opts)) ?? Buffer.alloc(0);
  return { conn, topic, responseTopic, askBroker, correlation, qos, timeoutS, properties, payload };
}

/**
 * The response topic, once connected: the broker's Response Information (a prefix, MQTT 5.0 4.10)
 * plus a random level when the broker sent one that makes a topic name, else the planned one.
 */
function chooseResponseTopic(r: Request, responseInformation: string | undefined): string {
  if (!r.askBroker || responseInformation === undefined || responseInformation === '') return r.responseTopic;
  const sep = responseInformation.endsWith('/') ? '' : '/';
  const topic = `${responseInformation}${sep}${randomBytes(4).toString('hex')}`;
  if (validateTopicName(topic, 5) === undefined) return topic;
  if (!r.conn.quiet) {
    note(
      `the broker's Response Information ${quoteTopic(responseInformation)} makes no valid topic name: using '${r.responseTopic}'`,
    );
  }
  return r.responseTopic;
}

async function requestCommand(opts: ReqFlags): Promise<number> {
  const printer = outputFor(opts);
  const r = await plan(opts);
  const output = printer.open(r.conn.quiet);
  const session = await Session.open(r.conn);
  r.responseTopic = chooseResponseTopic(r, session.client.connack.properties?.responseInformation);
  r.properties.responseTopic = r.responseTopic;
  printResponse(session, r, output);
  // Ctrl-C before a response: like a killed mosquitto_rr, not a success (128 + SIGINT).
  const stop = stopWhen({
    deadlineMs: r.timeoutS > 0 ? Math.round(r.timeoutS * 1000) : undefined,
    onStop: (reason) =>
      session.end(
        reason === 'deadline'
          ? new CliError(`no response on '${r.responseTopic}' within ${r.timeoutS} s`, ExitCode.Timeout)
          : new CliError('interrupted before a response arrived', ExitCode.Interrupted),
      ),
  });
  await session.run(() => sendRequest(session, r, opts.retain === true));
  return session.close(stop);
}

/** Prints the first message whose Correlation Data matches (and says once that others are ignored). */
function printResponse(session: Session, r: Request, output: MessageOutput): void {
  let ignoredNoted = false;
  session.client.on('message', (packet) => {
    const stamp = now();
    const got = packet.properties?.correlationData;
    if (got === undefined || !got.equals(r.correlation)) {
      if (!ignoredNoted && !r.conn.quiet) {
        ignoredNoted = true;
        note(
          `ignoring a message on '${packet.topic}': its correlation data ${got === undefined ? 'is missing' : 'does not match'}`,
        );
      }
      return;
    }
    output.write(packet, stamp);
    session.end(ExitCode.Ok);
  });
}

/** Subscribes to the response topic, then publishes the request; a refusal of either ends the session. */
async function sendRequest(session: Session, r: Request, retain: boolean): Promise<void> {
  const suback = await session.client.subscribe([{ topicFilter: r.responseTopic, qos: r.qos }]);
  const code = suback.reasonCodes[0] ?? 0x80;
  if (code >= 0x80) {
    session.end(
      new CliError(
        `subscription to the response topic '${r.responseTopic}' refused: ${formatReasonCode(code, 'SUBACK')}`,
        ExitCode.Connection,
      ),
    );
    return;
  }
  session.client
    .publish(r.topic, r.payload, { qos: r.qos, retain, properties: r.properties })
    .catch((err: unknown) => {
      const cli = asCliError(err);
      session.end(
        cli.exitCode === ExitCode.NotAcknowledged && 'reasonCode' in (err as object)
          ? new CliError(refusedOn(r.topic, (err as { reasonCode: number }).reasonCode), cli.exitCode)
          : cli,
      );
    });
}
