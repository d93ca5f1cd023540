/**
 * Routing: a message to every matching subscription (retained stored first), one copy per session
 * (3.1.1) or per subscription (v5), shared groups round-robin; QoS 0 written at once, QoS 1/2 put
 * in flight or queued; the queue pumped as acknowledgements free slots. This is the fan-out hot
 * path: no closures, no allocation per delivery beyond the QoS>0 Outgoing.
 */
import type { QoS } from '../protocol/index.js';
import { HIGH_WATER } from './backpressure.js';
import { type Connection, ConnState } from './connection.js';
import type { BrokerCore } from './core.js';
import { type Message, Outgoing } from './message.js';
import type { Session } from './session.js';
import type { MatchResult, Target } from './trie.js';

/**
 * Routes a message to every matching subscription (and stores it when retained). Returns how
 * many subscriptions it matched.
 */
export function route(core: BrokerCore, msg: Message): number {
  if (msg.retain) storeRetained(core, msg);
  // --deny-subscribe: a topic nobody may receive, whatever wildcard matched it ('#', '+/x').
  if (core.denyReads && core.acl.readDenied(msg.topic)) {
    if (msg.owned) msg.sender = undefined;
    return 0;
  }
  const aclReads = core.aclReads;
  const r = core.trie.match(msg.topic);
  const targets = r.targets ?? (r.targets = computeTargets(r));
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    const s = t.session;
    if (t.noLocal && s === msg.sender) continue;
    if (aclReads && !mayRead(core, s, msg.topic)) continue;
    try {
      // [MQTT-3.3.1-12] Retain As Published, else the RETAIN flag is cleared on live delivery.
      deliver(core, s, msg, Math.min(msg.qos, t.qos) as QoS, t.retainAsPublished && msg.retain, t.subIds);
    } catch (err) {
      deliveryFailed(core, s, err);
    }
  }
  const shared = r.shared;
  for (let i = 0; i < shared.length; i++) {
    const g = shared[i]!;
    const n = g.members.length;
    if (n === 0) continue;
    // Round-robin, skipping members whose client is offline while an online one exists, and
    // (with --acl) members that may not read the topic.
    let pick = -1;
    let fallback = -1;
    for (let k = 0; k < n; k++) {
      const idx = (g.next + k) % n;
      const member = g.members[idx]!.session;
      if (aclReads && !mayRead(core, member, msg.topic)) continue;
      if (fallback < 0) fallback = idx;
      if (member.conn !== undefined) {
        pick = idx;
        break;
      }
    }
    if (pick < 0) pick = fallback;
    if (pick < 0) continue;
    g.next = (pick + 1) % n;
    const m = g.members[pick]!;
    try {
      deliver(
        core,
        m.session,
        msg,
        Math.min(msg.qos, m.qos) as QoS,
        m.retainAsPublished && msg.retain,
        m.subscriptionId !== undefined ? [m.subscriptionId] : undefined,
      );
    } catch (err) {
      deliveryFailed(core, m.session, err);
    }
  }
  // Routing is done: a kept copy (retained, queued) must not keep the publisher's session alive.
  if (msg.owned) msg.sender = undefined;
  return targets.length + shared.length;
}

/**
 * One delivery failed where nothing was expected to: that subscriber's connection is closed, the
 * message still goes to every other one, and the publisher (or the timer publishing a will) is
 * not blamed.
 */
function deliveryFailed(core: BrokerCore, s: Session, err: unknown): void {
  core.internalError(s.conn, `[${s.clientId}]`, 'delivering a message', err);
}

/**
 * Read access for one delivery (mosquitto checks each message, not only the SUBSCRIBE): --acl
 * and --deny-subscribe; a --bridge's link reads everything (as Mosquitto's bridges do).
 */
export function mayRead(core: BrokerCore, s: Session, topic: string): boolean {
  if (s.conn?.listener === 'bridge') return true;
  return core.acl.canRead(topic, s.username, s.clientId);
}

function storeRetained(core: BrokerCore, msg: Message): void {
  const topic = msg.topic;
  const sys = topic.startsWith('$SYS/');
  if (msg.payload.length === 0) {
    // [MQTT-3.3.1-10] an empty retained message deletes the one stored.
    if (core.retained.delete(topic) && !sys) core.persist?.retained(topic, undefined);
    return;
  }
  msg.own();
  core.retained.set(topic, msg);
  if (!sys) core.persist?.retained(topic, msg);
}

/** One copy of `msg` for session `s`. */
export function deliver(
  core: BrokerCore,
  s: Session,
  msg: Message,
  qos: QoS,
  retain: boolean,
  subIds: number[] | undefined,
): void {
  const c = s.conn;
  if (qos === 0) {
    if (c === undefined) return;
    // What waits for it, this tick's output included (retained delivery to a new '#' fills it at
    // once): backed up, the client being read waits for it (backpressure.ts), or this is dropped.
    const backlog = c.backlog;
    if (backlog > HIGH_WATER && !core.backpressure.backedUp(c, backlog, core.reader)) {
      core.drops.dropped(s, 'client not reading (QoS 0 dropped)');
      return;
    }
    if (!c.sendPublish(msg, 0, retain, 0, false, subIds))
      core.drops.dropped(s, 'larger than its Maximum Packet Size');
    return;
  }
  msg.own();
  const o = new Outgoing(msg, qos, retain, subIds);
  if (c !== undefined && s.queueLength === 0 && s.inflightSize < c.inflightLimit) {
    core.persist?.queued(s, o);
    send(core, s, c, o);
    // QoS 1/2 is never dropped for it (its queue bounds it), but it holds up its publisher too.
    const backlog = c.backlog;
    if (backlog > HIGH_WATER) core.backpressure.backedUp(c, backlog, core.reader);
    return;
  }
  // Drop policy: a full queue refuses the newest message (counted in $SYS, logged).
  if (s.queueLength >= core.maxQueued) {
    core.drops.dropped(s, `queue full (--max-queued ${core.maxQueued})`);
    return;
  }
  core.persist?.queued(s, o);
  s.queue.push(o);
}

