/**
 * The `mq bench` report: what one run (or several merged) measured, as written by `--json FILE`
 * and read back by `mq bench compare` / `mq bench merge` / `--html`.
 *
 * # Versioning
 * `schema` is always 'mq-bench-report'; `schemaVersion` (BENCH_SCHEMA_VERSION) grows by one when a
 * field changes meaning or disappears. Adding a field is not a new version: readers ignore fields
 * they do not know. A reader refuses a report whose version is newer than its own.
 *
 * # Units and conventions
 * - Times in the summaries are milliseconds (`...Ms`) or seconds (`...Sec`); throughput is per
 *   second of recorded time (`durationSec`). Warm-up is never included.
 * - A summary whose histogram holds no value is `null` (e.g. `ackMs` at QoS 0).
 * - Counters are exact counts of the recorded messages: a message belongs to the recording when its
 *   publisher sent it (its scheduled send time fell) inside a recorded phase; the flag travels in the
 *   payload header, so receivers never guess from clocks.
 * - `histograms` hold every distribution in full, as HdrHistogram "compressed" encodings (base64 of
 *   the zlib-compressed V2 encoding, `encodeIntoCompressedBase64` of hdr-histogram-js, readable by
 *   every HdrHistogram implementation). Values are MICROSECONDS, 3 significant digits. Merging two
 *   reports adds these histograms; percentiles are always recomputed from them, never averaged.
 *
 * # Messages (what `messages.*` count)
 * - sent: PUBLISH packets written by the publishers during recorded phases.
 * - acknowledged: of those, the QoS 1 ones answered by PUBACK / QoS 2 ones by PUBCOMP.
 * - received: PUBLISH packets that reached the subscribers carrying a recorded mq header of this run
 *   (or, in `sub` mode, of any run), duplicates included.
 * - expected (e2e): sent x the subscribers each message should reach (their filters matched, one per
 *   shared-subscription group).
 * - lost: e2e: expected - distinct received. `sub` mode, per publisher stream: the gaps between the
 *   lowest and highest sequence seen (a loss after the last message received cannot be seen); for
 *   a shared subscription, by the members of the group together (each sees only its share).
 * - duplicated: deliveries of a (publisher, sequence) the same subscriber already had.
 * - reordered: deliveries older than one the subscriber already had from the same publisher (a late
 *   fill of a gap; never counted as lost).
 * - foreign: PUBLISH packets without an mq header (other traffic on the filter) or, in e2e, from
 *   another run or from the warm-up; counted, otherwise ignored.
 *
 * # Latency
 * - latencyMs: end to end, from the SCHEDULED send time to the read that delivered the message. With
 *   `rate` the schedule is fixed in advance (open loop), so a stalled broker or a full in-flight
 *   window shows up in full (coordinated omission corrected, as wrk2 does). Without `rate` a message
 *   is scheduled when it is written.
 * - serviceLatencyMs (open loop only): from the moment the message was actually written; the
 *   difference with latencyMs is the time messages waited in the generator (sendLagMs).
 * - ackMs: publish to PUBACK (QoS 1) / PUBCOMP (QoS 2), from the scheduled send time as well.
 * - connectMs: tcp (socket connect), tls (handshake after it), connack (CONNECT written to CONNACK
 *   read), total (dial to CONNACK). WebSocket connections record total and connack only.
 * - Publisher and subscriber in the same process share one clock; in `sub` mode against publishers
 *   on other machines the latency is only as good as the clocks' synchronisation (`clock.note`).
 */

/** Bump when a field changes meaning or disappears (see the header). */
export const BENCH_SCHEMA_VERSION = 1;
export const BENCH_SCHEMA = 'mq-bench-report';

export type BenchMode = 'conn' | 'pub' | 'sub' | 'e2e';

