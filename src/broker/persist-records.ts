/**
 * The records of the --persist log (one JSON object a line; `o` is the op), how they are made from
 * the broker's state, read back and checked, and replayed into sessions and retained messages.
 *
 *   M {id,t,p,q,r,x?,e?}  a message body (payload base64, properties, expiry time)
 *   S {c,v,e,u?,subs}     a persistent session and its subscriptions
 *   D {c}                 the session ended
 *   Q {c,k,m,q,r,s?}      copy k of message m queued for session c
 *   P {c,k,p}             copy k sent with packet id p
 *   L {c,k}               copy k released (PUBREC received, waiting for PUBCOMP)
 *   A {c,k}               copy k done (acknowledged, expired or dropped)
 *   R {t,m} / X {t}       retained message set / deleted
 *   I {c,p} / J {c,p}     incoming QoS 2 packet id pending / released
 *   W {c,t,p,q,r,x?,d?,at?}  client c's will: topic, payload (base64), QoS, retain, properties,
 *                         Will Delay Interval (s), and once its connection ended, when it is due
 *                         (ms since the epoch); a connected client's has no `at`
 *   V {c}                 c's will is gone (published, cancelled, discarded); D drops it too
 *
 * A log without W/V records (written before wills were kept) replays as one with no wills.
 */
import {
  type Properties,
  type ProtocolVersion,
  packetSize,
  type QoS,
  validateTopicFilter,
  validateTopicName,
  type Will,
} from '../protocol/index.js';
import { Message, Outgoing, reserveMessageIds, reserveOutgoingSeq } from './message.js';
import { Session } from './session.js';
import { subEntry } from './trie.js';

/** A subscription: filter, QoS, No Local, Retain As Published, Retain Handling, Subscription Identifier. */
type SubTuple = [string, QoS, 0 | 1, 0 | 1, 0 | 1 | 2, number | null];

export type LogRecord =
  | { o: 'M'; id: number; t: string; p: string; q: QoS; r: boolean; x?: Properties; e?: number }
  | { o: 'S'; c: string; v: ProtocolVersion; e: number; u?: string; subs: SubTuple[] }
  | { o: 'D'; c: string }
  | { o: 'Q'; c: string; k: number; m: number; q: QoS; r: boolean; s?: number[] }
  | { o: 'P'; c: string; k: number; p: number }
  | { o: 'L'; c: string; k: number }
  | { o: 'A'; c: string; k: number }
  | { o: 'R'; t: string; m: number }
  | { o: 'X'; t: string }
  | { o: 'I'; c: string; p: number }
  | { o: 'J'; c: string; p: number }
  | {
      o: 'W';
      c: string;
      t: string;
      p: string;
      q: QoS;
      r: boolean;
      x?: Properties;
      d?: number;
      at?: number;
    }
  | { o: 'V'; c: string };

// ---- from the broker's state ------------------------------------------------------------------

export function messageRecord(m: Message): LogRecord {
  const rec: LogRecord = {
    o: 'M',
    id: m.id,
    t: m.topic,
    p: m.payload.toString('base64'),
    q: m.qos,
    r: m.retain,
  };
  if (m.props !== undefined) rec.x = m.props;
  if (m.expiresAt !== 0) rec.e = m.expiresAt;
  return rec;
}

export function sessionRecord(s: Session): LogRecord {
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
  const rec: LogRecord = { o: 'S', c: s.clientId, v: s.version, e: s.expiryInterval, subs };
  if (s.username !== undefined) rec.u = s.username;
  return rec;
}

/** Client `clientId`'s will; `dueAt` once its connection ended (it waits out its Will Delay Interval). */
export function willRecord(clientId: string, will: Will, dueAt: number | undefined): LogRecord {
  const rec: LogRecord = {
    o: 'W',
    c: clientId,
    t: will.topic,
    p: will.payload.toString('base64'),
    q: will.qos,
    r: will.retain,
  };
  const { willDelayInterval, ...props } = will.properties ?? {};
  if (Object.keys(props).length > 0) rec.x = props;
  if (willDelayInterval !== undefined) rec.d = willDelayInterval;
  if (dueAt !== undefined) rec.at = dueAt;
  return rec;
}

