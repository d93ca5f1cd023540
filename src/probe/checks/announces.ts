/**
 * What it announces: every MQTT 5 CONNACK property, under the names `mq decode --json` uses, with
 * the spec's default where it is absent, and a check that the broker then behaves as announced:
 * a QoS above its Maximum QoS, a retained message without Retain Available, a packet one byte over
 * its Maximum Packet Size, a topic alias over its Topic Alias Maximum... each must be refused, and
 * what is within must be taken.
 */
import { PROPERTIES, type Properties, type QoS } from '../../protocol/index.js';
import type { Check } from '../check.js';
import {
  disconnectCode,
  type Fate,
  payloadForSize,
  publishFate,
  publishPacket,
  subscribeFate,
} from '../flows.js';
import { type CheckScope, fail, info, pass, skipped } from '../scope.js';
import { code, quoted } from '../text.js';
import type { Outcome } from '../types.js';

/** The announced value of a CONNACK property, or its default (5.0 section 3.2.2.3). */
function announced(
  scope: CheckScope,
  key: keyof Properties,
  fallback: number,
): { value: number; was: boolean } {
  const v = scope.ctx.connack.properties?.[key];
  return typeof v === 'number' ? { value: v, was: true } : { value: fallback, was: false };
}

/** `announced 1` / `not announced (default 2)`. */
function said(a: { value: number; was: boolean }, what = String(a.value)): string {
  return a.was ? `announced ${what}` : `not announced (default ${what})`;
}

/** How a refusal looked: `DISCONNECT 0x9b QoS not supported`, or a plain close. */
function refusal(fate: Fate): string {
  if (fate.ok) return fate.ack === 'PINGRESP' ? 'taken' : `${fate.ack} ${code(fate.reasonCode, fate.ack)}`;
  const rc = disconnectCode(fate.close);
  return rc === undefined
    ? 'the connection was closed (no DISCONNECT)'
    : `DISCONNECT ${code(rc, 'DISCONNECT')}`;
}

/** A refusal is right when the connection closed (DISCONNECT `expected` or none) or the ack says >= 0x80. */
function refused(fate: Fate, expected: number): { ok: boolean; exact: boolean } {
  if (fate.ok) return { ok: fate.reasonCode >= 0x80, exact: fate.reasonCode === expected };
  const rc = disconnectCode(fate.close);
  return { ok: rc === undefined || rc === expected, exact: rc === expected };
}

/** A line of the section, titled with the property's spec name. */
const check = (id: keyof Properties, run: (scope: CheckScope) => Promise<Outcome>): Check => ({
  section: 'announces',
  id,
  title: PROPERTIES.find((p) => p.key === id)?.name ?? id,
  v5: true,
  run,
});

async function maximumQoS(scope: CheckScope): Promise<Outcome> {
  const a = announced(scope, 'maximumQoS', 2);
  const extra = { value: a.value, announced: a.was };
  const topic = scope.topic();
  const { conn } = await scope.rawSession();
  const sub = await subscribeFate(scope, conn, [{ topicFilter: topic, qos: 2 }]);
  if (!sub.ok) return fail(`${said(a)}; a QoS 2 SUBSCRIBE: ${refusal(sub)}`, extra);
  const granted = sub.suback.reasonCodes[0] ?? 0x80;
  if (granted >= 0x80)
    return fail(`${said(a)}; a QoS 2 SUBSCRIBE was refused: ${code(granted, 'SUBACK')}`, extra);
  if (granted > a.value) return fail(`${said(a)}, yet a QoS 2 SUBSCRIBE was granted QoS ${granted}`, extra);
  if (a.value === 2) {
    const fate = await publishFate(scope, conn, publishPacket(conn, { topic, qos: 2, payload: 'q2' }));
    if (!fate.ok || fate.reasonCode >= 0x80)
      return fail(`${said(a)}, yet a QoS 2 PUBLISH got ${refusal(fate)}`, extra);
    return pass(`${said(a)}: QoS 2 subscription granted, QoS 2 PUBLISH completed`, extra);
  }
  const above = (a.value + 1) as QoS;
  const fate = await publishFate(scope, conn, publishPacket(conn, { topic, qos: above, payload: 'over' }));
  const r = refused(fate, 0x9b);
  if (!r.ok) return fail(`${said(a)}, yet a QoS ${above} PUBLISH was taken (${refusal(fate)})`, extra);
  return pass(
    `${said(a)}: QoS 2 subscription granted QoS ${granted}; a QoS ${above} PUBLISH got ${refusal(fate)}`,
    extra,
  );
}

