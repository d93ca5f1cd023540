/**
 * How connections and sessions end: a connection's will (at once, or after its Will Delay
 * Interval), the session kept for its Session Expiry Interval or ended with its subscriptions and
 * messages; sessions and wills restored from --persist, which wait offline the same way; and the
 * wills the broker publishes as it stops.
 *
 * --persist keeps every will the broker holds (persist.ts): a connected client's will from its
 * CONNECT on, a will waiting out its Will Delay Interval with the time it is due, and forgets it
 * once it is published, cancelled or discarded.
 */
import type { ProtocolVersion, Will } from '../protocol/index.js';
import { type Connection, ConnState } from './connection.js';
import type { BrokerCore } from './core.js';
import { Message } from './message.js';
import { route } from './routing.js';
import { NEVER_EXPIRES, type Session } from './session.js';

const MAX_TIMER_MS = 2_147_483_647;

/** The Will Delay Interval of `will`, in seconds (a v5 property). */
function willDelay(version: ProtocolVersion, will: Will): number {
  return version === 5 ? (will.properties?.willDelayInterval ?? 0) : 0;
}

/** The connection of a session ended (close, error, takeover). */
export function detach(core: BrokerCore, conn: Connection): void {
  const s = conn.session;
  if (s === undefined || s.conn !== conn) return;
  s.conn = undefined;
  core.counters.clientsConnected--;
  if (!core.closing) core.log(`[${conn.clientId}] ${conn.graceful ? 'disconnected' : 'connection lost'}`);
  // (Broker.close() takes the wills of the connections it closes first: shutdownWills.)
  const will = conn.will;
  conn.will = undefined;
  if (will === undefined) core.persist?.willGone(s);
  else {
    const delay = willDelay(conn.version, will);
    // The session outlives the connection (or a new connection takes it over): the will waits.
    if (delay > 0 && (conn.takenOver || s.expiryInterval > 0))
      holdWill(core, s, will, Date.now() + delay * 1000);
    else releaseWill(core, s, will);
  }
  // Stopping, the broker keeps every session as it is (--persist writes them last).
  if (conn.takenOver || core.closing) return;
  if (s.expiryInterval === 0) {
    endSession(core, s);
    return;
  }
  core.persist?.session(s);
  if (s.expiryInterval !== NEVER_EXPIRES) scheduleExpiry(core, s);
}

/** Starts the Session Expiry Interval of an offline session. */
export function scheduleExpiry(core: BrokerCore, s: Session): void {
  const ms = s.expiryInterval * 1000;
  if (ms > MAX_TIMER_MS) return;
  s.expiryTimer = setTimeout(expireSession, ms, core, s);
  s.expiryTimer.unref();
}

/**
 * Routes a will. Called from timers and socket events (and from handlers ending another
 * connection's session), so it never throws: a failure is logged and the session's bookkeeping
 * around it goes on.
 */
function publishWill(core: BrokerCore, will: Will, clientId: string): void {
  try {
    routeWill(core, will);
  } catch (err) {
    core.internalError(undefined, `[${clientId}]`, 'publishing the will', err);
  }
}

/** Publishes the will of `s` (and --persist forgets it). */
function releaseWill(core: BrokerCore, s: Session, will: Will): void {
  publishWill(core, will, s.clientId);
  core.persist?.willGone(s);
}

function routeWill(core: BrokerCore, will: Will): void {
  let props = will.properties;
  if (props?.willDelayInterval !== undefined) {
    props = { ...props };
    delete props.willDelayInterval;
    if (Object.keys(props).length === 0) props = undefined;
  }
  const msg = new Message(will.topic, will.payload, will.qos, will.retain, props, undefined, core);
  msg.owned = true;
  route(core, msg);
}

/** `will` waits until `dueAt` (wall clock, ms) or the end of the session, whichever comes first. */
function holdWill(core: BrokerCore, s: Session, will: Will, dueAt: number): void {
  s.pendingWill = { will, dueAt };
  const ms = Math.max(0, dueAt - Date.now());
  if (ms <= MAX_TIMER_MS) {
    s.willTimer = setTimeout(firePendingWill, ms, core, s);
    s.willTimer.unref();
  }
  core.persist?.will(s, will, dueAt);
}