/** A distribution summarised; every figure in milliseconds except `count`. */
export interface Percentiles {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** The settings of the run, as the report records them (no secrets: a password is never written). */
export interface BenchReportSettings {
  mode: BenchMode;
  /** `mqtt://127.0.0.1:1883`, `wss://host:443/mqtt`: the broker, without credentials. */
  target: string;
  transport: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'unix';
  protocolVersion: 3 | 4 | 5;
  /** conn mode: connections opened. */
  clients: number;
  pubs: number;
  subs: number;
  qos: 0 | 1 | 2;
  /** Payload bytes per message (>= HEADER_BYTES). */
  size: number;
  /** Publish topic template (`%i` publisher index, `%c` client id, `%w` worker index). */
  topic: string;
  /** Subscription filter of the subscribers. */
  filter: string;
  retain: boolean;
  /** Total messages per second (open loop), or null: as fast as the broker takes them (closed loop). */
  rate: number | null;
  /** Most QoS 1/2 messages un-acknowledged per publisher. */
  inflight: number;
  /** Closed-loop QoS 0 e2e: most messages per publisher not yet seen by its subscribers (0 = off). */
  window: number;
  durationSec: number | null;
  /** Messages per publisher, or null (then durationSec bounds the run). */
  count: number | null;
  warmupSec: number;
  clean: boolean;
  sessionExpiry: number;
  keepalive: number;
  /** New connections per second, or null (as fast as `connectConcurrency` allows). */
  connectRate: number | null;
  connectConcurrency: number;
  hold: boolean;
  workers: number;
  clientIdPrefix: string;
  /** Set when the run authenticated with a user name (the password is never recorded). */
  username?: string;
  /** Set when the connections authenticated with v5 enhanced authentication (SCRAM-SHA-256...). */
  authMethod?: string;
}

export interface TimelinePoint {
  /** Seconds since the recording started (0 = the first recorded second). */
  t: number;
  /** PUBLISH packets written during this second. */
  sent: number;
  /** Recorded messages received during this second (duplicates included). */
  received: number;
  /** End-to-end p99 of the messages received this second (merged reports: the highest source's). */
  p99Ms: number | null;
  errors: number;
}

export interface BenchHistograms {
  latency?: string;
  serviceLatency?: string;
  sendLag?: string;
  ack?: string;
  connectTcp?: string;
  connectTls?: string;
  connack?: string;
  connectTotal?: string;
}

export type StopReason =
  /** The duration or the count ran out. */
  | 'finished'
  /** The caller aborted (Ctrl-C). */
  | 'aborted'
  /** Every connection closed before the end (e.g. the broker went away). */
  | 'connections-lost'
  /** No connection needed for the mode could be opened. */
  | 'connect-failed'
  /** `hold`: the connections were held until stopped. */
  | 'held'
  /** mq bench itself failed (a worker thread died); `outcome.message` says how. */
  | 'failed';

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  schemaVersion: number;
  tool: { name: 'mq'; version: string };
  /** 8 hex digits, also carried in every payload header of this run. */
  runId: string;
  host: { hostname: string; platform: string; cpus: number; node: string };
  /** ISO 8601 time the run started connecting. */
  startedAt: string;
  /** Recorded seconds (warm-up and draining excluded); throughput is per second of it. */
  durationSec: number;
  outcome: {
    /** True when the run went to its planned end (duration, count, or hold stopped by the caller). */
    completed: boolean;
    stopReason: StopReason;
    /** The first error, in words (e.g. why nothing could connect). */
    message?: string;
  };
  settings: BenchReportSettings;
  connections: {
    attempted: number;
    connected: number;
    failed: number;
    /** Closed by the other side (or by an error) after connecting, before the end of the run. */
    lost: number;
    /** New connections per second while connecting. */
    ratePerSec: number;
  };
  messages: {
    sent: number;
    acknowledged: number;
    expected: number;
    received: number;
    lost: number;
    duplicated: number;
    reordered: number;
    foreign: number;
  };
  throughput: { sentPerSec: number; receivedPerSec: number; acknowledgedPerSec: number };
  latencyMs: Percentiles | null;
  serviceLatencyMs: Percentiles | null;
  sendLagMs: Percentiles | null;
  ackMs: Percentiles | null;
  connectMs: {
    tcp: Percentiles | null;
    tls: Percentiles | null;
    connack: Percentiles | null;
    total: Percentiles | null;
  };
  /** Failures by reason: `ECONNREFUSED`, `CONNACK 0x87 Not authorized`, `connection lost: ...`. */
  errors: Record<string, number>;
  /** mq bench's own CPU time (every thread) over the recorded time. */
  cpu: {
    userSec: number;
    systemSec: number;
    /** 100 = one core busy; above 90% x cores the generator, not the broker, may be the limit. */
    percentOfOneCore: number;
    cores: number;
  };
  /** mq bench's own memory. */
  memory: {
    rssKiB: number;
    rssMaxKiB: number;
    /** conn mode: RSS growth divided by the connections opened. */
    perConnectionKiB: number | null;
  };
  clock: {
    /** True when some latency came from publishers in another process (another clock). */
    acrossProcesses: boolean;
    note?: string;
  };
  timeline: TimelinePoint[];
  histograms: BenchHistograms;
  /** Set by mergeReports(): the reports combined into this one. */
  sources?: { runId: string; hostname: string; mode: BenchMode; startedAt: string; durationSec: number }[];
}