async function retainAvailable(scope: CheckScope): Promise<Outcome> {
  const a = announced(scope, 'retainAvailable', 1);
  const extra = { value: a.value === 1, announced: a.was };
  const topic = scope.topic();
  const { conn } = await scope.rawSession();
  if (a.value === 0) {
    const fate = await publishFate(scope, conn, publishPacket(conn, { topic, retain: true, payload: 'r' }));
    if (fate.ok) {
      scope.clearsRetained(topic);
      return fail(`${said(a)}, yet a retained PUBLISH was taken`, extra);
    }
    return pass(`${said(a)}: a retained PUBLISH got ${refusal(fate)}`, extra);
  }
  scope.clearsRetained(topic);
  const qos = Math.min(1, scope.maxQoS()) as QoS;
  const fate = await publishFate(
    scope,
    conn,
    publishPacket(conn, { topic, qos, retain: true, payload: 'kept' }),
  );
  if (!fate.ok || fate.reasonCode >= 0x80)
    return fail(`${said(a)}, yet a retained PUBLISH got ${refusal(fate)}`, extra);
  const { conn: reader } = await scope.rawSession();
  const sub = await subscribeFate(scope, reader, [{ topicFilter: topic, qos }]);
  if (!sub.ok) return fail(`a SUBSCRIBE got ${refusal(sub)}`, extra);
  const msg = await scope.wait(
    reader.next('PUBLISH', 'the retained message', (p) => p.topic === topic),
    'retained',
  );
  if (!msg.retain) return fail(`${said(a)}; the stored message came without the RETAIN flag`, extra);
  return pass(`${said(a)}: a retained message was stored and sent to a new subscriber`, extra);
}

/** Wildcard / Subscription Identifier / Shared Subscription Available: refused with `rc` when 0. */
function availability(
  key: 'wildcardSubscriptionAvailable' | 'subscriptionIdentifierAvailable' | 'sharedSubscriptionAvailable',
  rc: number,
  subscribe: (scope: CheckScope) => { filter: string; properties?: Properties },
) {
  return async (scope: CheckScope): Promise<Outcome> => {
    const a = announced(scope, key, 1);
    const extra = { value: a.value === 1, announced: a.was };
    const { conn } = await scope.rawSession();
    const { filter, properties } = subscribe(scope);
    const fate = await subscribeFate(scope, conn, [{ topicFilter: filter, qos: 0 }], properties);
    const what = `SUBSCRIBE ${scope.shown(filter)}${properties?.subscriptionIdentifiers ? ' with a Subscription Identifier' : ''}`;
    const got = fate.ok ? code(fate.suback.reasonCodes[0] ?? 0x80, 'SUBACK') : refusal(fate);
    const accepted = fate.ok && (fate.suback.reasonCodes[0] ?? 0x80) < 0x80;
    if (a.value === 1) {
      return accepted
        ? pass(`${said(a, 'yes')}: ${what} granted`, extra)
        : fail(`${said(a, 'yes')}, yet ${what} got ${got}`, extra);
    }
    const rightCode = fate.ok ? fate.suback.reasonCodes[0] === rc : disconnectCode(fate.close) === rc;
    if (accepted) return fail(`${said(a, 'no')}, yet ${what} was granted`, extra);
    return rightCode
      ? pass(`${said(a, 'no')}: ${what} got ${got}`, extra)
      : pass(`${said(a, 'no')}: ${what} got ${got} (the spec's code is ${code(rc, 'SUBACK')})`, extra);
  };
}

