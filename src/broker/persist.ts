/**
 * --persist FILE: a write-ahead log of NDJSON records, fsynced once per tick before the broker
 * writes the acknowledgements of that tick (so a kill -9 loses nothing acknowledged), compacted
 * into a snapshot on start, on close and when it grows.
 *
 * Records (`o` is the op):
 *   M {id,t,p,q,r,x?,e?}  a message body (payload base64, properties, expiry time)
 *   S {c,v,e,u?,subs}     a persistent session and its subscriptions
 *   D {c}                 the session ended
 *   Q {c,k,m,q,r,s?}      copy k of message m queued for session c
 *   P {c,k,p}             copy k sent with packet id p
 *   L {c,k}               copy k released (PUBREC received, waiting for PUBCOMP)
 *   A {c,k}               copy k done (acknowledged, expired or dropped)
 *   R {t,m} / X {t}       retained message set / deleted
 *   I {c,p} / J {c,p}     incoming QoS 2 packet id pending / released
 * Only sessions with a non-zero Session Expiry Interval are written.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import type { Properties, QoS } from '../protocol/index.js';
import { parseSharedSubscription } from '../protocol/topic.js';
import type { Broker } from './broker.js';
import { Message, Outgoing, reserveMessageIds, reserveOutgoingSeq } from './message.js';
import { Session } from './session.js';
import type { SubEntry } from './trie.js';

const COMPACT_AFTER_RECORDS = 200_000;

type SubTuple = [string, number, number, number, number, number | null];

interface Rec {
  o: string;
  [k: string]: unknown;
}

export class Persistence {
  private readonly file: string;
  private fd = -1;
  private pending: string[] = [];
  private records = 0;
  private generation = 1;
  private broker: Broker | undefined = undefined;

  constructor(file: string) {
    this.file = file;
  }

  // ---- records --------------------------------------------------------------------------------

  private push(rec: Rec): void {
    if (this.pending.length === 0 && this.fd >= 0) this.broker?.scheduleTick();
    this.pending.push(JSON.stringify(rec), '\n');
  }

  private body(m: Message): void {
    if (m.persistedIn === this.generation) return;
    m.persistedIn = this.generation;
    this.push(messageRecord(m));
  }

  session(s: Session): void {
    if (s.expiryInterval === 0) {
      // A persisted session resumed with expiry 0 no longer survives a restart.
      if (s.persisted) this.sessionDeleted(s);
      return;
    }
    s.persisted = true;
    this.push(sessionRecord(s));
  }

  sessionDeleted(s: Session): void {
    if (!s.persisted) return;
    s.persisted = false;
    this.push({ o: 'D', c: s.clientId });
  }

  queued(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.body(out.msg);
    this.push(queueRecord(s, out));
  }

  sent(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'P', c: s.clientId, k: out.seq, p: out.packetId });
  }

  released(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'L', c: s.clientId, k: out.seq });
  }

  completed(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'A', c: s.clientId, k: out.seq });
  }

  incomingPending(s: Session, packetId: number): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'I', c: s.clientId, p: packetId });
  }

  incomingReleased(s: Session, packetId: number): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'J', c: s.clientId, p: packetId });
  }

  retained(topic: string, m: Message | undefined): void {
    if (m === undefined) {
      this.push({ o: 'X', t: topic });
      return;
    }
    this.body(m);
    this.push({ o: 'R', t: topic, m: m.id });
  }

  /** Writes and fsyncs what this tick produced (called before the tick's acknowledgements go out). */
  sync(): void {
    if (this.pending.length === 0 || this.fd < 0) return;
    const text = this.pending.join('');
    this.records += this.pending.length / 2;
    this.pending = [];
    writeSync(this.fd, text);
    fdatasyncSync(this.fd);
    if (this.records > COMPACT_AFTER_RECORDS && this.broker !== undefined) this.compact(this.broker);
  }

  close(broker: Broker): void {
    if (this.fd < 0) return;
    this.sync();
    this.compact(broker);
    closeSync(this.fd);
    this.fd = -1;
  }

  // ---- restore and compaction -----------------------------------------------------------------

  /** Loads the log into `broker` (sessions offline, retained messages), then compacts it. */
  restore(broker: Broker): void {
    this.broker = broker;
    if (existsSync(this.file)) {
      const text = readFileSync(this.file, 'utf8');
      const state = replay(text, (line, err) =>
        broker.log(`--persist ${this.file}: skipping line ${line}: ${err}`),
      );
      for (const [topic, m] of state.retained) broker.retained.set(topic, m);
      for (const s of state.sessions.values()) broker.restoreSession(s);
      if (state.sessions.size > 0 || state.retained.size > 0) {
        broker.log(
          `--persist ${this.file}: restored ${state.sessions.size} session(s), ${state.queued} queued message(s), ${state.retained.size} retained message(s)`,
        );
      }
    }
    this.compact(broker);
  }

  /** Rewrites the log as a snapshot of the live state (temp file, fsync, rename). */
  compact(broker: Broker): void {
    this.generation++;
    this.pending = [];
    for (const [topic, m] of broker.retained) {
      if (topic.startsWith('$SYS/')) continue;
      this.body(m);
      this.push({ o: 'R', t: topic, m: m.id });
    }
    for (const s of broker.sessions.values()) {
      if (s.expiryInterval === 0) continue;
      s.persisted = true;
      this.push(sessionRecord(s));
      for (const out of s.inflight.values()) {
        this.body(out.msg);
        this.push(queueRecord(s, out));
        this.push({ o: 'P', c: s.clientId, k: out.seq, p: out.packetId });
        if (out.state === 'rel') this.push({ o: 'L', c: s.clientId, k: out.seq });
      }
      for (const out of s.queue) {
        this.body(out.msg);
        this.push(queueRecord(s, out));
      }
      if (s.incomingQos2 !== undefined)
        for (const p of s.incomingQos2) this.push({ o: 'I', c: s.clientId, p });
    }
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    writeSync(fd, this.pending.join(''));
    fsyncSync(fd);
    closeSync(fd);
    this.pending = [];
    renameSync(tmp, this.file);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(this.file, 'a');
    this.records = 0;
  }

  /** Size of the log in bytes (tests, diagnostics). */
  size(): number {
    return existsSync(this.file) ? statSync(this.file).size : 0;
  }
}

