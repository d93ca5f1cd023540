/**
 * Delivery, continued: which subscriptions a message reaches. Wildcards, $-topics, shared
 * subscriptions, subscription identifiers, topic aliases both ways, message expiry.
 */
import { PublishRefusedError } from '../../client/index.js';
import { type Check, checksOf } from '../check.js';
import { subscribeFate } from '../flows.js';
import { Inbox, SourceClosed } from '../inbox.js';
import { type CheckScope, fail, pass, skipped, unsupported } from '../scope.js';
import { code, quoted } from '../text.js';
import type { Outcome } from '../types.js';
import { nextOn, published, subscribe, subscriber } from './delivery.js';

const ackQoS = (scope: CheckScope) => Math.min(1, scope.maxQoS()) as 0 | 1;

/**
 * Subscribes `filter`, publishes to every topic of `tries` in order and then to `marker` (which
 * must match): the topics that arrived before the marker, compared with those that should have.
 */
async function routes(
  scope: CheckScope,
  filter: string,
  tries: readonly { topic: string; matches: boolean }[],
  marker: string,
): Promise<Outcome> {
  const sub = await subscriber(scope, filter, ackQoS(scope));
  const publisher = await scope.client();
  for (const t of tries) await published(scope, publisher, t.topic, 'x', { qos: ackQoS(scope) });
  await published(scope, publisher, marker, 'marker', { qos: ackQoS(scope) });
  await sub.inbox.take((p) => p.topic === marker, `the marker on ${marker}`);
  const got = new Set(sub.inbox.all.map((p) => p.topic));
  const rel = (t: string) => scope.shown(t);
  const missed = tries.filter((t) => t.matches && !got.has(t.topic)).map((t) => rel(t.topic));
  const wrong = tries.filter((t) => !t.matches && got.has(t.topic)).map((t) => rel(t.topic));
  const shown = rel(filter);
  if (missed.length > 0 || wrong.length > 0) {
    const parts = [];
    if (missed.length > 0) parts.push(`missed ${missed.join(', ')}`);
    if (wrong.length > 0) parts.push(`wrongly matched ${wrong.join(', ')}`);
    return fail(`${shown}: ${parts.join('; ')}`);
  }
  const yes = tries.filter((t) => t.matches).map((t) => rel(t.topic));
  const no = tries.filter((t) => !t.matches).map((t) => rel(t.topic));
  return pass(`${shown} matched ${yes.join(', ')}; not ${no.join(', ')}`);
}

async function wildcardPlus(scope: CheckScope): Promise<Outcome> {
  const t = (...parts: string[]) => scope.topic(...parts);
  return routes(
    scope,
    t('+', 'x'),
    [
      { topic: t('a', 'x'), matches: true },
      { topic: t('', 'x'), matches: true },
      { topic: t('a', 'b', 'x'), matches: false },
      { topic: t('a', 'y'), matches: false },
    ],
    t('m', 'x'),
  );
}

async function wildcardHash(scope: CheckScope): Promise<Outcome> {
  const t = (...parts: string[]) => scope.topic(...parts);
  return routes(
    scope,
    t('h', '#'),
    [
      // [MQTT-4.7.1-2] 'sport/#' also matches 'sport'.
      { topic: t('h'), matches: true },
      { topic: t('h', 'a'), matches: true },
      { topic: t('h', 'a', 'b', 'c'), matches: true },
      { topic: t('hx', 'a'), matches: false },
    ],
    t('h', 'm'),
  );
}

/** [MQTT-4.7.2-1]: filters starting with a wildcard do not match topics starting with '$'. */
async function dollarTopics(scope: CheckScope): Promise<Outcome> {
  const dollar = `$${scope.topic('d')}`;
  const plusFilter = ['+', ...dollar.split('/').slice(1)].join('/');
  const marker = scope.topic('marker');
  const watcher = await subscriber(scope, `$${scope.topic('#')}`, 0);
  const wild = await scope.client();
  const inbox = scope.messages(wild);
  // v5: no retained messages on '#' (a busy broker's retained store is none of the probe's business).
  await subscribe(scope, wild, '#', 0, scope.v5 ? { retainHandling: 2 } : {});
  await subscribe(scope, wild, plusFilter, 0);
  const publisher = await scope.client();
  const qos = ackQoS(scope);
  try {
    await published(scope, publisher, dollar, 'dollar', { qos });
  } catch (err) {
    if (!(err instanceof PublishRefusedError)) throw err;
    return skipped(`the broker refused a PUBLISH to ${quoted(dollar)} (${err.message}): nothing to compare`);
  }
  await published(scope, publisher, marker, 'marker', { qos });
  await nextOn(inbox, marker, 'the marker on the # subscription');
  const routed = watcher.inbox.peek((p) => p.topic === dollar).length > 0;
  const leaked = inbox.all.filter((p) => p.topic.startsWith('$'));
  if (leaked.length > 0) {
    return fail(`'#' or '+/…' matched ${scope.shown(leaked[0]!.topic)} [MQTT-4.7.2-1]`);
  }
  if (!routed) {
    await nextOn(watcher.inbox, dollar, `the message on ${dollar}`);
  }
  return pass(
    `'#' and '+/…' did not match ${scope.shown(dollar)}; ${scope.shown(`$${scope.ctx.prefix}/#`)} did`,
  );
}

