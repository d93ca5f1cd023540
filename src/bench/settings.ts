/**
 * What a bench run is asked to do (BenchOptions, as a command or bench/broker.mjs passes it), its
 * defaults and checks (resolveSettings), and the pieces derived from it: client ids, topics from
 * templates, which subscriber each publisher reaches, and which worker owns which client.
 */
import { availableParallelism } from 'node:os';
import type { ScramMethod } from '../auth/scram.js';
import type { TransportOptions } from '../client/transport.js';
import {
  matches,
  type ProtocolVersion,
  parseSharedSubscription,
  type QoS,
  validateTopicFilter,
  validateTopicName,
} from '../protocol/index.js';
import { HEADER_BYTES } from './payload.js';
import type { BenchMode, BenchReportSettings } from './report.js';

/** Where to connect: the shared connection options' transport part, plus credentials. */
export interface BenchTarget extends TransportOptions {
  username?: string;
  /** Sent in CONNECT; with authMethod, SCRAM's password (never sent). */
  password?: Buffer;
  /**
   * TCP source address (mqtt and mqtts): several 127.0.0.x addresses give a loopback run more than
   * one range of ephemeral ports (npm run bench:broker's scale scenario).
   */
  localAddress?: string;
  /** v5 enhanced authentication as `username` with `password` (connection.ts does the exchange). */
  authMethod?: ScramMethod;
}

/** Everything a run can be asked; every field but mode and target has a default. */
export interface BenchOptions {
  mode: BenchMode;
  target: BenchTarget;
  /** 3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0 (default 5, like every mq command). */
  version?: ProtocolVersion;
  /** conn mode: connections to open (default 1). */
  clients?: number;
  /** Publishers (e2e and pub; default 1). */
  pubs?: number;
  /** Subscribers (e2e and sub; default 1). */
  subs?: number;
  qos?: QoS;
  /** Payload bytes, at least HEADER_BYTES (default 64). */
  size?: number;
  /** Publish topic template: %i publisher index, %c client id, %w worker index (default bench/%i). */
  topic?: string;
  /** Subscription filter template (%i subscriber index); default: the topic with every templated level as '+'. */
  filter?: string;
  retain?: boolean;
  /** Messages per second, all publishers together (open loop); null/undefined: as fast as possible. */
  rate?: number | null;
  /** Most QoS 1/2 messages un-acknowledged per publisher (default 64; the broker's Receive Maximum caps it). */
  inflight?: number;
  /**
   * Closed-loop QoS 0 e2e: most messages a publisher may be ahead of its slowest subscriber
   * (default 2000; 0 = no window, only TCP backpressure). Keeps the broker's queues short so that
   * "as fast as the broker takes them" measures delivery, not queueing.
   */
  window?: number;
  /** Closed-loop QoS 0: messages per write (default 100). */
  batch?: number;
  /** Recorded seconds (default 10 unless count is given; conn mode: none, hold until stopped). */
  durationSec?: number | null;
  /** Messages per publisher (recorded phase). */
  count?: number | null;
  /** Seconds of load before recording starts (default 1 for pub/e2e, 0 otherwise). */
  warmupSec?: number;
  clean?: boolean;
  /** v5 Session Expiry Interval for persistent sessions (default 0). */
  sessionExpiry?: number;
  /** Seconds (default 60); connections held in conn mode send PINGREQ to keep it. */
  keepalive?: number;
  /** New connections per second, all workers together; null: as fast as connectConcurrency allows. */
  connectRate?: number | null;
  /** Most connection attempts pending at once, all workers together (default 100). */
  connectConcurrency?: number;
  /** Per connection: dial + CONNACK (default 10 s). */
  connectTimeoutMs?: number;
  /** conn mode: keep the connections open until stopped (or durationSec). */
  hold?: boolean;
  /** Worker threads (default: the cores); 0 runs every client in the calling thread. */
  workers?: number;
  /** Client ids are PREFIX-p0, PREFIX-s0, PREFIX-c0 (default mq-bench-RUNID). */
  clientIdPrefix?: string;
  /** After the load stops: most ms to wait for messages and acks still on their way (default 5000). */
  drainTimeoutMs?: number;
}

/** A setting that cannot work; the message says which and why. */
export class BenchSettingsError extends Error {
  override name = 'BenchSettingsError';
}

/** BenchOptions with every default applied and checked. */
export interface ResolvedSettings
  extends Required<Omit<BenchOptions, 'rate' | 'durationSec' | 'count' | 'connectRate' | 'target'>> {
  target: BenchTarget;
  rate: number | null;
  durationSec: number | null;
  count: number | null;
  connectRate: number | null;
  runId: number;
}

function positiveInt(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min)
    throw new BenchSettingsError(`${name} must be an integer >= ${min} (got ${v})`);
  return v;
}

