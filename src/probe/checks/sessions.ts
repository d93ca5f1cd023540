/**
 * Sessions and wills: a persistent session keeps queued QoS 1 messages across a reconnect; a
 * session expiry interval is honoured; a will goes out on an abnormal disconnect and not on a
 * normal one; a Will Delay Interval delays it.
 */
import type { QoS, Will } from '../../protocol/index.js';
import { type Check, checksOf } from '../check.js';
import { type CheckScope, fail, pass, skipped } from '../scope.js';
import { secs } from '../text.js';
import type { Outcome } from '../types.js';
import { nextOn, published, subscribe, subscriber } from './delivery.js';

const QUEUED = 3;
/** Session Expiry Interval of the expiry check, and how long it waits after it. */
const EXPIRY_S = 1;
const EXPIRY_WAIT_MS = 2500;
const WILL_DELAY_S = 1;

const ackQoS = (scope: CheckScope) => Math.min(1, scope.maxQoS()) as QoS;

/** v5: a session outliving the connection needs an expiry; 3.1.1: clean session off is enough. */
const persistent = (scope: CheckScope, seconds = 300) => (scope.v5 ? { sessionExpiry: seconds } : {});

async function persistentSession(scope: CheckScope): Promise<Outcome> {
  if (scope.maxQoS() < 1) return skipped("needs QoS 1 (the broker's Maximum QoS is 0)");
  const topic = scope.topic();
  const clientId = scope.clientId();
  scope.endsSession(clientId);
  const first = await scope.client({ clientId, clean: scope.v5, ...persistent(scope) });
  await subscribe(scope, first, topic, 1);
  await scope.wait(first.end(), 'the disconnect');
  const publisher = await scope.client();
  for (let i = 0; i < QUEUED; i++) await published(scope, publisher, topic, String(i), { qos: 1 });
  const again = await scope.client({ clientId, clean: false, ...persistent(scope) });
  // MQTT 3.1 has no Session Present flag: the queued messages tell.
  if (!again.connack.sessionPresent && scope.ctx.version !== 3) {
    return fail('on reconnecting, the session was gone (Session Present 0)');
  }
  const inbox = scope.messages(again);
  for (let i = 0; i < QUEUED; i++) {
    const m = await nextOn(inbox, topic, `queued message ${i + 1} of ${QUEUED}`);
    if (m.payload.toString() !== String(i))
      return fail(`queued message ${m.payload.toString()} came where ${i} was due`);
  }
  const kept = scope.ctx.version === 3 ? 'session kept' : 'session present on reconnecting';
  return pass(`${kept}; ${QUEUED} of ${QUEUED} QoS 1 messages queued meanwhile delivered`, { value: QUEUED });
}

async function sessionExpiry(scope: CheckScope): Promise<Outcome> {
  const clientId = scope.clientId();
  scope.endsSession(clientId);
  const first = await scope.client({ clientId, sessionExpiry: 60 });
  await subscribe(scope, first, scope.topic(), 0);
  await scope.wait(first.end(), 'the disconnect');
  const kept = await scope.client({ clientId, clean: false, sessionExpiry: EXPIRY_S });
  if (!kept.connack.sessionPresent)
    return fail('a session with expiry 60 s was gone at once (Session Present 0)');
  await scope.wait(kept.end(), 'the disconnect');
  const closedAt = performance.now();
  await scope.sleep(EXPIRY_WAIT_MS);
  const later = await scope.client({ clientId, clean: false });
  const after = secs(performance.now() - closedAt);
  if (later.connack.sessionPresent) {
    return fail(`a session with expiry ${EXPIRY_S} s was still there ${after} after the disconnect`, {
      value: EXPIRY_S,
      unit: 's',
    });
  }
  return pass(`a session with expiry ${EXPIRY_S} s was kept at once and gone ${after} after the disconnect`, {
    value: EXPIRY_S,
    unit: 's',
  });
}

/** A will for `topic` (QoS at most 1). */
function will(scope: CheckScope, topic: string, payload: string, delayS?: number): Will {
  const w: Will = { topic, payload: Buffer.from(payload), qos: ackQoS(scope), retain: false };
  if (delayS !== undefined) w.properties = { willDelayInterval: delayS };
  return w;
}

async function willOnDrop(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const watcher = await subscriber(scope, topic, ackQoS(scope));
  const dying = await scope.client({ will: will(scope, topic, 'gone') });
  const droppedAt = performance.now();
  dying.destroy();
  const m = await nextOn(watcher.inbox, topic, 'the will');
  const afterMs = performance.now() - droppedAt;
  if (m.payload.toString() !== 'gone')
    return fail(`got ${m.payload.length} bytes that are not the will's payload`);
  return pass(`published ${secs(afterMs)} after the connection dropped without DISCONNECT`, {
    numbers: { afterMs: Math.round(afterMs) },
  });
}

async function noWillOnDisconnect(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const watcher = await subscriber(scope, topic, ackQoS(scope));
  const leaving = await scope.client({ will: will(scope, topic, 'gone') });
  await scope.wait(leaving.end(), 'the disconnect');
  const other = await scope.client();
  await published(scope, other, topic, 'marker', { qos: ackQoS(scope) });
  const first = await nextOn(watcher.inbox, topic, 'the marker');
  if (first.payload.toString() === 'gone')
    return fail('the will was published after a normal DISCONNECT [MQTT-3.1.2-10]');
  return pass('not published after a normal DISCONNECT');
}

async function willDelay(scope: CheckScope): Promise<Outcome> {
  const topic = scope.topic();
  const watcher = await subscriber(scope, topic, ackQoS(scope));
  const clientId = scope.clientId();
  scope.endsSession(clientId);
  // The will waits for the lesser of the Will Delay Interval and the Session Expiry Interval.
  const dying = await scope.client({
    clientId,
    sessionExpiry: 60,
    will: will(scope, topic, 'late', WILL_DELAY_S),
  });
  const droppedAt = performance.now();
  dying.destroy();
  await nextOn(watcher.inbox, topic, 'the delayed will');
  const afterMs = performance.now() - droppedAt;
  const numbers = { afterMs: Math.round(afterMs) };
  const value = WILL_DELAY_S;
  if (afterMs < WILL_DELAY_S * 1000 - 100) {
    return fail(
      `published ${secs(afterMs)} after the drop, before its Will Delay Interval of ${WILL_DELAY_S} s`,
      { value, unit: 's', numbers },
    );
  }
  return pass(`published ${secs(afterMs)} after the drop (Will Delay Interval ${WILL_DELAY_S} s)`, {
    value,
    unit: 's',
    numbers,
  });
}

const check = checksOf('sessions');

export const sessionChecks: Check[] = [
  check('persistentSession', 'Persistent session keeps QoS 1', persistentSession),
  check('sessionExpiry', 'Session expiry honoured', sessionExpiry, {
    v5: true,
    extraMs: () => EXPIRY_WAIT_MS,
  }),
  check('willOnDrop', 'Will on abnormal disconnect', willOnDrop),
  check('noWillOnDisconnect', 'No will on normal disconnect', noWillOnDisconnect),
  check('willDelay', 'Will delay', willDelay, { v5: true, extraMs: () => WILL_DELAY_S * 1000 + 1000 }),
];
