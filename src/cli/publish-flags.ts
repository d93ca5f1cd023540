/**
 * The flags of the commands that publish (pub, req): where the payload comes from (-m, -f, -s, -n),
 * topic names checked at the edge, and MQTT 5 publish properties as friendly flags
 * (--content-type, --user-property k=v, ...) merged into the -D publish ones.
 */
import type { Properties, ProtocolVersion } from '../protocol/index.js';
import { validateTopicName } from '../protocol/topic.js';
import { UsageError } from './errors.js';
import { PAYLOAD_LIMIT, readStdin } from './io.js';
import { lookupProperty, setProperty } from './properties-flag.js';
import { parseBinaryValue, readFileValue } from './values.js';

/** -m, -f, -s, -n: the payload of one message. */
export interface PayloadFlags {
  message?: string;
  file?: string;
  stdinFile?: boolean;
  nullMessage?: boolean;
}

/** The friendly flags for MQTT 5 publish properties. */
export interface PublishPropertyFlags {
  contentType?: string;
  responseTopic?: string;
  correlationData?: string;
  messageExpiry?: string;
  userProperty?: string[];
  topicAlias?: string;
  payloadFormatIndicator?: string;
}

/** Every flag pub and req share: the payload, -q, -r and the property flags. */
export interface PublishFlags extends PayloadFlags, PublishPropertyFlags {
  qos?: string;
  retain?: boolean;
}

/** The payload that -m, -f, -s or -n (checked first: at most one) gives; undefined when none does. */
export async function readPayload(flags: PayloadFlags): Promise<Buffer | undefined> {
  if (flags.message !== undefined) return parseBinaryValue(flags.message, '-m');
  if (flags.file !== undefined) return readFileValue(flags.file, '-f');
  if (flags.stdinFile === true) return readStdin(PAYLOAD_LIMIT, '-s');
  if (flags.nullMessage === true) return Buffer.alloc(0);
  return undefined;
}

/** A topic name from the command line, checked: a UsageError naming the flag when it is invalid. */
export function checkTopicName(topic: string, what: string): void {
  const problem = validateTopicName(topic);
  if (problem) throw new UsageError(`${what}: ${problem.message}`);
}

/** [flag, spec name, values] for each friendly flag given. */
function givenPropertyFlags(flags: PublishPropertyFlags): [string, string, string[]][] {
  const given: [string, string, string[]][] = [];
  const single: [string | undefined, string, string][] = [
    [flags.contentType, '--content-type', 'content-type'],
    [flags.responseTopic, '--response-topic', 'response-topic'],
    [flags.correlationData, '--correlation-data', 'correlation-data'],
    [flags.messageExpiry, '--message-expiry', 'message-expiry-interval'],
    [flags.topicAlias, '--topic-alias', 'topic-alias'],
    [flags.payloadFormatIndicator, '--payload-format-indicator', 'payload-format-indicator'],
  ];
  for (const [value, flag, name] of single) if (value !== undefined) given.push([flag, name, [value]]);
  for (const up of flags.userProperty ?? []) {
    const eq = up.indexOf('=');
    if (eq <= 0) throw new UsageError(`--user-property: '${up}' is not KEY=VALUE`);
    given.push(['--user-property', 'user-property', [up.slice(0, eq), up.slice(eq + 1)]]);
  }
  return given;
}

/** Publish properties from the friendly flags, merged into -D publish ones (each given once). */
export async function publishProperties(
  flags: PublishPropertyFlags,
  base: Properties,
  version: ProtocolVersion,
): Promise<Properties> {
  const props: Properties = { ...base };
  if (base.userProperties !== undefined) props.userProperties = [...base.userProperties];
  const given = givenPropertyFlags(flags);
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
