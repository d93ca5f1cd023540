/**
 * Delivery, with mq's own client: QoS 0/1/2 round trips (n of n, times), QoS downgrade, ordering,
 * retained messages (set, read, clear; Retain As Published; Retain Handling 0/1/2) and No Local.
 *
 * "Not delivered" is never waited out: a check publishes a marker after the message that must not
 * come, on the same topic, and the marker arriving first proves it (a broker keeps the order of one
 * publisher's messages on a topic [MQTT-4.6.0-5]).
 */
import type { MqttClient } from '../../client/index.js';
import type { PublishPacket, QoS } from '../../protocol/index.js';
import { type Check, checksOf } from '../check.js';
import { type Inbox, WaitTimeout } from '../inbox.js';
import { type CheckScope, fail, pass, skipped, unsupported, Verdict } from '../scope.js';
import { code, median, ms, quoted } from '../text.js';
import type { Outcome } from '../types.js';

const ROUND_TRIP_MESSAGES = 10;
const ORDERED_MESSAGES = 100;

type SubscribeOptions = { noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: 0 | 1 | 2 };

/** A new client, subscribed and what it receives (a refused subscription ends the check as failed). */
export async function subscriber(
  scope: CheckScope,
  filter: string,
  qos: QoS,
  options: SubscribeOptions = {},
): Promise<{ client: MqttClient; inbox: Inbox<PublishPacket>; granted: number }> {
  const client = await scope.client();
  const inbox = scope.messages(client);
  const granted = await subscribe(scope, client, filter, qos, options);
  return { client, inbox, granted };
}

/** SUBSCRIBE one filter; the granted QoS, or a Verdict (failed) when refused. */
export async function subscribe(
  scope: CheckScope,
  client: MqttClient,
  filter: string,
  qos: QoS,
  options: SubscribeOptions = {},
): Promise<number> {
  const suback = await scope.wait(client.subscribe([{ topicFilter: filter, qos, ...options }]), 'SUBACK');
  const granted = suback.reasonCodes[0] ?? 0x80;
  if (granted >= 0x80) {
    throw new Verdict({
      status: 'fail',
      detail: `SUBSCRIBE ${quoted(filter)} was refused: ${code(granted, 'SUBACK')}`,
    });
  }
  return granted;
}

/** The next message on `topic` (payload as text). */
export function nextOn(inbox: Inbox<PublishPacket>, topic: string, what: string): Promise<PublishPacket> {
  return inbox.take((p) => p.topic === topic, what);
}

/** Publish and wait for the broker's acknowledgement (QoS 0: written). */
export async function published(
  scope: CheckScope,
  client: MqttClient,
  topic: string,
  payload: string,
  options: { qos?: QoS; retain?: boolean; properties?: PublishPacket['properties'] } = {},
): Promise<void> {
  await scope.wait(client.publish(topic, payload, options), `the acknowledgement of a PUBLISH to ${topic}`);
}

/** The QoS at most 1 the broker takes (for messages that need an acknowledgement but not QoS 2). */
const ackQoS = (scope: CheckScope): QoS => Math.min(1, scope.maxQoS()) as QoS;

const check = checksOf('delivery');