function messageRecord(m: Message): Rec {
  const rec: Rec = { o: 'M', id: m.id, t: m.topic, p: m.payload.toString('base64'), q: m.qos, r: m.retain };
  if (m.props !== undefined) rec.x = m.props;
  if (m.expiresAt !== 0) rec.e = m.expiresAt;
  return rec;
}

function sessionRecord(s: Session): Rec {
  const subs: SubTuple[] = [];
  for (const e of s.subs.values()) {
    subs.push([
      e.filter,
      e.qos,
      e.noLocal ? 1 : 0,
      e.retainAsPublished ? 1 : 0,
      e.retainHandling,
      e.subscriptionId ?? null,
    ]);
  }
  const rec: Rec = { o: 'S', c: s.clientId, v: s.version, e: s.expiryInterval, subs };
  if (s.username !== undefined) rec.u = s.username;
  return rec;
}

function queueRecord(s: Session, out: Outgoing): Rec {
  const rec: Rec = { o: 'Q', c: s.clientId, k: out.seq, m: out.msg.id, q: out.qos, r: out.retain };
  if (out.subIds !== undefined) rec.s = out.subIds;
  return rec;
}

interface Replayed {
  sessions: Map<string, Session>;
  retained: Map<string, Message>;
  queued: number;
}

/** Buffers were written as {type:'Buffer',data:[...]} by JSON.stringify. */
function reviveProps(x: unknown): Properties | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const props = { ...(x as Properties) };
  const cd = props.correlationData as unknown;
  if (typeof cd === 'object' && cd !== null && Array.isArray((cd as { data?: unknown }).data)) {
    props.correlationData = Buffer.from((cd as { data: number[] }).data);
  }
  return props;
}

