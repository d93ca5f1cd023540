/**
 * `mq pub --ndjson`: one message a line, as JSON: the objects `mq sub --json` prints
 * ({"topic","payload" | "payload_base64" | "payload_hex","qos","retain","properties"}) read back,
 * so `mq sub --json | mq pub --ndjson` replays messages. Each mistake is a UsageError naming the line.
 */
import type { Properties, ProtocolVersion, QoS } from '../protocol/index.js';
import { UsageError } from './errors.js';
import { lookupProperty, setProperty } from './properties-flag.js';
import { checkTopicName } from './publish-flags.js';
import { jsonDepth, MAX_JSON_DEPTH } from './values.js';

/** QoS, retain and properties of one publish. */
export type PublishOpts = { qos: QoS; retain: boolean; properties?: Properties | undefined };

export interface NdjsonMessage {
  topics: string[];
  payload: Buffer;
  opts: PublishOpts;
}

/** Text in the encoding a JSON field names: "base64", "hex", anything else UTF-8. */
function fromEncoding(text: string, encoding: unknown): Buffer {
  return Buffer.from(text, encoding === 'base64' || encoding === 'hex' ? encoding : 'utf8');
}

/** The payload of a line: payload_base64, payload_hex, or payload (text, or base64/hex per "encoding"). */
function ndjsonPayload(o: Record<string, unknown>): Buffer {
  if (typeof o.payload_base64 === 'string') return Buffer.from(o.payload_base64, 'base64');
  if (typeof o.payload_hex === 'string') return Buffer.from(o.payload_hex, 'hex');
  if (o.payload === undefined || o.payload === null) return Buffer.alloc(0);
  if (typeof o.payload === 'string') return fromEncoding(o.payload, o.encoding);
  return Buffer.from(JSON.stringify(o.payload), 'utf8'); // an embedded JSON value is sent as JSON text
}

/** One --ndjson line: {"topic","payload" | "payload_base64" | "payload_hex","qos","retain","properties"}. */
export async function parseNdjsonLine(
  line: Buffer,
  lineNo: number,
  defaultTopics: string[],
  defaults: PublishOpts,
  version: ProtocolVersion,
): Promise<NdjsonMessage | undefined> {
  const where = `--ndjson line ${lineNo}`;
  const text = line.toString('utf8').trim();
  if (text === '') return undefined;
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new UsageError(`${where}: the JSON nests more than ${MAX_JSON_DEPTH} levels deep`);
  }
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
  const payload = ndjsonPayload(o);
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
      (props as Record<string, unknown>)[info.key] = fromEncoding(v, record[`${info.key}Encoding`]);
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