async function sharedSubscriptions(scope: CheckScope): Promise<Outcome> {
  if (scope.ctx.connack.properties?.sharedSubscriptionAvailable === 0) {
    return unsupported('the broker announced Shared Subscription Available 0');
  }
  const topic = scope.topic();
  const filter = `$share/probe/${topic}`;
  const qos = ackQoS(scope);
  const n = 20;
  // One inbox for both members, each message tagged with the member it went to.
  const inbox = new Inbox<{ member: number; payload: string }>(scope.signal);
  for (let member = 0; member < 2; member++) {
    const client = await scope.client();
    client.on('message', (p) => inbox.push({ member, payload: p.payload.toString() }));
    client.on('close', () => inbox.close(new SourceClosed(`member ${member + 1} lost its connection`)));
    const suback = await scope.wait(client.subscribe([{ topicFilter: filter, qos }]), 'SUBACK');
    const rc = suback.reasonCodes[0] ?? 0x80;
    if (rc >= 0x80) {
      const detail = `SUBSCRIBE ${scope.shown(filter)} was refused: ${code(rc, 'SUBACK')}`;
      return rc === 0x9e || rc === 0x80 ? unsupported(detail) : fail(detail);
    }
  }
  const publisher = await scope.client();
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) acks.push(publisher.publish(topic, String(i), { qos }));
  await scope.wait(Promise.all(acks), `the acknowledgements of ${n} messages`);
  const seen = new Set<string>();
  const counts = [0, 0];
  while (seen.size < n) {
    const m = await inbox.take(() => true, `message ${seen.size + 1} of ${n}`);
    if (seen.has(m.payload))
      return fail(`message ${m.payload} was delivered to more than one member of the group`);
    seen.add(m.payload);
    counts[m.member]!++;
  }
  if (counts.some((c) => c === 0))
    return fail(`all ${n} messages went to one of the 2 members (the load was not split)`);
  return pass(`${n} messages split ${counts.join('/')} between 2 members, each delivered once`, { value: n });
}

async function subscriptionIdentifiers(scope: CheckScope): Promise<Outcome> {
  if (scope.ctx.connack.properties?.subscriptionIdentifierAvailable === 0) {
    return unsupported('the broker announced Subscription Identifier Available 0');
  }
  const topic = scope.topic('x');
  const client = await scope.client();
  const inbox = scope.messages(client);
  for (const [filter, id] of [
    [scope.topic('+'), 7],
    [scope.topic('#'), 9],
  ] as const) {
    const suback = await scope.wait(
      client.subscribe([{ topicFilter: filter, qos: 0 }], { subscriptionIdentifiers: [id] }),
      'SUBACK',
    );
    const rc = suback.reasonCodes[0] ?? 0x80;
    if (rc >= 0x80)
      return fail(`SUBSCRIBE with Subscription Identifier ${id} was refused: ${code(rc, 'SUBACK')}`);
  }
  const publisher = await scope.client();
  await published(scope, publisher, topic, 'x', { qos: ackQoS(scope) });
  const ids = new Set<number>();
  let copies = 0;
  while (!(ids.has(7) && ids.has(9))) {
    const m = await nextOn(
      inbox,
      topic,
      `Subscription Identifiers 7 and 9 (seen: ${[...ids].join(', ') || 'none'})`,
    );
    copies++;
    for (const id of m.properties?.subscriptionIdentifiers ?? []) ids.add(id);
  }
  return pass(
    `a message matching two subscriptions carried their identifiers 7 and 9 (${copies === 1 ? 'one copy' : `${copies} copies`})`,
  );
}

async function topicAliasToBroker(scope: CheckScope): Promise<Outcome> {
  const max = scope.ctx.connack.properties?.topicAliasMaximum ?? 0;
  if (max === 0) return unsupported('the broker takes no topic aliases (Topic Alias Maximum 0)');
  const topic = scope.topic();
  const sub = await subscriber(scope, topic, 0);
  const publisher = await scope.client();
  const qos = ackQoS(scope);
  await published(scope, publisher, topic, 'first', { qos, properties: { topicAlias: 1 } });
  await published(scope, publisher, '', 'second', { qos, properties: { topicAlias: 1 } });
  await nextOn(sub.inbox, topic, 'the message that set alias 1');
  const second = await sub.inbox.take(
    (p) => p.payload.toString() === 'second',
    'the message sent with alias 1 alone',
  );
  if (second.topic !== topic)
    return fail(`the message sent with alias 1 alone was delivered to ${quoted(second.topic)}`);
  return pass('alias 1 set with the topic, then used alone: both delivered to the topic');
}

