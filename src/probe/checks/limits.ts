/**
 * Limits, measured: the largest packet, the longest topic and the longest client id the broker
 * takes (binary search up to --max-probe), how many QoS 1 messages it keeps in flight to a client
 * and whether it holds to a client's Receive Maximum, and when it closes a silent connection.
 */
import { type Check, checksOf } from '../check.js';
import { payloadForSize, publishFate, publishPacket, subscribeFate } from '../flows.js';
import type { RawConnection } from '../raw.js';
import { type CheckScope, fail, pass, skipped } from '../scope.js';
import { code, secs } from '../text.js';
import type { Outcome } from '../types.js';

/** The longest UTF-8 string MQTT can carry (topic names, client ids). */
const MAX_STRING = 65_535;
/** Messages published to count the broker's in-flight window. */
const INFLIGHT_CHECKED = 1000;
/** Receive Maximum the probe announces to see it honoured. */
const SMALL_RECEIVE_MAXIMUM = 3;
const KEEPALIVE_S = 1;

/**
 * The largest n in [lo, hi] for which `ok` holds (monotone: if n is taken, smaller ones are), hi
 * tried first. undefined when even lo is refused.
 */
export async function largest(
  lo: number,
  hi: number,
  ok: (n: number) => Promise<boolean>,
): Promise<{ value: number; steps: number } | undefined> {
  let steps = 1;
  if (await ok(hi)) return { value: hi, steps };
  steps++;
  if (!(await ok(lo))) return undefined;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    steps++;
    if (await ok(mid)) lo = mid;
    else hi = mid;
  }
  return { value: lo, steps };
}

/** A connection that is reopened whenever the broker closed the last one. */
function reusable(scope: CheckScope): () => Promise<RawConnection> {
  let current: RawConnection | undefined;
  return async () => {
    if (current === undefined || current.isClosed !== undefined) current = (await scope.rawSession()).conn;
    return current;
  };
}

/** `N bytes` with the reason the search stopped where it did. */
function bound(value: number, hi: number, scope: CheckScope, protocolMax: number): string {
  if (value < hi) return '';
  return hi >= protocolMax
    ? " (the protocol's maximum)"
    : ` (--max-probe ${scope.ctx.maxProbe}: the limit may be higher)`;
}

async function maximumPacketSize(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const connection = reusable(scope);
  const version = scope.ctx.version;
  const lo = 1 + 1 + 2 + topic.length + (version === 5 ? 1 : 0) + 16;
  const hi = Math.max(lo, scope.ctx.maxProbe);
  const found = await largest(lo, hi, async (size) => {
    const conn = await connection();
    const payload = Buffer.alloc(payloadForSize(topic, size, version), 0x61);
    return (await publishFate(scope, conn, publishPacket(conn, { topic, payload }))).ok;
  });
  if (found === undefined) return fail(`even a ${lo}-byte PUBLISH was refused`);
  const bounded = found.value >= hi;
  const announced = scope.ctx.connack.properties?.maximumPacketSize;
  const note = announced !== undefined ? ` (announced ${announced})` : '';
  return pass(`${found.value} bytes${bound(found.value, hi, scope, Number.POSITIVE_INFINITY)}${note}`, {
    value: found.value,
    unit: 'bytes',
    bounded,
    numbers: { steps: found.steps },
  });
}

async function maximumTopicLength(scope: CheckScope): Promise<Outcome> {
  const base = scope.topic();
  const connection = reusable(scope);
  const lo = base.length + 2;
  const hi = Math.max(lo, Math.min(MAX_STRING, scope.ctx.maxProbe));
  const found = await largest(lo, hi, async (length) => {
    const conn = await connection();
    const topic = `${base}/${'t'.repeat(length - base.length - 1)}`;
    return (await publishFate(scope, conn, publishPacket(conn, { topic, payload: 'x' }))).ok;
  });
  if (found === undefined) return fail(`even a ${lo}-character topic was refused`);
  return pass(`${found.value} characters${bound(found.value, hi, scope, MAX_STRING)}`, {
    value: found.value,
    unit: 'characters',
    bounded: found.value >= hi && hi < MAX_STRING,
    numbers: { steps: found.steps },
  });
}