async function receiveMaximum(scope: CheckScope): Promise<Outcome> {
  const a = announced(scope, 'receiveMaximum', 65_535);
  const extra = { value: a.value, announced: a.was };
  if (scope.maxQoS() < 2)
    return skipped(`${said(a)}; not checked: it needs QoS 2 (Maximum QoS ${scope.maxQoS()})`, extra);
  // Unreleased QoS 2 messages (PUBREC received, no PUBREL sent) count against it until PUBCOMP.
  const cap = Math.min(a.value, RECEIVE_MAXIMUM_CHECKED);
  const { conn } = await scope.rawSession();
  const topic = scope.topic();
  const ids: number[] = [];
  for (let i = 0; i < cap; i++) {
    const p = publishPacket(conn, { topic, qos: 2, payload: String(i) });
    ids.push(p.packetId!);
    conn.send(p);
  }
  let recs = 0;
  try {
    for (const id of ids) {
      const rec = await scope.wait(
        conn.next('PUBREC', `PUBREC ${recs + 1} of ${cap}`, (r) => r.packetId === id),
        'PUBREC',
      );
      if ((rec.reasonCode ?? 0) >= 0x80)
        return fail(
          `${said(a)}, yet QoS 2 message ${recs + 1} got PUBREC ${code(rec.reasonCode ?? 0, 'PUBREC')}`,
          extra,
        );
      recs++;
    }
  } catch (err) {
    if (conn.isClosed === undefined) throw err;
    return fail(
      `${said(a)}, yet ${scope.describeClose(conn.isClosed)} after ${recs} unreleased QoS 2 messages`,
      extra,
    );
  }
  if (a.value > RECEIVE_MAXIMUM_CHECKED) {
    return pass(
      `${said(a)}: took ${cap} unreleased QoS 2 messages (checked up to ${RECEIVE_MAXIMUM_CHECKED})`,
      extra,
    );
  }
  const fate = await publishFate(scope, conn, publishPacket(conn, { topic, qos: 2, payload: 'one more' }));
  const r = refused(fate, 0x93);
  if (!r.ok)
    return fail(`${said(a)}: took ${cap} unreleased QoS 2 messages, and one more (not enforced)`, extra);
  const spec = r.exact ? '' : ` (the spec's answer is DISCONNECT ${code(0x93, 'DISCONNECT')})`;
  return pass(
    `${said(a)}: took ${cap} unreleased QoS 2 messages; one more got ${refusal(fate)}${spec}`,
    extra,
  );
}

/** Most unreleased QoS 2 messages sent when the broker announces no Receive Maximum. */
const RECEIVE_MAXIMUM_CHECKED = 1000;

async function maximumPacketSize(scope: CheckScope): Promise<Outcome> {
  const a = announced(scope, 'maximumPacketSize', 268_435_460);
  const extra = { value: a.value, announced: a.was, unit: 'bytes' };
  if (!a.was)
    return info("not announced (no limit below the protocol's 268,435,460 bytes); see limits", extra);
  const topic = scope.topic();
  const size = Math.min(a.value, scope.ctx.maxProbe);
  const sized = async (n: number): Promise<Fate> => {
    const { conn } = await scope.rawSession();
    const payload = Buffer.alloc(Math.max(0, payloadForSize(topic, n, 5)), 0x61);
    return publishFate(scope, conn, publishPacket(conn, { topic, payload }));
  };
  const atLimit = await sized(size);
  if (!atLimit.ok) return fail(`${said(a)}, yet a ${size}-byte PUBLISH got ${refusal(atLimit)}`, extra);
  if (size < a.value)
    return pass(
      `${said(a)}: a ${size}-byte PUBLISH taken (--max-probe ${scope.ctx.maxProbe}: no bigger one tried)`,
      extra,
    );
  const over = await sized(size + 1);
  const r = refused(over, 0x95);
  if (!r.ok) return fail(`${said(a)}: a ${size}-byte PUBLISH taken, and a ${size + 1}-byte one too`, extra);
  return pass(`${said(a)}: a ${size}-byte PUBLISH taken, a ${size + 1}-byte one got ${refusal(over)}`, extra);
}

async function topicAliasMaximum(scope: CheckScope): Promise<Outcome> {
  const a = announced(scope, 'topicAliasMaximum', 0);
  const extra = { value: a.value, announced: a.was };
  const topic = scope.topic();
  const { conn } = await scope.rawSession();
  if (a.value > 0) {
    const { conn: reader } = await scope.rawSession();
    const sub = await subscribeFate(scope, reader, [{ topicFilter: topic, qos: 0 }]);
    if (!sub.ok) return fail(`a SUBSCRIBE got ${refusal(sub)}`, extra);
    const alias = a.value;
    const set = await publishFate(
      scope,
      conn,
      publishPacket(conn, { topic, payload: 'set', properties: { topicAlias: alias } }),
    );
    if (!set.ok) return fail(`${said(a)}, yet a PUBLISH setting alias ${alias} got ${refusal(set)}`, extra);
    const used = await publishFate(
      scope,
      conn,
      publishPacket(conn, { topic: '', payload: 'used', properties: { topicAlias: alias } }),
    );
    if (!used.ok) return fail(`${said(a)}, yet a PUBLISH using alias ${alias} got ${refusal(used)}`, extra);
    const second = await scope.wait(
      reader.next('PUBLISH', 'the message sent with the alias alone', (p) => p.payload.toString() === 'used'),
      'PUBLISH',
    );
    if (second.topic !== topic)
      return fail(`alias ${alias} was delivered as topic ${quoted(second.topic)}`, extra);
  }
  if (a.value >= 65_535) return pass(`${said(a)}: alias ${a.value} set and used`, extra);
  const over = a.value + 1;
  const fate = await publishFate(
    scope,
    conn,
    publishPacket(conn, { topic, payload: 'over', properties: { topicAlias: over } }),
  );
  const r = refused(fate, 0x94);
  const within = a.value > 0 ? `alias ${a.value} set and used; ` : '';
  if (!r.ok) return fail(`${said(a)}: ${within}alias ${over} was taken too`, extra);
  return pass(`${said(a)}: ${within}alias ${over} got ${refusal(fate)}`, extra);
}

