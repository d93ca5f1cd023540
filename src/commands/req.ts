/**
 * `mq req`: MQTT 5 request/response, like mosquitto_rr. Subscribes to the response topic first,
 * publishes the request with Response Topic and Correlation Data, prints the first response whose
 * Correlation Data matches, exits.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { Option } from 'commander';
import { newCommand, run } from '../cli/command.js';
import { addConnectionOptions, resolveConnectionOptions } from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { now } from '../cli/format.js';
import { MessageOutput } from '../cli/message-output.js';
import { parseBinaryValue, parseQos, parseSeconds, readFileValue, readStdin } from '../cli/values.js';
import { formatReasonCode } from '../protocol/index.js';
import {
  asCliError,
  checkTopicName,
  connectClient,
  friendlyPublishProperties,
  type PubFlags,
  withDebug,
} from './pub.js';
import { addOutputOptions, pickOutputMode } from './sub.js';

interface ReqFlags extends Omit<PubFlags, 'topic'> {
  topic?: string;
  responseTopic?: string;
  timeout?: string;
  verbose?: boolean;
  eol?: boolean;
  format?: string;
  output?: string;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Default -W: a request nobody answers should not hang a script forever. */
const DEFAULT_TIMEOUT_S = 10;

export function command(): Command {
  const cmd = newCommand('req')
    .description(
      'MQTT 5 request/response, like mosquitto_rr: publish a request with a response topic and correlation data, print the matching response.',
    )
    .addOption(new Option('-t, --topic <topic>', 'request topic'))
    .addOption(
      new Option(
        '-e, --response-topic <topic>',
        'response topic to subscribe to (default: a unique mq/rr/<client id>/<random>)',
      ),
    )
    .addOption(new Option('-m, --message <message>', 'request payload (text, hex:, base64:, @file)'))
    .addOption(new Option('-f, --file <file>', 'request payload from a file'))
    .addOption(new Option('-s, --stdin-file', 'request payload from stdin'))
    .addOption(new Option('-n, --null-message', 'empty request payload'))
    .addOption(new Option('-q, --qos <qos>', 'QoS of the request and the response subscription').default('0'))
    .addOption(new Option('-r, --retain', 'retain the request (rarely what you want)'))
    .addOption(
      new Option(
        '-W, --timeout <seconds>',
        `give up waiting for the response: exit 3 (default ${DEFAULT_TIMEOUT_S}; 0 waits forever)`,
      ),
    )
    .addOption(
      new Option('--correlation-data <value>', 'correlation data to send and match (default: random)'),
    )
    .addOption(new Option('--content-type <type>', 'v5 Content Type of the request'))
    .addOption(new Option('--message-expiry <seconds>', 'v5 Message Expiry Interval of the request'))
    .addOption(new Option('--user-property <k=v>', 'v5 User Property (repeatable)').argParser(collect));
  addOutputOptions(cmd);
  cmd.addOption(
    new Option('-d, --debug', "print every packet sent and received (mosquitto's -d; same as --trace)"),
  );
  addConnectionOptions(cmd, { reconnect: false });
  cmd.addHelpText(
    'after',
    `
Examples:
  mq req -t svc/time -m now                         print the reply (payload only on a pipe)
  mq req -t svc/echo -m hi -e replies/me -v         choose the response topic; print topic too
  mq req -t svc/calc -m '{"op":"add","a":1,"b":2}' --content-type application/json --json
  mq req -t svc/slow -m x -W 60                     wait up to a minute

Needs MQTT 5 (Response Topic and Correlation Data are v5 properties). Responses on the response
topic whose Correlation Data differs are ignored. Default timeout ${DEFAULT_TIMEOUT_S} s (-W 0: forever).

Exit codes: 0 response printed, 1 usage error, 2 connection refused or lost, 3 no response in time,
5 the broker refused the request, 130 Ctrl-C.`,
  );
  return run<ReqFlags>(cmd, (opts) => requestCommand(opts));
}