export function queueRecord(s: Session, out: Outgoing): LogRecord {
  const rec: LogRecord = { o: 'Q', c: s.clientId, k: out.seq, m: out.msg.id, q: out.qos, r: out.retain };
  if (out.subIds !== undefined) rec.s = out.subIds;
  return rec;
}

// ---- read back and checked --------------------------------------------------------------------

class BadRecord extends Error {}

type Fields = { [key: string]: unknown };

function isFields(x: unknown): x is Fields {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function asString(x: unknown, what: string): string {
  if (typeof x !== 'string') throw new BadRecord(`${what} is not a string`);
  return x;
}

function asInt(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x)) throw new BadRecord(`${what} is not an integer`);
  return x;
}

function asOneOf<T extends number>(x: unknown, allowed: readonly T[], what: string): T {
  const found = allowed.find((a) => a === x);
  if (found === undefined) throw new BadRecord(`${what} is not one of ${allowed.join(', ')}`);
  return found;
}

function asArray(x: unknown, what: string): unknown[] {
  if (!Array.isArray(x)) throw new BadRecord(`${what} is not an array`);
  return x;
}

const QOS = [0, 1, 2] as const;
const FLAG = [0, 1] as const;
const VERSIONS = [3, 4, 5] as const;
const RETAIN_HANDLING = [0, 1, 2] as const;

const str = (f: Fields, key: string) => asString(f[key], `field '${key}'`);
const int = (f: Fields, key: string) => asInt(f[key], `field '${key}'`);
const optStr = (f: Fields, key: string) => (f[key] === undefined ? undefined : str(f, key));
const optInt = (f: Fields, key: string) => (f[key] === undefined ? undefined : int(f, key));
const qos = (f: Fields, key: string) => asOneOf(f[key], QOS, `field '${key}'`);

function optRange(f: Fields, key: string, min: number, max: number): number | undefined {
  const n = optInt(f, key);
  if (n !== undefined && (n < min || n > max))
    throw new BadRecord(`field '${key}' is outside ${min}..${max}`);
  return n;
}

function bool(f: Fields, key: string): boolean {
  const x = f[key];
  if (typeof x !== 'boolean') throw new BadRecord(`field '${key}' is not a boolean`);
  return x;
}

function ints(f: Fields, key: string): number[] | undefined {
  if (f[key] === undefined) return undefined;
  return asArray(f[key], `field '${key}'`).map((x) => asInt(x, `an element of field '${key}'`));
}

function subs(f: Fields, key: string): SubTuple[] {
  return asArray(f[key], `field '${key}'`).map((x): SubTuple => {
    const what = `a subscription in field '${key}'`;
    const t = asArray(x, what);
    const filter = asString(t[0], what);
    const problem = validateTopicFilter(filter, 5);
    if (problem !== undefined) throw new BadRecord(`${what}: ${problem.message}`);
    return [
      filter,
      asOneOf(t[1], QOS, what),
      asOneOf(t[2], FLAG, what),
      asOneOf(t[3], FLAG, what),
      asOneOf(t[4], RETAIN_HANDLING, what),
      t[5] === null ? null : asInt(t[5], what),
    ];
  });
}

/** A topic name a PUBLISH may carry. */
function topicName(f: Fields, key: string): string {
  const t = str(f, key);
  const problem = validateTopicName(t, 5);
  if (problem !== undefined) throw new BadRecord(`field '${key}': ${problem.message}`);
  return t;
}

/**
 * Properties as messageRecord wrote them (JSON.stringify wrote Buffers as {type:'Buffer',data:[...]}),
 * checked by the codec: a PUBLISH must be able to carry them.
 */
function props(f: Fields, key: string): Properties | undefined {
  const x = f[key];
  if (x === undefined) return undefined;
  if (!isFields(x)) throw new BadRecord(`field '${key}' is not an object`);
  // What the broker decoded from a PUBLISH, written by messageRecord: trusted as written but for
  // the one binary property, which JSON cannot hold as bytes.
  const p: Properties = { ...x };
  const cd = x.correlationData;
  if (cd !== undefined) {
    const what = `the correlationData in field '${key}'`;
    if (!isFields(cd)) throw new BadRecord(`${what} is not bytes`);
    p.correlationData = Buffer.from(asArray(cd.data, what).map((b) => asByte(b, what)));
  }
  try {
    packetSize(
      { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic: 't', payload: EMPTY, properties: p },
      5,
    );
  } catch (err) {
    throw new BadRecord(`field '${key}': ${err instanceof Error ? err.message : String(err)}`);
  }
  return p;
}