async function maximumClientIdLength(scope: CheckScope): Promise<Outcome> {
  const base = scope.clientId();
  // Every broker must take 1 to 23 characters [MQTT-3.1.3-5].
  const lo = 23;
  const hi = Math.max(lo, Math.min(MAX_STRING, scope.ctx.maxProbe));
  const refusals = new Set<string>();
  const found = await largest(lo, hi, async (length) => {
    const conn = await scope.raw();
    const clientId = (base + 'c'.repeat(Math.max(0, length - base.length))).slice(0, length);
    try {
      const connack = await scope.wait(
        conn.handshake(scope.connectPacket(scope.ctx.version, { clientId })),
        'CONNACK',
      );
      if (connack.reasonCode !== 0) {
        refusals.add(code(connack.reasonCode, 'CONNACK', scope.ctx.version === 5 ? 5 : 4));
        return false;
      }
      await scope.wait(conn.end(), 'the connection to close');
      return true;
    } catch (err) {
      if (conn.isClosed === undefined) throw err;
      refusals.add(scope.describeClose(conn.isClosed));
      return false;
    } finally {
      conn.destroy();
    }
  });
  if (found === undefined)
    return fail(`even a ${lo}-character client id was refused (${[...refusals].join('; ')})`);
  const why = found.value < hi && refusals.size > 0 ? `; longer ones: ${[...refusals][0]}` : '';
  return pass(`${found.value} characters${bound(found.value, hi, scope, MAX_STRING)}${why}`, {
    value: found.value,
    unit: 'characters',
    bounded: found.value >= hi && hi < MAX_STRING,
    numbers: { steps: found.steps },
  });
}

/** Publishes `n` QoS 1 messages to `topic` and waits for every PUBACK. */
async function publishMany(scope: CheckScope, topic: string, n: number): Promise<void> {
  const publisher = await scope.client();
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) acks.push(publisher.publish(topic, String(i), { qos: 1 }));
  await scope.wait(Promise.all(acks), `the acknowledgements of ${n} messages`);
}

/** PUBLISH packets received so far, once everything the broker sent before a PINGRESP is in. */
async function countAfterPing(scope: CheckScope, conn: RawConnection): Promise<number> {
  await scope.wait(conn.ping(), 'PINGRESP');
  return conn.inbox.all.filter((p) => p.type === 'PUBLISH').length;
}

async function inflight(scope: CheckScope): Promise<Outcome> {
  if (scope.maxQoS() < 1) return skipped("needs QoS 1 (the broker's Maximum QoS is 0)");
  const topic = scope.topic();
  // A client that never acknowledges: the broker sends as many as its window allows, then waits.
  const { conn } = await scope.rawSession({}, { autoAck: false });
  const sub = await subscribeFate(scope, conn, [{ topicFilter: topic, qos: 1 }]);
  if (!sub.ok || (sub.suback.reasonCodes[0] ?? 0x80) >= 0x80) return fail('SUBSCRIBE was refused');
  await publishMany(scope, topic, INFLIGHT_CHECKED);
  const window = await countAfterPing(scope, conn);
  conn.destroy();
  const bounded = window >= INFLIGHT_CHECKED;
  const extra = { value: window, unit: 'messages', bounded };
  const sends = `sends ${bounded ? `all ${INFLIGHT_CHECKED} (at least)` : `up to ${window}`} un-acknowledged QoS 1 messages`;
  if (!scope.v5) return pass(`${sends} to a client`, extra);
  const r = SMALL_RECEIVE_MAXIMUM;
  const small = scope.topic('small');
  const props = { ...scope.ctx.client.connectProperties, receiveMaximum: r };
  const { conn: limited } = await scope.rawSession({ properties: props }, { autoAck: false });
  await subscribeFate(scope, limited, [{ topicFilter: small, qos: 1 }]);
  await publishMany(scope, small, r + 3);
  const first = await countAfterPing(scope, limited);
  const expected = Math.min(r, window);
  if (first !== expected) {
    return fail(`${sends}, but ${first} to a client announcing Receive Maximum ${r} [MQTT-3.3.4-9]`, extra);
  }
  const head = limited.inbox.all.find((p) => p.type === 'PUBLISH');
  if (head?.type === 'PUBLISH' && head.packetId !== undefined)
    limited.send({ type: 'PUBACK', packetId: head.packetId });
  const next = await countAfterPing(scope, limited);
  if (next !== first + 1) {
    const more = `${first}, then ${next - first} more after one PUBACK`;
    return fail(`${sends}; to a client announcing Receive Maximum ${r}: ${more} [MQTT-3.3.4-9]`, extra);
  }
  return pass(`${sends}; to a client announcing Receive Maximum ${r}: ${r}, and one more per PUBACK`, extra);
}