function send(core: BrokerCore, s: Session, c: Connection, o: Outgoing): void {
  const id = s.allocatePacketId();
  o.packetId = id;
  s.inflight.set(id, o);
  core.persist?.sent(s, o);
  o.sent = true;
  if (!c.sendPublish(o.msg, o.qos, o.retain, id, false, o.subIds)) {
    // [MQTT-3.1.2-25] too large for the client: discarded as if delivered.
    core.drops.dropped(s, 'larger than its Maximum Packet Size');
    s.inflight.delete(id);
    core.persist?.completed(s, o);
  }
}

/** An outgoing QoS>0 message is done (acknowledged, refused or dropped): the queue moves up. */
export function complete(core: BrokerCore, s: Session, o: Outgoing): void {
  s.inflight.delete(o.packetId);
  core.persist?.completed(s, o);
  if (s.queueLength > 0) pump(core, s);
}

/** Moves queued messages into flight while the client has room. */
export function pump(core: BrokerCore, s: Session): void {
  const c = s.conn;
  if (c === undefined || c.state !== ConnState.Connected) return;
  if (s.queueLength === 0) return;
  const q = s.queue;
  let now = 0;
  while (q.length > 0 && s.inflightSize < c.inflightLimit) {
    const o = q.shift()!;
    if (o.msg.expiresAt !== 0) {
      now ||= core.now();
      // Message Expiry: a queued copy whose time ran out is never sent [MQTT-3.3.2-5].
      if (o.msg.expired(now)) {
        core.persist?.completed(s, o);
        continue;
      }
    }
    send(core, s, c, o);
  }
}

/** Resends an in-flight message after a reconnect (PUBLISH with DUP, or PUBREL). */
export function resend(core: BrokerCore, s: Session, c: Connection, o: Outgoing): void {
  if (o.state === 'rel') c.writeAck(0x62, o.packetId, 0);
  else if (!c.sendPublish(o.msg, o.qos, o.retain, o.packetId, o.sent, o.subIds)) complete(core, s, o);
  o.sent = true;
}

/** Drops queued and in-flight messages the session's (new) user may not read. */
export function dropUnreadable(core: BrokerCore, s: Session): void {
  if (s.inflightSize > 0) {
    for (const o of [...s.inflight.values()]) {
      if (mayRead(core, s, o.msg.topic)) continue;
      s.inflight.delete(o.packetId);
      core.persist?.completed(s, o);
    }
  }
  if (s.queueLength > 0) {
    const keep: Outgoing[] = [];
    for (const o of s.queue) {
      if (mayRead(core, s, o.msg.topic)) keep.push(o);
      else core.persist?.completed(s, o);
    }
    s.queue.length = 0;
    for (const o of keep) s.queue.push(o);
  }
}

/** 3.1.1 sessions: one copy per session at the highest matching QoS; v5: one per subscription. */
function computeTargets(r: MatchResult): Target[] {
  const targets: Target[] = [];
  let merged: Map<Session, Target> | undefined;
  for (const sub of r.subs) {
    const s = sub.session;
    if (s.version === 5) {
      targets.push({
        session: s,
        qos: sub.qos,
        noLocal: sub.noLocal,
        retainAsPublished: sub.retainAsPublished,
        subIds: sub.subscriptionId !== undefined ? [sub.subscriptionId] : undefined,
      });
      continue;
    }
    merged ??= new Map();
    const t = merged.get(s);
    if (t !== undefined) {
      if (sub.qos > t.qos) t.qos = sub.qos;
      continue;
    }
    // (No Local and Retain As Published are set on 3.1.1 subscriptions only for bridges.)
    const nt: Target = {
      session: s,
      qos: sub.qos,
      noLocal: sub.noLocal,
      retainAsPublished: sub.retainAsPublished,
      subIds: undefined,
    };
    merged.set(s, nt);
    targets.push(nt);
  }
  return targets;
}

/** Messages dropped (queue full, too large, slow consumer): counted, and logged without flooding. */
export class DropLog {
  private readonly core: BrokerCore;
  private lastLog = 0;
  private readonly sessions = new Set<Session>();

  constructor(core: BrokerCore) {
    this.core = core;
  }

  dropped(s: Session, why: string): void {
    this.core.counters.messagesDropped++;
    s.droppedSinceLog++;
    s.dropReason = why;
    this.sessions.add(s);
    // Never silent, never a flood: the first drop is logged at once, then one summary a second.
    const now = this.core.now();
    if (now - this.lastLog >= 1000) this.logDrops(now);
  }

  /** The sweep's turn: the summary of drops not logged yet. */
  tick(now: number): void {
    if (this.sessions.size > 0 && now - this.lastLog >= 1000) this.logDrops(now);
  }

  private logDrops(now: number): void {
    this.lastLog = now;
    for (const s of this.sessions) {
      if (s.droppedSinceLog > 0) {
        this.core.log(`[${s.clientId}] dropped ${s.droppedSinceLog} message(s): ${s.dropReason}`);
        s.droppedSinceLog = 0;
      }
    }
    this.sessions.clear();
  }
}