const EMPTY = Buffer.alloc(0);

function asByte(x: unknown, what: string): number {
  const n = asInt(x, what);
  if (n < 0 || n > 255) throw new BadRecord(`${what} holds ${n}, not a byte`);
  return n;
}

/** One line of the log as a record; throws BadRecord when it is not one. */
function toRecord(f: Fields): LogRecord {
  const o = f.o;
  switch (o) {
    case 'M':
      return {
        o,
        id: int(f, 'id'),
        t: topicName(f, 't'),
        p: str(f, 'p'),
        q: qos(f, 'q'),
        r: bool(f, 'r'),
        x: props(f, 'x'),
        e: optInt(f, 'e'),
      };
    case 'S':
      return {
        o,
        c: str(f, 'c'),
        v: asOneOf(f.v, VERSIONS, "field 'v'"),
        e: int(f, 'e'),
        u: optStr(f, 'u'),
        subs: subs(f, 'subs'),
      };
    case 'D':
      return { o, c: str(f, 'c') };
    case 'Q':
      return {
        o,
        c: str(f, 'c'),
        k: int(f, 'k'),
        m: int(f, 'm'),
        q: qos(f, 'q'),
        r: bool(f, 'r'),
        s: ints(f, 's'),
      };
    case 'P':
      return { o, c: str(f, 'c'), k: int(f, 'k'), p: int(f, 'p') };
    case 'L':
    case 'A':
      return { o, c: str(f, 'c'), k: int(f, 'k') };
    case 'R':
      return { o, t: topicName(f, 't'), m: int(f, 'm') };
    case 'X':
      return { o, t: str(f, 't') };
    case 'I':
    case 'J':
      return { o, c: str(f, 'c'), p: int(f, 'p') };
    case 'W':
      return {
        o,
        c: str(f, 'c'),
        t: topicName(f, 't'),
        p: str(f, 'p'),
        q: qos(f, 'q'),
        r: bool(f, 'r'),
        x: props(f, 'x'),
        d: optRange(f, 'd', 0, 0xffff_ffff),
        at: optInt(f, 'at'),
      };
    case 'V':
      return { o, c: str(f, 'c') };
    default:
      throw new BadRecord(`unknown record '${typeof o === 'string' ? o : JSON.stringify(o)}'`);
  }
}

// ---- replayed ---------------------------------------------------------------------------------

/** A will the log holds; `dueAt` undefined: its client was connected when the log ends. */
export interface KeptWill {
  will: Will;
  dueAt: number | undefined;
}

/** The log's end state: sessions (offline) with their queues, retained messages by topic, wills by client id. */
export interface Replayed {
  sessions: Map<string, Session>;
  retained: Map<string, Message>;
  wills: Map<string, KeptWill>;
  /** Messages queued or in flight, over all sessions. */
  queued: number;
}

/** Per session: seq -> copy (in flight or queued). */
type Copies = Map<string, Map<number, Outgoing>>;

/**
 * What replay() says of a line it does not use: `torn` when it is the last line and not JSON (what a
 * kill -9 in the middle of a write leaves: nothing acknowledged was in it), else a bad record.
 */
export type ReplayWarning = (line: number, err: string, torn: boolean) => void;

/** Replays the log `text`; `warn` hears of every line skipped. */
export function replay(text: string, warn: ReplayWarning): Replayed {
  const state: ReplayState = {
    messages: new Map(),
    sessions: new Map(),
    retained: new Map(),
    wills: new Map(),
    copies: new Map(),
    maxMsg: 0,
    maxSeq: 0,
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      const last = !lines.slice(i + 1).some((l) => l !== '');
      warn(i + 1, err instanceof Error ? err.message : String(err), last);
      continue;
    }
    try {
      if (!isFields(value)) throw new BadRecord('not a JSON object');
      apply(state, toRecord(value));
    } catch (err) {
      // A record that does not fit (a bug's, or an edited file's) must not stop the broker either.
      warn(i + 1, err instanceof Error ? err.message : String(err), false);
    }
  }
  reserveMessageIds(state.maxMsg);
  reserveOutgoingSeq(state.maxSeq);
  return {
    sessions: state.sessions,
    retained: state.retained,
    wills: state.wills,
    queued: requeue(state),
  };
}

