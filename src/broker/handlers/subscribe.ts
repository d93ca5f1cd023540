/**
 * SUBSCRIBE: each filter checked (syntax, shared-subscription rules, topic levels, --acl), stored in the session
 * and the trie, answered per filter in the SUBACK; then the retained messages the new
 * subscriptions match, as Retain Handling asks.
 */
import {
  matches,
  type QoS,
  ReasonCode,
  type SubscribePacket,
  validateTopicFilter,
} from '../../protocol/index.js';
import { hasMoreLevelsThan, parseSharedSubscription, quoteTopic } from '../../protocol/topic.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { deliver, mayRead } from '../routing.js';
import { type SubEntry, subEntry } from '../trie.js';

interface Added {
  entry: SubEntry;
  /** No subscription of the session had this filter before (Retain Handling 1). */
  isNew: boolean;
}

export function handleSubscribe(core: BrokerCore, c: Connection, p: SubscribePacket): void {
  const s = c.session!;
  const v5 = c.version === 5;
  const subId = v5 ? p.properties?.subscriptionIdentifiers?.[0] : undefined;
  if (subId === 0) {
    c.disconnect(ReasonCode.ProtocolError, 'Subscription Identifier 0 (3.8.2.1.2)');
    return;
  }
  const codes: number[] = [];
  const added: Added[] = [];
  const failure = (code: number) => codes.push(v5 ? code : 0x80);
  let overQuota = 0;
  for (const sub of p.subscriptions) {
    const filter = sub.topicFilter;
    const problem = validateTopicFilter(filter, 5);
    if (problem !== undefined) {
      core.log(`[${c.clientId}] invalid subscription: ${problem.message}`);
      failure(ReasonCode.TopicFilterInvalid);
      continue;
    }
    const shared = parseSharedSubscription(filter);
    if (shared !== undefined && v5 && sub.noLocal === true) {
      // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
      c.disconnect(ReasonCode.ProtocolError, 'No Local set on a shared subscription [MQTT-3.8.3-4]');
      return;
    }
    if (hasMoreLevelsThan(shared?.filter ?? filter, core.maxTopicLevels)) {
      core.log(
        `[${c.clientId}] subscription to ${quoteTopic(filter)} refused: more than ${core.maxTopicLevels} topic levels (--max-topic-levels)`,
      );
      failure(ReasonCode.TopicFilterInvalid);
      continue;
    }
    // A shared subscription is checked on the filter it shares ('$share/g/#' reads what '#' reads).
    if (
      !core.acl.open &&
      c.listener !== 'bridge' &&
      !core.acl.canSubscribe(shared?.filter ?? filter, c.username, c.clientId)
    ) {
      core.log(`[${c.clientId}] not authorized to subscribe to '${filter}'`);
      failure(ReasonCode.NotAuthorized);
      continue;
    }
    const qos = Math.min(sub.qos, core.maxQoS) as QoS;
    const existing = s.subs.get(filter);
    if (existing === undefined && s.subCount >= core.maxSubscriptions) {
      overQuota++;
      failure(ReasonCode.QuotaExceeded);
      continue;
    }
    // Like Mosquitto: a 3.1.1 bridge gets neither its own messages back nor retain flags cleared.
    const entry = subEntry(s, filter, qos, {
      noLocal: v5 ? sub.noLocal === true : s.bridge,
      retainAsPublished: v5 ? sub.retainAsPublished === true : s.bridge,
      retainHandling: v5 ? (sub.retainHandling ?? 0) : 0,
      subscriptionId: subId,
    });
    s.subs.set(filter, entry);
    core.trie.add(entry);
    codes.push(qos);
    added.push({ entry, isNew: existing === undefined });
  }
  if (overQuota > 0) {
    core.log(
      `[${c.clientId}] ${overQuota} subscription(s) refused: the session holds ${core.maxSubscriptions} (--max-subscriptions)`,
    );
  }
  c.writePacket({ type: 'SUBACK', packetId: p.packetId, reasonCodes: codes });
  core.persist?.session(s);
  sendRetained(core, c, added);
}

/**
 * Retained messages after the SUBACK [MQTT-3.3.1-6], per Retain Handling [MQTT-3.3.1-9..11];
 * none for shared subscriptions (4.8.2).
 */
function sendRetained(core: BrokerCore, c: Connection, added: Added[]): void {
  const s = c.session!;
  const now = core.now();
  const checkReads = core.aclReads || core.denyReads;
  for (const { entry, isNew } of added) {
    if (entry.group !== undefined || core.retained.size === 0) continue;
    if (entry.retainHandling === 2 || (entry.retainHandling === 1 && !isNew)) continue;
    const subIds = entry.subscriptionId !== undefined ? [entry.subscriptionId] : undefined;
    const wild = entry.topicFilter.includes('+') || entry.topicFilter.includes('#');
    const candidates = wild ? core.retained.values() : [core.retained.get(entry.topicFilter)];
    for (const msg of candidates) {
      if (msg === undefined || (wild && !matches(entry.topicFilter, msg.topic))) continue;
      if (msg.expired(now)) {
        core.retained.delete(msg.topic);
        continue;
      }
      if (checkReads && !mayRead(core, s, msg.topic)) continue;
      deliver(core, s, msg, Math.min(msg.qos, entry.qos) as QoS, true, subIds);
    }
  }
}
