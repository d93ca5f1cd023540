/**
 * PUBLISH from a client: Topic Alias resolved, the rules a publication must keep checked (topic
 * levels, Maximum QoS, Retain Available, Payload Format Indicator, $SYS, --acl: may-publish.ts),
 * Receive Maximum enforced, the message routed, and PUBACK / PUBREC sent. The fan-in hot path.
 */
import { formatReasonCode, type PublishPacket, ReasonCode } from '../../protocol/index.js';
import { quoteTopic } from '../../protocol/topic.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { publishRefusal, type Refusal } from '../may-publish.js';
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
  const refusal = publishRefusal(
    core,
    c.username,
    c.clientId,
    alias === undefined ? p : { topic, qos: p.qos, retain: p.retain, properties: props, payload: p.payload },
    c.listener === 'bridge',
  );
  if (refusal !== undefined) {
    refusePublish(core, c, p, topic, refusal);
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

/**
 * A PUBLISH publishRefusal refused. Above the Maximum QoS or retained without Retain Available:
 * DISCONNECT. Not authorized: dropped (v5 PUBACK/PUBREC 0x87, 3.1.1 acknowledged as Mosquitto
 * does). A topic with too many levels or a payload not in its announced format: v5 is told in the
 * PUBACK/PUBREC (at QoS 0, nothing acknowledges it: DISCONNECT); 3.1.1 has no way to be told, so
 * the connection is closed, as Mosquitto does.
 */
function refusePublish(core: BrokerCore, c: Connection, p: PublishPacket, topic: string, r: Refusal): void {
  const code = r.code;
  const why = `PUBLISH to ${quoteTopic(topic)} ${r.why}`;
  if (code === ReasonCode.QoSNotSupported || code === ReasonCode.RetainNotSupported) {
    c.disconnect(code, why);
    return;
  }
  const ack = p.qos === 1 ? 0x40 : 0x50;
  const pid = p.packetId ?? 0;
  const v5 = c.version === 5;
  if (code === ReasonCode.NotAuthorized) {
    core.log(`[${c.label}] not authorized to publish to ${quoteTopic(topic)}: dropped`);
    if (p.qos > 0) c.writeAck(ack, pid, v5 ? code : 0);
    return;
  }
  core.log(`[${c.label}] ${why}: refused (${formatReasonCode(code, 'PUBACK')})`);
  if (p.qos === 0 || !v5) c.disconnect(code, why);
  else c.writeAck(ack, pid, code);
}