function roundTrip(qos: QoS): Check {
  return check(`qos${qos}`, `QoS ${qos} round trip`, async (scope) => {
    if (qos > scope.maxQoS()) return unsupported(`the broker's Maximum QoS is ${scope.maxQoS()}`);
    const topic = scope.topic();
    const sub = await subscriber(scope, topic, qos);
    const publisher = await scope.client();
    const n = ROUND_TRIP_MESSAGES;
    const sentAt: number[] = [];
    const acks: Promise<unknown>[] = [];
    const ackMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      sentAt.push(t);
      acks.push(publisher.publish(topic, String(i), { qos }).then(() => ackMs.push(performance.now() - t)));
    }
    const latencies: number[] = [];
    const seen = new Set<number>();
    let duplicates = 0;
    try {
      await scope.wait(Promise.all(acks), `the acknowledgements of ${n} QoS ${qos} messages`);
      while (seen.size < n) {
        const m = await nextOn(sub.inbox, topic, `message ${seen.size + 1} of ${n}`);
        const i = Number(m.payload.toString());
        if (seen.has(i)) duplicates++;
        seen.add(i);
        latencies.push(performance.now() - (sentAt[i] ?? 0));
      }
    } catch (err) {
      if (!(err instanceof WaitTimeout)) throw err;
      return fail(`${seen.size} of ${n} delivered in time`, { value: seen.size });
    }
    const numbers: Record<string, number> = {
      delivered: seen.size,
      medianMs: round(median(latencies)),
      maxMs: round(Math.max(...latencies)),
    };
    let detail = `${n} of ${n} delivered, median ${ms(numbers.medianMs!)}, max ${ms(numbers.maxMs!)}`;
    if (qos > 0) {
      numbers.ackMedianMs = round(median(ackMs));
      detail += `; ${qos === 1 ? 'PUBACK' : 'PUBCOMP'} median ${ms(numbers.ackMedianMs)}`;
    }
    if (sub.granted !== qos) detail += ` (subscription granted QoS ${sub.granted})`;
    if (duplicates > 0) return fail(`${detail}, but ${duplicates} duplicate(s)`, { value: n, numbers });
    return pass(detail, { value: n, numbers });
  });
}

const round = (v: number) => Math.round(v * 100) / 100;

async function qosDowngrade(scope: CheckScope): Promise<Outcome> {
  if (scope.maxQoS() < 1) return skipped("needs QoS 1 (the broker's Maximum QoS is 0)");
  const topic = scope.topic();
  const sub = await subscriber(scope, topic, 0);
  const publisher = await scope.client();
  await published(scope, publisher, topic, 'q1', { qos: 1 });
  const m = await nextOn(sub.inbox, topic, 'the QoS 1 message');
  if (m.qos !== 0) return fail(`a QoS 1 message came to a QoS 0 subscription at QoS ${m.qos} [MQTT-3.8.4-8]`);
  return pass('a QoS 1 message came to a QoS 0 subscription at QoS 0');
}

async function ordering(scope: CheckScope): Promise<Outcome> {
  const qos = ackQoS(scope);
  const topic = scope.topic();
  const sub = await subscriber(scope, topic, qos);
  const publisher = await scope.client();
  const n = ORDERED_MESSAGES;
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) acks.push(publisher.publish(topic, String(i), { qos }));
  await scope.wait(Promise.all(acks), `the acknowledgements of ${n} messages`);
  for (let i = 0; i < n; i++) {
    const m = await nextOn(sub.inbox, topic, `message ${i + 1} of ${n}`);
    const got = Number(m.payload.toString());
    if (got !== i) return fail(`message ${got} arrived where ${i} was due`, { value: i });
  }
  return pass(`${n} QoS ${qos} messages on one topic arrived in the order sent`, { value: n });
}

/** Skips (not supported) when the broker announced Retain Available 0. */
function needsRetain(scope: CheckScope): void {
  if (scope.ctx.connack.properties?.retainAvailable === 0) {
    throw new Verdict({ status: 'unsupported', detail: 'the broker announced Retain Available 0' });
  }
}

async function retained(scope: CheckScope): Promise<Outcome> {
  needsRetain(scope);
  const qos = ackQoS(scope);
  const topic = scope.topic();
  const publisher = await scope.client();
  scope.clearsRetained(topic);
  await published(scope, publisher, topic, 'retained', { qos, retain: true });
  const reader = await subscriber(scope, topic, qos);
  const m = await nextOn(reader.inbox, topic, 'the retained message');
  if (m.payload.toString() !== 'retained')
    return fail(`a new subscriber got ${quoted(m.payload.toString())}`);
  if (!m.retain) return fail('the retained message came without the RETAIN flag [MQTT-3.3.1-8]');
  await published(scope, publisher, topic, '', { qos, retain: true });
  const later = await subscriber(scope, topic, qos);
  await published(scope, publisher, topic, 'marker', { qos });
  const first = await nextOn(later.inbox, topic, 'the marker');
  if (first.payload.toString() !== 'marker')
    return fail('the retained message was still sent after it was cleared');
  return pass('set, sent to a new subscriber with the RETAIN flag, cleared by an empty retained message');
}

