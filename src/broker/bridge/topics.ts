/**
 * A bridge's topics, in Mosquitto's `topic` syntax (mosquitto.conf(5)):
 *
 *   pattern [[[out | in | both] qos-level] local-prefix remote-prefix]
 *
 * Direction defaults to out, QoS to 0; `""` stands for an empty prefix, or (as the pattern) for
 * "no pattern": the two prefixes are then the local and the remote topic. Locally the bridge
 * subscribes to local-prefix + pattern (out, both), on the remote broker to remote-prefix + pattern
 * (in, both); a message's topic has the one prefix taken off and the other put on. The first topic
 * (in the order given) that matches a message maps it, as in Mosquitto. Pure: no I/O.
 */
import type { QoS } from '../../protocol/index.js';
import { matches, quoteTopic, validateTopicFilter, validateTopicName } from '../../protocol/topic.js';

export type BridgeDirection = 'in' | 'out' | 'both';

export interface BridgeTopic {
  /** The text it was parsed from (for messages). */
  spec: string;
  /** undefined for `""`: the prefixes are whole topics. */
  pattern: string | undefined;
  direction: BridgeDirection;
  qos: QoS;
  /** '' when none. */
  localPrefix: string;
  remotePrefix: string;
  /** local-prefix + pattern: the filter subscribed to on the local broker (out, both). */
  localFilter: string;
  /** remote-prefix + pattern: the filter subscribed to on the remote broker (in, both). */
  remoteFilter: string;
}

/** A --bridge-topic that is not Mosquitto's syntax; the message says what is wrong. */
export class BridgeTopicError extends Error {
  override name = 'BridgeTopicError';
}

const EMPTY = '""';

/** Parses one topic line (without the leading `topic`); throws BridgeTopicError. */
export function parseBridgeTopic(spec: string): BridgeTopic {
  const words = spec
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  if (words.length === 0)
    throw new BridgeTopicError('empty: expected PATTERN [in|out|both [QOS [LOCAL REMOTE]]]');
  if (words.length > 5) {
    throw new BridgeTopicError(
      `${words.length} words, at most 5: PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]] (a topic cannot contain spaces)`,
    );
  }
  if (words.length === 4) {
    throw new BridgeTopicError(`local prefix '${words[3]}' without a remote prefix (give both; "" for none)`);
  }
  const [patternWord, dirWord, qosWord, localWord, remoteWord] = words as [string, ...(string | undefined)[]];
  const direction = parseDirection(dirWord);
  const qos = parseQos(qosWord);
  const pattern = patternWord === EMPTY ? undefined : patternWord;
  const localPrefix = localWord === undefined || localWord === EMPTY ? '' : localWord;
  const remotePrefix = remoteWord === undefined || remoteWord === EMPTY ? '' : remoteWord;
  if (pattern === undefined && (localPrefix === '' || remotePrefix === '')) {
    throw new BridgeTopicError(
      'pattern "" needs both prefixes: they are then the local and the remote topic (e.g. \'"" in 1 local/t remote/t\')',
    );
  }
  if (pattern !== undefined) {
    if (pattern.startsWith('$share/'))
      throw new BridgeTopicError(`'${pattern}': a shared subscription cannot be bridged`);
    const problem = validateTopicFilter(pattern);
    if (problem !== undefined) throw new BridgeTopicError(`pattern: ${problem.message}`);
  }
  for (const [prefix, side] of [
    [localPrefix, 'local'],
    [remotePrefix, 'remote'],
  ] as const) {
    if (prefix === '') continue;
    // A prefix is part of a topic name: no wildcards (Mosquitto: mosquitto_pub_topic_check).
    const problem = validateTopicName(prefix);
    if (problem !== undefined) throw new BridgeTopicError(`${side} prefix: ${problem.message}`);
    const full = prefix + (pattern ?? '');
    const fullProblem = pattern === undefined ? undefined : validateTopicFilter(full);
    if (fullProblem !== undefined) {
      throw new BridgeTopicError(`${side} prefix + pattern ${quoteTopic(full)}: ${fullProblem.message}`);
    }
  }
  return {
    spec: words.join(' '),
    pattern,
    direction,
    qos,
    localPrefix,
    remotePrefix,
    localFilter: localPrefix + (pattern ?? ''),
    remoteFilter: remotePrefix + (pattern ?? ''),
  };
}