function positive(name: string, v: number): number {
  if (!(Number.isFinite(v) && v > 0))
    throw new BenchSettingsError(`${name} must be a number above 0 (got ${v})`);
  return v;
}

/** Applies the defaults and checks every setting; throws BenchSettingsError. */
export function resolveSettings(o: BenchOptions, runId: number): ResolvedSettings {
  const mode = o.mode;
  const loadMode = mode === 'pub' || mode === 'e2e';
  const count = o.count ?? null;
  if (count !== null) positiveInt('count', count);
  // An explicit null means "no duration" (hold until stopped); undefined takes the default.
  const durationSec =
    o.durationSec !== undefined ? o.durationSec : count === null && mode !== 'conn' ? 10 : null;
  if (durationSec !== null) positive('duration', durationSec);
  const size = o.size ?? 64;
  if (!Number.isInteger(size) || size < HEADER_BYTES)
    throw new BenchSettingsError(
      `size must be at least ${HEADER_BYTES} bytes, the payload header (got ${size})`,
    );
  const qos = o.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new BenchSettingsError(`qos must be 0, 1 or 2 (got ${qos})`);
  const rate = o.rate ?? null;
  if (rate !== null) positive('rate', rate);
  const connectRate = o.connectRate ?? null;
  if (connectRate !== null) positive('connect rate', connectRate);
  const topic = o.topic ?? 'bench/%i';
  const s: ResolvedSettings = {
    mode,
    target: o.target,
    version: o.version ?? 5,
    clients: positiveInt('clients', o.clients ?? 1),
    pubs: mode === 'pub' || mode === 'e2e' ? positiveInt('pubs', o.pubs ?? 1) : 0,
    subs: mode === 'sub' || mode === 'e2e' ? positiveInt('subs', o.subs ?? 1) : 0,
    qos,
    size,
    topic,
    filter: o.filter ?? defaultFilter(topic),
    retain: o.retain ?? false,
    rate,
    inflight: positiveInt('inflight', o.inflight ?? 64),
    window: positiveInt('window', o.window ?? 2000, 0),
    batch: positiveInt('batch', o.batch ?? 100),
    durationSec,
    count,
    warmupSec: o.warmupSec ?? (loadMode ? 1 : 0),
    clean: o.clean ?? true,
    sessionExpiry: positiveInt('session expiry', o.sessionExpiry ?? 0, 0),
    keepalive: positiveInt('keepalive', o.keepalive ?? 60, 0),
    connectRate,
    connectConcurrency: positiveInt('connect concurrency', o.connectConcurrency ?? 100),
    connectTimeoutMs: positive('connect timeout', o.connectTimeoutMs ?? 10_000),
    hold: o.hold ?? false,
    workers: positiveInt('workers', o.workers ?? availableParallelism(), 0),
    clientIdPrefix: o.clientIdPrefix ?? `mq-bench-${(runId >>> 0).toString(16).padStart(8, '0')}`,
    drainTimeoutMs: positiveInt('drain timeout', o.drainTimeoutMs ?? 5000, 0),
    runId,
  };
  if (s.inflight > 65_535) throw new BenchSettingsError(`inflight must be at most 65535 (got ${s.inflight})`);
  if (!(s.warmupSec >= 0))
    throw new BenchSettingsError(`warmup must be 0 or more seconds (got ${s.warmupSec})`);
  if (s.mode !== 'conn' && s.hold) throw new BenchSettingsError('hold applies to conn mode only');
  if (s.hold && count !== null)
    throw new BenchSettingsError('hold runs until stopped or for a duration, not a count');
  checkTemplates(s);
  return s;
}

/** The topic with every level holding a template (%i, %c, %w) replaced by '+'. */
export function defaultFilter(topic: string): string {
  return topic
    .split('/')
    .map((level) => (/%[icw]/.test(level) ? '+' : level))
    .join('/');
}

/** Expands %i (index), %c (client id), %w (worker index) and %% in a topic or filter template. */
export function expandTemplate(template: string, index: number, clientId: string, worker: number): string {
  return template.replace(/%([icw%])/g, (_, c: string) =>
    c === 'i' ? String(index) : c === 'c' ? clientId : c === 'w' ? String(worker) : '%',
  );
}

function checkTemplates(s: ResolvedSettings): void {
  const topic = expandTemplate(s.topic, 0, `${s.clientIdPrefix}-p0`, 0);
  const problem = validateTopicName(topic);
  if (problem) throw new BenchSettingsError(`topic '${s.topic}': ${problem.message}`);
  const filter = expandTemplate(s.filter, 0, `${s.clientIdPrefix}-s0`, 0);
  const fp = validateTopicFilter(filter);
  if (fp) throw new BenchSettingsError(`filter '${s.filter}': ${fp.message}`);
}

