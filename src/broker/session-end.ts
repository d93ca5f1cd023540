/**
 * How connections and sessions end: a connection's will (at once, or after its Will Delay
 * Interval), the session kept for its Session Expiry Interval or ended with its subscriptions and
 * messages; and sessions restored from --persist, which wait offline the same way.
 */
import type { Will } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { BrokerCore } from './core.js';
import { Message } from './message.js';
import { route } from './routing.js';
import { NEVER_EXPIRES, type Session } from './session.js';

const MAX_TIMER_MS = 2_147_483_647;

/** The connection of a session ended (close, error, takeover). */
export function detach(core: BrokerCore, conn: Connection): void {
  const s = conn.session;
  if (s === undefined || s.conn !== conn) return;
  s.conn = undefined;
  core.counters.clientsConnected--;
  if (!core.closing) core.log(`[${conn.clientId}] ${conn.graceful ? 'disconnected' : 'connection lost'}`);
  const will = conn.will;
  conn.will = undefined;
  if (will !== undefined && !core.closing) {
    const delay = conn.version === 5 ? (will.properties?.willDelayInterval ?? 0) : 0;
    if (delay > 0 && (conn.takenOver || s.expiryInterval > 0)) {
      s.pendingWill = will;
      if (delay * 1000 <= MAX_TIMER_MS) {
        s.willTimer = setTimeout(firePendingWill, delay * 1000, core, s);
        s.willTimer.unref();
      }
    } else publishWill(core, will, conn.clientId);
  }
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
export function publishWill(core: BrokerCore, will: Will, clientId: string): void {
  try {
    routeWill(core, will);
  } catch (err) {
    core.internalError(undefined, `[${clientId}]`, 'publishing the will', err);
  }
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

/** The session is over: its subscriptions and messages go, a pending will is published. */
export function endSession(core: BrokerCore, s: Session): void {
  clearTimeout(s.expiryTimer);
  clearTimeout(s.willTimer);
  s.expiryTimer = undefined;
  s.willTimer = undefined;
  const will = s.pendingWill;
  s.pendingWill = undefined;
  if (s.subCount > 0) {
    for (const sub of s.subs.values()) core.trie.remove(sub);
    s.subs.clear();
  }
  if (s.inflightSize > 0) s.inflight.clear();
  if (s.queueLength > 0) s.queue.length = 0;
  if (core.sessions.get(s.clientId) === s) core.sessions.delete(s.clientId);
  core.persist?.sessionDeleted(s);
  if (will !== undefined) publishWill(core, will, s.clientId);
}

/** A session restored from --persist: offline, subscribed, its expiry running. */
export function restoreSession(core: BrokerCore, s: Session): void {
  core.sessions.set(s.clientId, s);
  if (s.subCount > 0) for (const sub of s.subs.values()) core.trie.add(sub);
  if (s.expiryInterval !== NEVER_EXPIRES) scheduleExpiry(core, s);
}

function firePendingWill(core: BrokerCore, s: Session): void {
  s.willTimer = undefined;
  const will = s.pendingWill;
  s.pendingWill = undefined;
  if (will !== undefined) publishWill(core, will, s.clientId);
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