async function requestCommand(opts: ReqFlags): Promise<number> {
  const mode = pickOutputMode(opts);
  const conn = await resolveConnectionOptions(withDebug(opts), 'req');
  if (conn.version !== 5) {
    throw new UsageError(
      'mq req needs MQTT 5: Response Topic and Correlation Data do not exist in 3.1/3.1.1 (drop -V)',
    );
  }
  const topic = opts.topic ?? conn.topic;
  if (topic === undefined) throw new UsageError('no request topic: give -t TOPIC');
  checkTopicName(topic, '-t');
  const sources = [
    opts.message !== undefined && '-m',
    opts.file !== undefined && '-f',
    opts.stdinFile === true && '-s',
    opts.nullMessage === true && '-n',
  ].filter((s): s is string => s !== false);
  if (sources.length === 0) throw new UsageError('no request payload: give one of -m, -f, -s or -n');
  if (sources.length > 1)
    throw new UsageError(`${sources.join(' and ')} cannot be combined: give one payload`);
  const qos = parseQos(opts.qos ?? '0');
  const timeoutS = opts.timeout !== undefined ? parseSeconds(opts.timeout, '-W') : DEFAULT_TIMEOUT_S;

  const safeId = (conn.clientId || 'mq').replace(/[+#/\0]/g, '_');
  const responseTopic = opts.responseTopic ?? `mq/rr/${safeId}/${randomBytes(4).toString('hex')}`;
  // A Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
  checkTopicName(responseTopic, '-e');
  const correlation =
    opts.correlationData !== undefined
      ? await parseBinaryValue(opts.correlationData, '--correlation-data')
      : Buffer.from(randomBytes(8).toString('hex'));
  const properties = await friendlyPublishProperties(
    { ...opts, responseTopic: undefined, correlationData: undefined },
    conn.properties.publish,
    5,
  );
  properties.responseTopic = responseTopic;
  properties.correlationData = correlation;

  const payload =
    opts.message !== undefined
      ? await parseBinaryValue(opts.message, '-m')
      : opts.file !== undefined
        ? await readFileValue(opts.file, '-f')
        : opts.stdinFile === true
          ? await readStdin()
          : Buffer.alloc(0);

  const output = new MessageOutput(
    { mode, verbose: opts.verbose === true, eol: opts.eol !== false, format: opts.format },
    process.stdout,
    (m) => {
      if (!conn.quiet) process.stderr.write(`mq: ${m}\n`);
    },
  );
  const client = await connectClient(conn);
  let settle: (result: number | CliError) => void = () => {};
  const done = new Promise<number | CliError>((resolve) => {
    settle = resolve;
  });
  let ignoredNoted = false;
  client.on('message', (packet) => {
    const stamp = now();
    const got = packet.properties?.correlationData;
    if (got === undefined || !got.equals(correlation)) {
      if (!ignoredNoted && !conn.quiet) {
        ignoredNoted = true;
        process.stderr.write(
          `mq: ignoring a message on '${packet.topic}': its correlation data ${got === undefined ? 'is missing' : 'does not match'}\n`,
        );
      }
      return;
    }
    output.write(packet, stamp);
    settle(ExitCode.Ok);
  });
  client.on('close', (err) => settle(err ? asCliError(err) : ExitCode.Ok));
  // Ctrl-C before a response: like a killed mosquitto_rr, not a success (128 + SIGINT).
  const onSignal = () => settle(new CliError('interrupted before a response arrived', ExitCode.Interrupted));
  process.on('SIGINT', onSignal);
  let timer: NodeJS.Timeout | undefined;
  if (timeoutS > 0) {
    timer = setTimeout(
      () => settle(new CliError(`no response on '${responseTopic}' within ${timeoutS} s`, ExitCode.Timeout)),
      Math.round(timeoutS * 1000),
    );
  }
  try {
    const suback = await client.subscribe([{ topicFilter: responseTopic, qos }]);
    const code = suback.reasonCodes[0] ?? 0x80;
    if (code >= 0x80) {
      settle(
        new CliError(
          `subscription to the response topic '${responseTopic}' refused: ${formatReasonCode(code, 'SUBACK')}`,
          ExitCode.Connection,
        ),
      );
    } else {
      client
        .publish(topic, payload, { qos, retain: opts.retain === true, properties })
        .catch((err: unknown) => {
          const cli = asCliError(err);
          settle(
            cli.exitCode === ExitCode.NotAcknowledged && 'reasonCode' in (err as object)
              ? new CliError(
                  `broker refused message on '${topic}': ${formatReasonCode((err as { reasonCode: number }).reasonCode, 'PUBACK')}`,
                  cli.exitCode,
                )
              : cli,
          );
        });
    }
  } catch (err) {
    settle(asCliError(err));
  }
  const result = await done;
  clearTimeout(timer);
  process.off('SIGINT', onSignal);
  await client.end().catch(() => undefined);
  if (typeof result !== 'number') throw result;
  return result;
}