export const pubClientId = (s: ResolvedSettings, i: number) => `${s.clientIdPrefix}-p${i}`;
export const subClientId = (s: ResolvedSettings, j: number) => `${s.clientIdPrefix}-s${j}`;
export const connClientId = (s: ResolvedSettings, k: number) => `${s.clientIdPrefix}-c${k}`;

/** Which worker owns each client. */
export interface Assignment {
  /** worker index of publisher i / subscriber j / conn client k. */
  pubWorker: number[];
  subWorker: number[];
  connWorker: number[];
}

/**
 * Spreads the clients over `workers` by expected work: a subscriber weighs as many messages as it
 * receives (every publisher), a publisher as many as it sends. Heaviest first, each to the least
 * loaded worker (so 8 publishers and 1 subscriber on 2 workers: the subscriber alone on one).
 */
export function assignWorkers(s: ResolvedSettings, workers: number): Assignment {
  const n = Math.max(1, workers);
  const load = new Array<number>(n).fill(0);
  const items: { kind: 'pub' | 'sub' | 'conn'; index: number; weight: number }[] = [];
  for (let j = 0; j < s.subs; j++) items.push({ kind: 'sub', index: j, weight: Math.max(1, s.pubs) });
  for (let i = 0; i < s.pubs; i++) items.push({ kind: 'pub', index: i, weight: 1 });
  if (s.mode === 'conn')
    for (let k = 0; k < s.clients; k++) items.push({ kind: 'conn', index: k, weight: 1 });
  items.sort((a, b) => b.weight - a.weight);
  const out: Assignment = {
    pubWorker: new Array<number>(s.pubs).fill(0),
    subWorker: new Array<number>(s.subs).fill(0),
    connWorker: new Array<number>(s.mode === 'conn' ? s.clients : 0).fill(0),
  };
  for (const it of items) {
    let best = 0;
    for (let w = 1; w < n; w++) if (load[w]! < load[best]!) best = w;
    load[best]! += it.weight;
    if (it.kind === 'pub') out.pubWorker[it.index] = best;
    else if (it.kind === 'sub') out.subWorker[it.index] = best;
    else out.connWorker[it.index] = best;
  }
  return out;
}

/** The publish topic of publisher i (owned by `worker`). */
export function pubTopic(s: ResolvedSettings, i: number, worker: number): string {
  return expandTemplate(s.topic, i, pubClientId(s, i), worker);
}

/** The subscription filter of subscriber j (owned by `worker`). */
export function subFilter(s: ResolvedSettings, j: number, worker: number): string {
  return expandTemplate(s.filter, j, subClientId(s, j), worker);
}

/**
 * For each publisher, the subscribers its messages reach: the list of subscriber indexes whose
 * filter matches its topic, and the deliveries each message should make (one per matching plain
 * subscription, one per shared-subscription group). Only connected subscribers count.
 */
export function receiversOf(
  pubTopics: readonly string[],
  subFilters: readonly (string | undefined)[],
): { subs: number[][]; deliveries: number[] } {
  const subs: number[][] = [];
  const deliveries: number[] = [];
  for (const topic of pubTopics) {
    const list: number[] = [];
    const groups = new Set<string>();
    let plain = 0;
    subFilters.forEach((f, j) => {
      if (f === undefined || !matches(f, topic)) return;
      const shared = parseSharedSubscription(f);
      if (shared) groups.add(`${shared.group}\0${shared.filter}`);
      else {
        plain++;
        list.push(j);
      }
    });
    subs.push(list);
    deliveries.push(plain + groups.size);
  }
  return { subs, deliveries };
}

/** The settings as the report records them (no password). */
export function reportSettings(s: ResolvedSettings, target: string): BenchReportSettings {
  const out: BenchReportSettings = {
    mode: s.mode,
    target,
    transport: s.target.transport,
    protocolVersion: s.version,
    clients: s.mode === 'conn' ? s.clients : s.pubs + s.subs,
    pubs: s.pubs,
    subs: s.subs,
    qos: s.qos,
    size: s.size,
    topic: s.topic,
    filter: s.filter,
    retain: s.retain,
    rate: s.rate,
    inflight: s.inflight,
    window: s.window,
    durationSec: s.durationSec,
    count: s.count,
    warmupSec: s.warmupSec,
    clean: s.clean,
    sessionExpiry: s.sessionExpiry,
    keepalive: s.keepalive,
    connectRate: s.connectRate,
    connectConcurrency: s.connectConcurrency,
    hold: s.hold,
    workers: s.workers,
    clientIdPrefix: s.clientIdPrefix,
  };
  if (s.target.username !== undefined) out.username = s.target.username;
  if (s.target.authMethod !== undefined) out.authMethod = s.target.authMethod;
  return out;
}
