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
import { UsageError } from '../cli/errors.js';
import type { PublishOpts } from '../cli/ndjson-input.js';
import { collect, exactlyOne } from '../cli/options.js';
import { checkTopicName, type PublishFlags, publishProperties, readPayload } from '../cli/publish-flags.js';
import { outcome, publishRepeats, publishRun, streamStdin } from '../cli/publisher.js';
import { asCliError, connectClient } from '../cli/session.js';
import { stopWhen } from '../cli/signals.js';
import { parseInteger, parseQos, parseSeconds } from '../cli/values.js';

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
  mq pub -t a/b -m hi --auth-method SCRAM-SHA-256 -u alice -P secret   v5 enhanced authentication

Limits: a message (-m @file, -f, -s, one -l line) is at most 268435455 bytes, the MQTT maximum;
--correlation-data and other binary properties at most 65535. A larger one is refused (exit 1)
once that many bytes were read (-f /dev/zero ends at once).

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

async function publishCommand(opts: PubFlags): Promise<number> {
  // Everything that can be checked is checked before connecting.
  const p = await plan(opts);
  const client = await connectClient(p.conn);
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
  const run = publishRun(client, p.conn, stop);
  try {
    if (p.payload !== undefined) await publishRepeats(run, p.payload, p);
    else await streamStdin(run, p.source === 'ndjson', p.topics, p.publishOpts);
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
  return outcome(run, lostError);
}