interface ReplayState {
  messages: Map<number, Message>;
  sessions: Map<string, Session>;
  retained: Map<string, Message>;
  wills: Map<string, KeptWill>;
  copies: Copies;
  maxMsg: number;
  maxSeq: number;
}

function apply(st: ReplayState, rec: LogRecord): void {
  switch (rec.o) {
    case 'M': {
      const m = new Message(rec.t, Buffer.from(rec.p, 'base64'), rec.q, rec.r, rec.x, undefined, undefined);
      m.id = rec.id;
      m.owned = true;
      m.expiresAt = rec.e ?? 0;
      st.messages.set(rec.id, m);
      if (rec.id > st.maxMsg) st.maxMsg = rec.id;
      return;
    }
    case 'S':
      restoreSession(st, rec);
      return;
    case 'D':
      st.sessions.delete(rec.c);
      st.copies.delete(rec.c);
      st.wills.delete(rec.c);
      return;
    case 'Q': {
      const m = st.messages.get(rec.m);
      const map = st.copies.get(rec.c);
      if (m === undefined || map === undefined) return;
      const out = new Outgoing(m, rec.q, rec.r, rec.s);
      out.seq = rec.k;
      if (out.seq > st.maxSeq) st.maxSeq = out.seq;
      map.set(out.seq, out);
      return;
    }
    case 'P': {
      const out = st.copies.get(rec.c)?.get(rec.k);
      if (out !== undefined) {
        out.packetId = rec.p;
        out.sent = true;
      }
      return;
    }
    case 'L': {
      const out = st.copies.get(rec.c)?.get(rec.k);
      if (out !== undefined) out.state = 'rel';
      return;
    }
    case 'A':
      st.copies.get(rec.c)?.delete(rec.k);
      return;
    case 'R': {
      const m = st.messages.get(rec.m);
      if (m !== undefined) st.retained.set(rec.t, m);
      return;
    }
    case 'X':
      st.retained.delete(rec.t);
      return;
    case 'I': {
      const s = st.sessions.get(rec.c);
      if (s !== undefined) (s.incomingQos2 ??= new Set()).add(rec.p);
      return;
    }
    case 'J':
      st.sessions.get(rec.c)?.incomingQos2?.delete(rec.p);
      return;
    case 'W':
      st.wills.set(rec.c, { will: keptWill(rec), dueAt: rec.at });
      return;
    case 'V':
      st.wills.delete(rec.c);
      return;
    default: {
      const unreachable: never = rec;
      void unreachable;
    }
  }
}

function restoreSession(st: ReplayState, rec: Extract<LogRecord, { o: 'S' }>): void {
  let s = st.sessions.get(rec.c);
  if (s === undefined) {
    s = new Session(rec.c, rec.v);
    s.persisted = true;
    st.sessions.set(rec.c, s);
    st.copies.set(rec.c, new Map());
  }
  s.version = rec.v;
  s.expiryInterval = rec.e;
  s.username = rec.u;
  s.subs.clear();
  for (const [filter, qos, nl, rap, rh, sid] of rec.subs) {
    const entry = subEntry(s, filter, qos, {
      noLocal: nl === 1,
      retainAsPublished: rap === 1,
      retainHandling: rh,
      subscriptionId: sid ?? undefined,
    });
    s.subs.set(filter, entry);
  }
}

function keptWill(rec: Extract<LogRecord, { o: 'W' }>): Will {
  const will: Will = { topic: rec.t, payload: Buffer.from(rec.p, 'base64'), qos: rec.q, retain: rec.r };
  if (rec.x !== undefined || rec.d !== undefined) {
    will.properties = { ...rec.x };
    if (rec.d !== undefined) will.properties.willDelayInterval = rec.d;
  }
  return will;
}

/** Puts each session's copies back in seq order: those with a packet id in flight, the rest queued. */
function requeue(st: ReplayState): number {
  let queued = 0;
  for (const [c, map] of st.copies) {
    const s = st.sessions.get(c);
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
  return queued;
}