async function keepalive(scope: CheckScope): Promise<Outcome> {
  const { conn, connack } = await scope.rawSession({ keepalive: KEEPALIVE_S });
  const k = connack.properties?.serverKeepAlive ?? KEEPALIVE_S;
  if (k > 5)
    return skipped(
      `the broker set Server Keep Alive ${k} s for a keepalive of ${KEEPALIVE_S} s: too long to wait out`,
    );
  const sentAt = conn.lastSent;
  const closed = await scope.wait(
    conn.closed,
    `the broker to close a connection silent for more than ${k * 1.5} s`,
  );
  const silentMs = closed.at - sentAt;
  const ratio = silentMs / (k * 1000);
  const how =
    closed.disconnect !== undefined
      ? ` with DISCONNECT ${code(closed.disconnect.reasonCode ?? 0, 'DISCONNECT')}`
      : '';
  const extra = {
    value: k,
    unit: 's',
    numbers: { closedAfterMs: Math.round(silentMs), ratio: Math.round(ratio * 100) / 100 },
  };
  const said = `keepalive ${k} s: closed${how} after ${secs(silentMs)} of silence (${ratio.toFixed(2)}x)`;
  const rc = closed.disconnect?.reasonCode ?? 0x8d;
  if (rc !== 0x8d) return fail(`${said}: not for the keepalive`, extra);
  if (silentMs < k * 1500 - KEEPALIVE_EARLY_MS) return fail(`${said}: before 1.5x`, extra);
  if (silentMs > k * 1500 + KEEPALIVE_SLACK_MS) {
    return fail(`${said}: later than 1.5x [MQTT-3.1.2-22]`, extra);
  }
  return pass(said, extra);
}

/**
 * How late after 1.5 x keepalive a close still counts as on time (brokers check on a timer), and
 * how early (brokers that count whole seconds round the client's last packet down).
 */
const KEEPALIVE_SLACK_MS = 1500;
const KEEPALIVE_EARLY_MS = 1000;

const check = checksOf('limits');

/** Binary searches make many round trips: they get twice --timeout more. */
const searching = (ctx: { timeoutMs: number }) => 2 * ctx.timeoutMs;

export const limitChecks: Check[] = [
  check('maximumPacketSize', 'Largest packet', maximumPacketSize, { extraMs: searching }),
  check('maximumTopicLength', 'Longest topic', maximumTopicLength, { extraMs: searching }),
  check('maximumClientIdLength', 'Longest client id', maximumClientIdLength, { extraMs: searching }),
  check('inflight', 'Most in flight (Receive Maximum)', inflight),
  check('keepalive', 'Keepalive enforced at 1.5x', keepalive, {
    extraMs: () => KEEPALIVE_S * 1500 + KEEPALIVE_SLACK_MS,
  }),
];