function replay(text: string, warn: (line: number, err: string) => void): Replayed {
  const messages = new Map<number, Message>();
  const sessions = new Map<string, Session>();
  const retained = new Map<string, Message>();
  /** Per session: seq -> copy (inflight or queued), in seq order once sorted. */
  const copies = new Map<string, Map<number, Outgoing>>();
  let maxMsg = 0;
  let maxSeq = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    let rec: Rec;
    try {
      rec = JSON.parse(line) as Rec;
    } catch (err) {
      // A torn last line is what a kill -9 mid-write leaves: nothing acknowledged was in it.
      if (lines.slice(i + 1).some((l) => l !== ''))
        warn(i + 1, err instanceof Error ? err.message : String(err));
      continue;
    }
    const c = String(rec.c ?? '');
    switch (rec.o) {
      case 'M': {
        const id = Number(rec.id);
        const m = new Message(
          String(rec.t),
          Buffer.from(String(rec.p), 'base64'),
          Number(rec.q) as QoS,
          rec.r === true,
          reviveProps(rec.x),
          undefined,
          0,
        );
        m.id = id;
        m.owned = true;
        m.expiresAt = typeof rec.e === 'number' ? rec.e : 0;
        messages.set(id, m);
        if (id > maxMsg) maxMsg = id;
        break;
      }
      case 'S': {
        let s = sessions.get(c);
        if (s === undefined) {
          s = new Session(c, Number(rec.v) as 3 | 4 | 5);
          s.persisted = true;
          sessions.set(c, s);
          copies.set(c, new Map());
        }
        s.version = Number(rec.v) as 3 | 4 | 5;
        s.expiryInterval = Number(rec.e);
        s.username = typeof rec.u === 'string' ? rec.u : undefined;
        s.subs.clear();
        for (const t of (rec.subs as SubTuple[]) ?? []) {
          const [filter, qos, nl, rap, rh, sid] = t;
          const shared = parseSharedSubscription(filter);
          const entry: SubEntry = {
            session: s,
            filter,
            topicFilter: shared?.filter ?? filter,
            group: shared?.group,
            qos: qos as QoS,
            noLocal: nl === 1,
            retainAsPublished: rap === 1,
            retainHandling: rh as 0 | 1 | 2,
            subscriptionId: sid ?? undefined,
          };
          s.subs.set(filter, entry);
        }
        break;
      }
      case 'D':
        sessions.delete(c);
        copies.delete(c);
        break;
      case 'Q': {
        const m = messages.get(Number(rec.m));
        const map = copies.get(c);
        if (m === undefined || map === undefined) break;
        const out = new Outgoing(
          m,
          Number(rec.q) as QoS,
          rec.r === true,
          Array.isArray(rec.s) ? (rec.s as number[]) : undefined,
        );
        out.seq = Number(rec.k);
        if (out.seq > maxSeq) maxSeq = out.seq;
        map.set(out.seq, out);
        break;
      }
      case 'P': {
        const out = copies.get(c)?.get(Number(rec.k));
        if (out !== undefined) {
          out.packetId = Number(rec.p);
          out.sent = true;
        }
        break;
      }
      case 'L': {
        const out = copies.get(c)?.get(Number(rec.k));
        if (out !== undefined) out.state = 'rel';
        break;
      }
      case 'A':
        copies.get(c)?.delete(Number(rec.k));
        break;
      case 'R': {
        const m = messages.get(Number(rec.m));
        if (m !== undefined) retained.set(String(rec.t), m);
        break;
      }
      case 'X':
        retained.delete(String(rec.t));
        break;
      case 'I': {
        const s = sessions.get(c);
        if (s !== undefined) (s.incomingQos2 ??= new Set()).add(Number(rec.p));
        break;
      }
      case 'J':
        sessions.get(c)?.incomingQos2?.delete(Number(rec.p));
        break;
      default:
        warn(i + 1, `unknown record '${String(rec.o)}'`);
    }
  }
  reserveMessageIds(maxMsg);
  reserveOutgoingSeq(maxSeq);
  let queued = 0;
  for (const [c, map] of copies) {
    const s = sessions.get(c);
    if (s === undefined) continue;
    const ordered = [...map.values()].sort((a, b) => a.seq - b.seq);
    for (const out of ordered) {
      queued++;
      // Copies that had a packet id go back in flight (resent with DUP on reconnect), the rest queue.
      if (out.sent && out.packetId !== 0 && !s.inflight.has(out.packetId)) s.inflight.set(out.packetId, out);
      else {
        out.sent = false;
        out.state = 'pub';
        s.queue.push(out);
      }
    }
  }
  return { sessions, retained, queued };
}
