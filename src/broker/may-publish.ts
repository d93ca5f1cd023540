/**
 * May this client publish this? One answer for a PUBLISH and for the will a CONNECT carries, so a
 * will is held to every rule a PUBLISH is (a will once skipped the '$SYS' check and could leave a
 * spoofed retained $SYS/broker/version behind).
 */
import { isUtf8 } from 'node:buffer';
import { type Properties, type QoS, ReasonCode } from '../protocol/index.js';
import { hasMoreLevelsThan } from '../protocol/topic.js';
import type { BrokerCore } from './core.js';

/** Why a message may not be published: a v5 reason code, and the words for the log. */
export interface Refusal {
  code: number;
  why: string;
}

/** What is checked of a message (a PUBLISH, aliases resolved, or a Will). */
export interface Publication {
  topic: string;
  qos: QoS;
  retain: boolean;
  properties?: Properties | undefined;
  payload: Buffer;
}

/**
 * undefined when the client (`username`, `clientId`) may publish `m`, else the first rule it
 * breaks: too many topic levels (0x90), above the Maximum QoS (0x9B), retained when retain is not
 * available (0x9A), Payload Format Indicator 1 with a payload that is not UTF-8 (0x99), a '$SYS'
 * topic, --deny-publish or --acl (0x87); `bridge` (a --bridge's link) skips the last two.
 */
export function publishRefusal(
  core: BrokerCore,
  username: string | undefined,
  clientId: string,
  m: Publication,
  bridge = false,
): Refusal | undefined {
  const topic = m.topic;
  if (hasMoreLevelsThan(topic, core.maxTopicLevels)) {
    return {
      code: ReasonCode.TopicNameInvalid,
      why: `has more than ${core.maxTopicLevels} topic levels (--max-topic-levels)`,
    };
  }
  if (m.qos > core.maxQoS) {
    return {
      code: ReasonCode.QoSNotSupported,
      why: `has QoS ${m.qos}, above the maximum QoS ${core.maxQoS}`,
    };
  }
  if (m.retain && core.noRetain) {
    return { code: ReasonCode.RetainNotSupported, why: 'is retained, but retain is not available' };
  }
  // [MQTT-3.3.2.3.2] [MQTT-3.1.2.11.3] Payload Format Indicator 1 says UTF-8: a receiver may check
  // it (cheap: only then) and refuse with 0x99.
  if (m.properties?.payloadFormatIndicator === 1 && !isUtf8(m.payload)) {
    return {
      code: ReasonCode.PayloadFormatInvalid,
      why: 'has Payload Format Indicator 1 but its payload is not UTF-8',
    };
  }
  // A --bridge's in-process link may publish anything, as Mosquitto's bridges may (its limits
  // above still hold: the link keeps within them).
  if (bridge) return undefined;
  // $SYS is the broker's.
  if (topic.charCodeAt(0) === 0x24 && topic.startsWith('$SYS')) {
    return { code: ReasonCode.NotAuthorized, why: "is not authorized: $SYS topics are the broker's" };
  }
  if (!core.acl.open && !core.acl.canPublish(topic, username, clientId)) {
    return { code: ReasonCode.NotAuthorized, why: 'is not authorized (--acl, --deny-publish)' };
  }
  return undefined;
}
