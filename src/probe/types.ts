/**
 * What `runProbe` takes and gives back: the options, and a report of checks in sections, each check
 * with a status, a number where there is one, and a line of detail a person can read.
 */
import type { ClientOptions } from '../client/index.js';
import type { ConnackPacket, Packet, ProtocolVersion } from '../protocol/index.js';

/** The sections of a report, in the order they are printed (also the JSON keys). */
export const SECTIONS = ['versions', 'announces', 'delivery', 'sessions', 'limits', 'identity'] as const;
export type SectionName = (typeof SECTIONS)[number];

export const SECTION_TITLES: Record<SectionName, string> = {
  versions: 'Versions',
  announces: 'What it announces (MQTT 5 CONNACK) and whether it behaves so',
  delivery: 'Delivery',
  sessions: 'Sessions and wills',
  limits: 'Limits',
  identity: 'Identity',
};

/**
 * pass: it does what the spec (or its own announcement) says. fail: it does not. unsupported: a
 * feature it does not offer (and says so, or refuses it cleanly). skipped: not checked (why is in
 * the detail). info: a fact, not a verdict (a version string, a cipher).
 */
export type CheckStatus = 'pass' | 'fail' | 'unsupported' | 'skipped' | 'info';

/** What a check finds. */
export interface Outcome {
  status: CheckStatus;
  /** The number (or flag, or text) measured or announced, when there is one. */
  value?: number | boolean | string;
  /** Unit of a numeric value ('bytes', 'ms', 's', 'messages'...). */
  unit?: string;
  /** For limits: the search stopped at --max-probe, the real limit may be higher. */
  bounded?: boolean;
  /** For announced CONNACK properties: was it in the CONNACK (else the spec's default applies). */
  announced?: boolean;
  /** Measurements beside the value (times, counts): they vary from run to run, the value should not. */
  numbers?: Record<string, number>;
  /** One line for people; strings that came from the network are quoted and escaped. */
  detail: string;
}

export interface CheckResult extends Outcome {
  section: SectionName;
  /** The key in its section of the JSON report (camelCase, stable). */
  id: string;
  /** The label of its line in the text report. */
  title: string;
  /** How long the check took, cleanup excluded. */
  ms: number;
  /** Set when the check's cleanup (retained messages, sessions) did not complete. */
  cleanupError?: string;
}

export interface ProbeOptions {
  /** Where and as whom (transport, host, port, TLS, credentials, keepalive, -D connect properties). */
  client: ClientOptions;
  /** The version the user asked for with -V; undefined: 5, falling back to 3.1.1 if refused. */
  version?: ProtocolVersion;
  /** Topic prefix every check's topics live under (default: mq-probe/ and 8 random hex digits). */
  prefix?: string;
  /** Client id prefix (default mqp and random hex digits). */
  idPrefix?: string;
  /** Time limit of each check in milliseconds (checks that wait on purpose get that time on top). */
  timeoutMs: number;
  /** Upper bound of the binary searches (packet size in bytes; topic and client id length). */
  maxProbe: number;
  /** Sections to run (default: all). */
  sections?: readonly SectionName[];
  /** Most checks running at once (default 8). */
  concurrency?: number;
  /** Aborting it stops the probe: running checks end as skipped, cleanup still runs. */
  signal?: AbortSignal;
  /** Called as each check finishes (progress). */
  onResult?: (result: CheckResult, done: number, total: number) => void;
  /** Packet trace of every connection the probe opens, labelled with the check. */
  trace?: (
    label: string,
    version: ProtocolVersion,
    direction: 'in' | 'out',
    packet: Packet,
    raw: Buffer,
  ) => void;
}

export interface ProbeReport {
  /** host:port (or ws:// URL, unix socket). */
  target: string;
  transport: ClientOptions['transport'];
  /** The version the checks ran in. */
  version: ProtocolVersion;
  prefix: string;
  /** The CONNACK of the first connection: what the broker announced. */
  connack: ConnackPacket;
  /** When the first connection in MQTT 5 was refused and the probe went on in 3.1.1: why. */
  fallback?: string;
  results: CheckResult[];
  durationMs: number;
  /** The probe was stopped (Ctrl-C) before every check had run. */
  interrupted: boolean;
}