async function topicAliasFromBroker(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const { conn } = await scope.rawSession({
    properties: { ...scope.ctx.client.connectProperties, topicAliasMaximum: 10 },
  });
  const sub = await subscribeFate(scope, conn, [{ topicFilter: topic, qos: 0 }]);
  if (!sub.ok || (sub.suback.reasonCodes[0] ?? 0x80) >= 0x80) return fail('SUBSCRIBE was refused');
  const publisher = await scope.client();
  const n = 3;
  for (let i = 0; i < n; i++) await published(scope, publisher, topic, String(i), { qos: ackQoS(scope) });
  const aliases = new Map<number, string>();
  let used = 0;
  for (let i = 0; i < n; i++) {
    const p = await scope.wait(conn.next('PUBLISH', `message ${i + 1} of ${n}`), 'PUBLISH');
    const alias = p.properties?.topicAlias;
    if (alias === undefined) continue;
    if (alias < 1 || alias > 10)
      return fail(
        `the broker used alias ${alias}, above the Topic Alias Maximum 10 the probe announced [MQTT-3.3.2-10]`,
      );
    if (p.topic !== '') aliases.set(alias, p.topic);
    else {
      used++;
      if (aliases.get(alias) !== topic)
        return fail(`the broker used alias ${alias} before setting it for this topic`);
    }
  }
  if (aliases.size === 0)
    return unsupported(
      'the broker sent full topics to a client that takes 10 aliases (aliases are optional)',
    );
  return pass(`the broker set an alias, then sent ${used} of ${n} messages with the alias alone`);
}

async function messageExpiry(scope: CheckScope): Promise<Outcome> {
  if (scope.maxQoS() < 1) return unsupported("needs QoS 1 to queue messages (the broker's Maximum QoS is 0)");
  const topic = scope.topic();
  const clientId = scope.clientId();
  scope.endsSession(clientId);
  const first = await scope.client({ clientId, sessionExpiry: 60 });
  await subscribe(scope, first, topic, 1);
  await scope.wait(first.end(), 'the disconnect');
  const publisher = await scope.client();
  await published(scope, publisher, topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await published(scope, publisher, topic, 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
  const waitedMs = EXPIRY_WAIT_MS;
  await scope.sleep(waitedMs);
  const again = await scope.client({ clientId, clean: false, sessionExpiry: 60 });
  const inbox = scope.messages(again);
  const m = await nextOn(inbox, topic, 'the queued messages');
  if (m.payload.toString() === 'short') {
    return fail(
      `a message with Message Expiry Interval 1 s was delivered ${waitedMs / 1000} s later [MQTT-3.3.2-5]`,
    );
  }
  const left = m.properties?.messageExpiryInterval;
  if (left === undefined)
    return fail('a queued message came without its Message Expiry Interval [MQTT-3.3.2-6]');
  if (left >= 60)
    return fail(
      `a message queued for ${waitedMs / 1000} s came with its full 60 s expiry, not the time left [MQTT-3.3.2-6]`,
    );
  return pass(
    `a queued message with expiry 1 s was dropped after ${waitedMs / 1000} s; one with 60 s came with ${left} s left`,
    { numbers: { secondsLeft: left } },
  );
}

/** Long enough for an expiry of 1 s to pass on a broker that counts in whole seconds. */
const EXPIRY_WAIT_MS = 2100;

const check = checksOf('delivery');

export const routingChecks: Check[] = [
  check('wildcardPlus', "'+' wildcard", wildcardPlus),
  check('wildcardHash', "'#' wildcard", wildcardHash),
  check('dollarTopics', "$-topics not matched by '#' or '+'", dollarTopics),
  check('sharedSubscriptions', 'Shared subscriptions split load', sharedSubscriptions),
  check('subscriptionIdentifiers', 'Subscription identifiers returned', subscriptionIdentifiers, {
    v5: true,
  }),
  check('topicAliasToBroker', 'Topic alias, client to broker', topicAliasToBroker, { v5: true }),
  check('topicAliasFromBroker', 'Topic alias, broker to client', topicAliasFromBroker, { v5: true }),
  check('messageExpiry', 'Message expiry honoured', messageExpiry, {
    v5: true,
    extraMs: () => EXPIRY_WAIT_MS,
  }),
];