async function retainAsPublished(scope: CheckScope): Promise<Outcome> {
  needsRetain(scope);
  const topic = scope.topic();
  const keep = await subscriber(scope, topic, 0, { retainAsPublished: true });
  const clear = await subscriber(scope, topic, 0);
  const publisher = await scope.client();
  scope.clearsRetained(topic);
  await published(scope, publisher, topic, 'live', { qos: ackQoS(scope), retain: true });
  const a = await nextOn(keep.inbox, topic, 'the message (Retain As Published)');
  const b = await nextOn(clear.inbox, topic, 'the message (no Retain As Published)');
  if (!a.retain) return fail('with Retain As Published the RETAIN flag was cleared [MQTT-3.3.1-13]');
  if (b.retain) return fail('without Retain As Published the RETAIN flag was kept [MQTT-3.3.1-12]');
  return pass('RETAIN flag kept with Retain As Published, cleared without it');
}

async function retainHandling(scope: CheckScope): Promise<Outcome> {
  needsRetain(scope);
  const topic = scope.topic();
  const publisher = await scope.client();
  scope.clearsRetained(topic);
  await published(scope, publisher, topic, 'retained', { qos: ackQoS(scope), retain: true });
  let markers = 0;
  /** The first message after a marker published now: 'retained' or the marker. */
  const firstAfterSubscribe = async (client: MqttClient, inbox: Inbox<PublishPacket>, rh: 0 | 1 | 2) => {
    await subscribe(scope, client, topic, 0, { retainHandling: rh });
    const marker = `marker ${++markers}`;
    await published(scope, publisher, topic, marker, { qos: ackQoS(scope) });
    const first = await nextOn(
      inbox,
      topic,
      `the first message after subscribing with Retain Handling ${rh}`,
    );
    // Whatever came first, the marker is consumed too.
    if (first.payload.toString() !== marker) await nextOn(inbox, topic, marker);
    return first.payload.toString() === 'retained';
  };
  const c0 = await scope.client();
  const c1 = await scope.client();
  const c2 = await scope.client();
  const [in0, in1, in2] = [scope.messages(c0), scope.messages(c1), scope.messages(c2)];
  const problems: string[] = [];
  if (!(await firstAfterSubscribe(c0, in0, 0))) problems.push('0: not sent on subscribing');
  if (!(await firstAfterSubscribe(c1, in1, 1))) problems.push('1: not sent to a new subscription');
  if (await firstAfterSubscribe(c1, in1, 1))
    problems.push('1: sent again to an existing subscription [MQTT-3.3.1-10]');
  if (await firstAfterSubscribe(c2, in2, 2)) problems.push('2: sent [MQTT-3.3.1-11]');
  if (problems.length > 0) return fail(`Retain Handling ${problems.join('; ')}`);
  return pass('0: sent on subscribing; 1: sent to a new subscription, not to an existing one; 2: not sent');
}

async function noLocal(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const self = await subscriber(scope, topic, 0, { noLocal: true });
  const other = await scope.client();
  const qos = ackQoS(scope);
  await published(scope, self.client, topic, 'own', { qos });
  await published(scope, other, topic, 'other', { qos });
  const first = await nextOn(self.inbox, topic, 'the message from another client');
  if (first.payload.toString() === 'own')
    return fail('a No Local subscription got its own message back [MQTT-3.8.3-3]');
  return pass("a No Local subscription got others' messages, not its own");
}

export const deliveryChecks: Check[] = [
  roundTrip(0),
  roundTrip(1),
  roundTrip(2),
  check('qosDowngrade', 'QoS downgrade', qosDowngrade),
  check('ordering', 'Ordering on one topic', ordering),
  check('retained', 'Retained: set, read, clear', retained),
  check('retainAsPublished', 'Retain As Published', retainAsPublished, { v5: true }),
  check('retainHandling', 'Retain Handling 0/1/2', retainHandling, { v5: true }),
  check('noLocal', 'No Local', noLocal, { v5: true }),
];
