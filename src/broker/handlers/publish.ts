/**
 * PUBLISH from a client: Topic Alias resolved, the broker's limits enforced (Maximum QoS, Retain
 * Available, Receive Maximum, Payload Format Indicator), --acl checked, the message routed, and
 * PUBACK / PUBREC sent. The fan-in hot path.
 */
import { isUtf8 } from 'node:buffer';
import { type PublishPacket, ReasonCode } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { Message } from '../message.js';
import { route } from '../routing.js';

export function handlePublish(core: BrokerCore, c: Connection, p: PublishPacket, raw: Buffer): void {
  const s = c.session!;
  core.counters.messagesReceived++;
  let topic = p.topic;
  let props = p.properties;
  const alias = props?.topicAlias;
  if (alias !== undefined) {
    if (alias === 0 || alias > core.topicAliasMax) {
      c.disconnect(ReasonCode.TopicAliasInvalid, `topic alias ${alias} outside 1..${core.topicAliasMax}`);
      return;
    }
    c.aliasesIn ??= new Map();
    if (topic === '') {
      const known = c.aliasesIn.get(alias);
      if (known === undefined) {
        c.protocolError(`topic alias ${alias} used before it was set (3.3.2.3.4)`);
        return;
      }
      topic = known;
    } else c.aliasesIn.set(alias, topic);
    props = { ...props };
    delete props.topicAlias;
    if (Object.keys(props).length === 0) props = undefined;
  } else if (topic === '') {
    c.protocolError('PUBLISH with an empty topic and no topic alias');
    return;
  }
  if (p.qos > core.maxQoS) {
    c.disconnect(ReasonCode.QoSNotSupported, `PUBLISH QoS ${p.qos} above the maximum QoS ${core.maxQoS}`);
    return;
  }
  if (p.retain && core.noRetain) {
    c.disconnect(ReasonCode.RetainNotSupported, 'retained PUBLISH but retain is not available');
    return;
  }
  const pid = p.packetId ?? 0;
  if (p.qos === 2) {
    const set = (s.incomingQos2 ??= new Set());
    if (set.has(pid)) {
      // A retransmission of a message already accepted: acknowledge, do not deliver twice.
      c.writeAck(0x50, pid, 0);
      return;
    }
    // The broker's Receive Maximum [MQTT-3.3.4-7] bounds the QoS 1 and 2 PUBLISHes it has not
    // acknowledged. A QoS 1 PUBACK is queued (writeAck) while the very read that carried the
    // PUBLISH is processed, before the next packet is looked at, so no QoS 1 is ever pending
    // here, however many arrive in one read. What counts is QoS 2 between PUBREC and PUBREL.
    // 3.1.1 has no Receive Maximum (nothing tells the client), so only v5 is held to it.
    if (set.size >= core.receiveMaximum && c.version === 5) {
      c.disconnect(
        ReasonCode.ReceiveMaximumExceeded,
        `more than ${core.receiveMaximum} QoS 2 messages unacknowledged`,
      );
      return;
    }
  }
  // [MQTT-3.3.2.3.2] Payload Format Indicator 1 says UTF-8: a receiver may check it (cheap: only
  // then) and refuse with 0x99: PUBACK/PUBREC for QoS 1/2, DISCONNECT for QoS 0 (nothing to ack).
  if (props?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
    const why = `PUBLISH to '${topic}' has Payload Format Indicator 1 but its payload is not UTF-8`;
    core.log(`[${c.label}] ${why}: refused (0x99 Payload format invalid)`);
    if (p.qos === 0) c.disconnect(ReasonCode.PayloadFormatInvalid, why);
    else c.writeAck(p.qos === 1 ? 0x40 : 0x50, pid, ReasonCode.PayloadFormatInvalid);
    return;
  }
  if (!canPublish(core, c, topic)) {
    core.log(`[${c.label}] not authorized to publish to '${topic}': dropped`);
    if (p.qos > 0) c.writeAck(p.qos === 1 ? 0x40 : 0x50, pid, c.version === 5 ? ReasonCode.NotAuthorized : 0);
    return;
  }
  const msg = new Message(topic, p.payload, p.qos, p.retain, props, s, core);
  if (alias === undefined) msg.attachRaw(raw, c.version === 5);
  if (p.qos === 2) {
    s.incomingQos2!.add(pid);
    core.persist?.incomingPending(s, pid);
    if (s.subCount > 0) {
      // [MQTT-4.3.3-2] (5.0: [MQTT-4.3.3-8]) PUBREC once the broker owns the message, not after
      // it is forwarded: a publisher that may get a copy itself gets the PUBREC first.
      const m = c.version === 5 ? core.trie.match(topic) : undefined;
      const none = m !== undefined && m.subs.length === 0 && m.shared.length === 0;
      c.writeAck(0x50, pid, none ? ReasonCode.NoMatchingSubscribers : 0);
      route(core, msg);
      return;
    }
    // No copy can come back to the publisher: the PUBREC goes with the copies, in the same write
    // tick, after them (the subscribers' writes are not held up behind it).
  }
  const matched = route(core, msg);
  if (p.qos === 0) return;
  const reason = c.version === 5 && matched === 0 ? ReasonCode.NoMatchingSubscribers : 0;
  c.writeAck(p.qos === 1 ? 0x40 : 0x50, pid, reason);
}

/** May `c` publish to `topic`? ($SYS is the broker's; a --bridge's link may publish anything.) */
function canPublish(core: BrokerCore, c: Connection, topic: string): boolean {
  if (c.listener === 'bridge') return true;
  if (topic.charCodeAt(0) === 0x24 && topic.startsWith('$SYS')) return false;
  return core.acl.open || core.acl.canPublish(topic, c.username, c.clientId);
}