/** The session is over: its subscriptions and messages go, a pending will is published. */
export function endSession(core: BrokerCore, s: Session): void {
  clearTimeout(s.expiryTimer);
  clearTimeout(s.willTimer);
  s.expiryTimer = undefined;
  s.willTimer = undefined;
  const pending = s.pendingWill;
  s.pendingWill = undefined;
  if (s.subCount > 0) {
    for (const sub of s.subs.values()) core.trie.remove(sub);
    s.subs.clear();
  }
  if (s.inflightSize > 0) s.inflight.clear();
  if (s.queueLength > 0) s.queue.length = 0;
  if (core.sessions.get(s.clientId) === s) core.sessions.delete(s.clientId);
  core.persist?.sessionDeleted(s);
  if (pending !== undefined) releaseWill(core, s, pending.will);
  else core.persist?.willGone(s);
}

/** A session restored from --persist: offline, subscribed, its expiry running. */
export function restoreSession(core: BrokerCore, s: Session): void {
  core.sessions.set(s.clientId, s);
  if (s.subCount > 0) for (const sub of s.subs.values()) core.trie.add(sub);
  if (s.expiryInterval !== NEVER_EXPIRES) scheduleExpiry(core, s);
}

/**
 * A will --persist kept for `clientId`, after the sessions are restored: `dueAt` is when it is due,
 * or undefined when its client was connected as the broker stopped (a crash ended the connection:
 * its Will Delay Interval counts from now, the earliest the broker can know). Published now when
 * it is due or its session did not survive (a session ending with its connection, [MQTT-3.1.2-8]);
 * else it waits, like any delayed will, until then or until its session ends, and a client that
 * connects before cancels it [MQTT-3.1.3-9]. true when published.
 */
export function restoreWill(
  core: BrokerCore,
  clientId: string,
  will: Will,
  dueAt: number | undefined,
  now: number,
): boolean {
  const s = core.sessions.get(clientId);
  const at = dueAt ?? now + (will.properties?.willDelayInterval ?? 0) * 1000;
  if (s === undefined || at <= now) {
    publishWill(core, will, clientId);
    return true;
  }
  holdWill(core, s, will, at);
  return false;
}

/**
 * Broker.close(), before any connection is closed: the wills of connected clients and those
 * waiting out a Will Delay Interval are published, as Mosquitto does as it exits, so that the
 * clients still connected receive them (routed now, they go out ahead of each connection's
 * DISCONNECT 0x8B). Under --persist a delayed will whose session outlives the broker (a Session
 * Expiry Interval) is kept instead, with its deadline, for after the restart: its client may
 * still come back in time [MQTT-3.1.3-9].
 */
export function shutdownWills(core: BrokerCore): { published: number; kept: number } {
  let published = 0;
  let kept = 0;
  const keeps = (s: Session) => core.persist !== undefined && s.expiryInterval > 0;
  const now = Date.now();
  for (const s of core.sessions.values()) {
    clearTimeout(s.willTimer);
    s.willTimer = undefined;
    const pending = s.pendingWill;
    if (pending === undefined) continue;
    if (keeps(s)) kept++;
    else {
      s.pendingWill = undefined;
      releaseWill(core, s, pending.will);
      published++;
    }
  }
  for (const conn of core.connections) {
    const s = conn.session;
    const will = conn.will;
    if (conn.state !== ConnState.Connected || will === undefined || s === undefined || s.conn !== conn)
      continue;
    conn.will = undefined;
    const delay = willDelay(conn.version, will);
    if (delay > 0 && keeps(s)) {
      s.pendingWill = { will, dueAt: now + delay * 1000 };
      core.persist?.will(s, will, s.pendingWill.dueAt);
      kept++;
    } else {
      releaseWill(core, s, will);
      published++;
    }
  }
  return { published, kept };
}

function firePendingWill(core: BrokerCore, s: Session): void {
  s.willTimer = undefined;
  const pending = s.pendingWill;
  s.pendingWill = undefined;
  if (pending !== undefined) releaseWill(core, s, pending.will);
}

/** The Session Expiry Interval ran out (a timer: see BrokerCore.internalError). */
function expireSession(core: BrokerCore, s: Session): void {
  s.expiryTimer = undefined;
  try {
    if (s.conn === undefined) endSession(core, s);
  } catch (err) {
    core.internalError(undefined, `[${s.clientId}]`, 'ending the expired session', err);
  }
}