function parseDirection(word: string | undefined): BridgeDirection {
  if (word === undefined) return 'out';
  const d = word.toLowerCase();
  if (d === 'in' || d === 'out' || d === 'both') return d;
  throw new BridgeTopicError(`direction '${word}' is not in, out or both`);
}

function parseQos(word: string | undefined): QoS {
  if (word === undefined) return 0;
  if (word === '0' || word === '1' || word === '2') return Number(word) as QoS;
  throw new BridgeTopicError(`QoS '${word}' is not 0, 1 or 2`);
}

/**
 * The subscriptions one side of a bridge makes: 'in' on the remote broker (the in/both topics'
 * remote filters), 'out' on the local one (the out/both topics' local filters). One per filter, at
 * the highest QoS of the topics that share it; `id` is its Subscription Identifier, made from the
 * filter (so that a session kept from an earlier run with other topics agrees on it).
 *
 * Topics that overlap (`# in 0` and `alerts/# in 2`) make the broker send a message once per
 * matching subscription (MQTT 5); copyFor() says which copy the bridge forwards, so that it
 * forwards one: the one of the highest QoS (of the first such topic), mapped by the first topic
 * that matches (Mosquitto's rule).
 */
export class BridgeSubscriptions {
  readonly side: 'in' | 'out';
  readonly list: { filter: string; qos: QoS; id: number }[] = [];
  private readonly topics: BridgeTopic[];
  private readonly byFilter = new Map<string, { filter: string; qos: QoS; id: number }>();

  constructor(topics: readonly BridgeTopic[], side: 'in' | 'out') {
    this.side = side;
    this.topics = topics.filter((t) => t.direction !== (side === 'in' ? 'out' : 'in'));
    for (const t of this.topics) {
      const filter = this.filterOf(t);
      const known = this.byFilter.get(filter);
      if (known !== undefined) {
        if (t.qos > known.qos) known.qos = t.qos;
        continue;
      }
      let id = filterId(filter);
      while (this.list.some((s) => s.id === id)) id = (id % MAX_SUBSCRIPTION_ID) + 1;
      const s = { filter, qos: t.qos, id };
      this.list.push(s);
      this.byFilter.set(filter, s);
    }
  }

  /**
   * The Subscription Identifier of the copy of a message on `topic` to forward; undefined when
   * no topic of this side matches it.
   */
  copyFor(topic: string): number | undefined {
    let best: { filter: string; qos: QoS; id: number } | undefined;
    for (const t of this.topics) {
      const filter = this.filterOf(t);
      if (!matches(filter, topic)) continue;
      const s = this.byFilter.get(filter)!;
      if (best === undefined || s.qos > best.qos) best = s;
    }
    return best?.id;
  }

  private filterOf(t: BridgeTopic): string {
    return this.side === 'in' ? t.remoteFilter : t.localFilter;
  }
}

/**
 * The local topic of a message received from the remote broker on `topic`: the first in/both topic
 * whose remote filter matches, its remote prefix replaced by its local prefix. undefined when none
 * matches (or the result would be an empty topic).
 */
export function toLocal(topics: readonly BridgeTopic[], topic: string): string | undefined {
  for (const t of topics) {
    if (t.direction === 'out' || !matches(t.remoteFilter, topic)) continue;
    return remap(topic, t.remotePrefix, t.localPrefix);
  }
  return undefined;
}

/** The remote topic of a local message on `topic` (out, both); undefined when no topic matches. */
export function toRemote(topics: readonly BridgeTopic[], topic: string): string | undefined {
  for (const t of topics) {
    if (t.direction === 'in' || !matches(t.localFilter, topic)) continue;
    return remap(topic, t.localPrefix, t.remotePrefix);
  }
  return undefined;
}

const MAX_SUBSCRIPTION_ID = 268_435_455;

/** 1 to 268,435,455 from the filter's characters (FNV-1a). */
function filterId(filter: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < filter.length; i++) {
    h ^= filter.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h % MAX_SUBSCRIPTION_ID) + 1;
}

function remap(topic: string, from: string, to: string): string | undefined {
  const rest = topic.startsWith(from) ? topic.slice(from.length) : topic;
  const out = to + rest;
  return out === '' ? undefined : out;
}