async function serverKeepAlive(scope: CheckScope): Promise<Outcome> {
  const asked = scope.ctx.client.keepalive;
  const v = scope.ctx.connack.properties?.serverKeepAlive;
  if (v === undefined)
    return info(`not announced: the client's keepalive (${asked} s) stands`, {
      value: asked,
      announced: false,
      unit: 's',
    });
  return info(`announced ${v} s, in place of the ${asked} s the probe asked for`, {
    value: v,
    announced: true,
    unit: 's',
  });
}

async function sessionExpiryInterval(scope: CheckScope): Promise<Outcome> {
  const v = scope.ctx.connack.properties?.sessionExpiryInterval;
  if (v === undefined) return info("not announced: the client's session expiry stands", { announced: false });
  return info(`announced ${v} s, in place of what the client asked for`, {
    value: v,
    announced: true,
    unit: 's',
  });
}

async function assignedClientIdentifier(scope: CheckScope): Promise<Outcome> {
  const conn = await scope.raw(5, { autoAck: true });
  const connack = await scope.wait(conn.handshake(scope.connectPacket(5, { clientId: '' })), 'CONNACK');
  if (connack.reasonCode !== 0) {
    return {
      status: 'unsupported',
      detail: `an empty client id was refused: ${code(connack.reasonCode, 'CONNACK')}`,
      announced: false,
    };
  }
  await scope.wait(conn.end(), 'the connection to close');
  const id = connack.properties?.assignedClientIdentifier;
  if (id === undefined)
    return fail(
      'an empty client id was accepted, but no Assigned Client Identifier came back [MQTT-3.2.2-16]',
      { announced: false },
    );
  return pass(`assigned ${quoted(id)} to a client that sent an empty id`, { value: true, announced: true });
}

/** Properties shown as they are (only when present, but Response Information: the probe asks for it). */
function shown(key: keyof Properties) {
  return async (scope: CheckScope): Promise<Outcome> => {
    const v = scope.ctx.connack.properties?.[key];
    if (v === undefined) {
      return info(
        key === 'responseInformation'
          ? 'not sent (the probe asked for it: Request Response Information 1)'
          : 'not sent',
        { announced: false },
      );
    }
    const text =
      typeof v === 'string'
        ? quoted(v)
        : Buffer.isBuffer(v)
          ? `${v.length} bytes`
          : quoted(JSON.stringify(v));
    return info(`announced ${text}`, { announced: true, ...(typeof v === 'string' ? { value: v } : {}) });
  };
}

export const announceChecks: Check[] = [
  check('maximumQoS', maximumQoS),
  check('retainAvailable', retainAvailable),
  check(
    'wildcardSubscriptionAvailable',
    availability('wildcardSubscriptionAvailable', 0xa2, (s) => ({ filter: s.topic('+', '#') })),
  ),
  check(
    'subscriptionIdentifierAvailable',
    availability('subscriptionIdentifierAvailable', 0xa1, (s) => ({
      filter: s.topic(),
      properties: { subscriptionIdentifiers: [1] },
    })),
  ),
  check(
    'sharedSubscriptionAvailable',
    availability('sharedSubscriptionAvailable', 0x9e, (s) => ({
      filter: `$share/probe/${s.topic()}`,
    })),
  ),
  check('receiveMaximum', receiveMaximum),
  check('maximumPacketSize', maximumPacketSize),
  check('topicAliasMaximum', topicAliasMaximum),
  check('serverKeepAlive', serverKeepAlive),
  check('sessionExpiryInterval', sessionExpiryInterval),
  check('assignedClientIdentifier', assignedClientIdentifier),
  check('responseInformation', shown('responseInformation')),
];

/** CONNACK properties listed only when the broker sent them. */
export const announceIfPresent: readonly (keyof Properties)[] = [
  'reasonString',
  'userProperties',
  'serverReference',
  'authenticationMethod',
  'authenticationData',
];

/** Lines for the CONNACK properties of announceIfPresent that the broker sent. */
export function presentChecks(props: Properties | undefined): Check[] {
  return announceIfPresent.filter((key) => props?.[key] !== undefined).map((key) => check(key, shown(key)));
}
