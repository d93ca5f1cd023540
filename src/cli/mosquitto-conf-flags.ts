/**
 * What a parsed mosquitto.conf (mosquitto-conf.ts) means for `mq broker`: the flag values it
 * stands for, so that `mq broker -c FILE --flag ...` is the file's settings with each flag given on
 * the command line replacing the same setting from the file.
 *
 * mq broker has one listener of each kind (mqtt, websockets, and each over TLS), one bind address
 * and one set of TLS, limit and security settings for all of them. A file that needs more (two
 * mqtt listeners, two bind addresses, per-listener settings that differ) is refused with the line
 * that asks for it, unless the command line settles it (--host for the bind address).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';
import {
  type At,
  type ConfListener,
  type ConfSecurity,
  type ParsedConf,
  parseMosquittoConf,
} from './mosquitto-conf.js';
import { readFileValue } from './values.js';

/** mq broker's flags (values as commander holds them) that a config file may set. */
export interface ConfFlags {
  host?: string;
  /** null: the file defines listeners but no plain mqtt one (no TCP listener). */
  port?: string | null;
  wsPort?: string;
  tlsPort?: string;
  wssPort?: string;
  cert?: string;
  key?: string;
  cafile?: string;
  requireCertificate?: boolean;
  useIdentityAsUsername?: boolean;
  /** true (a bare --allow-anonymous), 'true' or 'false'. */
  allowAnonymous?: string | boolean;
  passwd?: string;
  acl?: string;
  persist?: string;
  maxPacketSize?: string;
  maxConnections?: string;
  maxInflight?: string;
  maxQueued?: string;
  maxKeepalive?: string;
  maxQos?: string;
  topicAliasMax?: string;
  retain?: boolean;
  sysInterval?: string;
}

type Kind = 'mqtt' | 'websockets' | 'mqtt over TLS' | 'websockets over TLS';
const PORT_FLAG: Record<Kind, 'port' | 'wsPort' | 'tlsPort' | 'wssPort'> = {
  mqtt: 'port',
  websockets: 'wsPort',
  'mqtt over TLS': 'tlsPort',
  'websockets over TLS': 'wssPort',
};

/** The largest packet MQTT can carry: a larger max_packet_size is no limit. */
const WIRE_MAX = 268_435_460;
/** --max-inflight's and --max-queued's largest values: Mosquitto's "0 = no maximum". */
const NO_MAX_INFLIGHT = '65535';
const NO_MAX_QUEUED = '100000000';
/** The first bytes of Mosquitto's own persistence file (mq's --persist log is another format). */
const MOSQUITTO_DB_MAGIC = Buffer.from([0x00, 0xb5, 0x00, ...Buffer.from('mosquitto db')]);

/** `mq broker -c FILE`: the flags the file sets, and its warning lines (see confFlags). */
export async function readMosquittoConf(
  file: string,
  onCommandLine: (flag: keyof ConfFlags) => boolean,
): Promise<{ flags: ConfFlags; warnings: string[] }> {
  const text = (await readFileValue(file, '-c')).toString('utf8');
  return confFlags(parseMosquittoConf(text, file), onCommandLine);
}

/**
 * The flags `conf` sets, and warning lines. `onCommandLine(flag)`: the flag was given on the
 * command line (its setting in the file is then not checked against the others).
 */
export function confFlags(
  conf: ParsedConf,
  onCommandLine: (flag: keyof ConfFlags) => boolean,
): { flags: ConfFlags; warnings: string[] } {
  const flags: ConfFlags = {};
  const warnings = [...conf.warnings];
  const at = (line: number) => `${conf.file}:${line}`;
  listenerFlags(conf, flags, onCommandLine, at);
  tlsFlags(conf, flags, at);
  perListenerLimits(conf, flags, warnings, at);
  securityFlags(conf, flags, warnings, at);
  globalFlags(conf, flags, at);
  return { flags, warnings };
}

function kindOf(l: ConfListener, at: (line: number) => string): Kind {
  const tls = l.certfile !== undefined || l.keyfile !== undefined;
  if (tls && (l.certfile === undefined || l.keyfile === undefined)) {
    const given = (l.certfile ?? l.keyfile) as At<string>;
    throw new UsageError(
      `${at(given.line)}: certfile and keyfile go together (this listener has one of them)`,
    );
  }
  for (const s of [l.cafile, l.requireCertificate, l.useIdentityAsUsername]) {
    if (s !== undefined && !tls && s.value !== false) {
      throw new UsageError(
        `${at(s.line)}: this listener has no certfile and keyfile: it is not a TLS listener`,
      );
    }
  }
  if (l.protocol === 'websockets') return tls ? 'websockets over TLS' : 'websockets';
  return tls ? 'mqtt over TLS' : 'mqtt';
}

/** A bind address as mq binds it: interface names (Mosquitto's `lo` for websockets) become their address. */
function bindAddress(host: string | undefined): string {
  if (host === undefined) return '0.0.0.0';
  const nic = networkInterfaces()[host];
  if (nic === undefined) return host;
  const v4 = nic.find((a) => a.family === 'IPv4');
  return (v4 ?? nic[0])?.address ?? host;
}

const shown = (host: string) => (host === '0.0.0.0' ? 'every interface' : host);

function listenerFlags(
  conf: ParsedConf,
  flags: ConfFlags,
  onCommandLine: (flag: keyof ConfFlags) => boolean,
  at: (line: number) => string,
): void {
  const seen = new Map<Kind, ConfListener>();
  let bound: { host: string; line: number } | undefined;
  for (const l of conf.listeners) {
    const kind = kindOf(l, at);
    const first = seen.get(kind);
    if (first !== undefined) {
      throw new UsageError(
        `${at(l.line)}: a second ${kind} listener (the first is on line ${first.line}): mq broker opens one listener of each kind (mqtt, websockets, mqtt over TLS, websockets over TLS)`,
      );
    }
    seen.set(kind, l);
    flags[PORT_FLAG[kind]] = String(l.port ?? 1883);
    // Local-only mode keeps mq's default bind address (loopback), as Mosquitto does.
    if (l.isDefault && l.host === undefined && conf.localOnly) continue;
    const host = bindAddress(l.host);
    if (bound !== undefined && bound.host !== host && !onCommandLine('host')) {
      throw new UsageError(
        `${at(l.line)}: this listener binds ${shown(host)}, the one on line ${bound.line} ${shown(bound.host)}: mq broker binds every listener to one address (give both the same, or --host)`,
      );
    }
    bound ??= { host, line: l.line };
  }
  if (bound !== undefined) flags.host = bound.host;
  if (conf.listeners.length > 0 && !seen.has('mqtt')) flags.port = null;
}

/** The TLS listeners (mqtt and websockets) share one certificate and client-certificate settings. */
function tlsFlags(conf: ParsedConf, flags: ConfFlags, at: (line: number) => string): void {
  const tls = conf.listeners.filter((l) => l.certfile !== undefined);
  const [first, second] = tls;
  if (first === undefined) return;
  if (second !== undefined) {
    for (const key of [
      'certfile',
      'keyfile',
      'cafile',
      'requireCertificate',
      'useIdentityAsUsername',
    ] as const) {
      const a = first[key]?.value;
      const b = second[key];
      if (a !== b?.value) {
        throw new UsageError(
          `${at(b?.line ?? second.line)}: the TLS listeners on lines ${first.line} and ${second.line} differ in ${key}: mq broker gives both the same TLS settings`,
        );
      }
    }
  }
  if (first.certfile !== undefined) flags.cert = first.certfile.value;
  if (first.keyfile !== undefined) flags.key = first.keyfile.value;
  if (first.cafile !== undefined) flags.cafile = first.cafile.value;
  const require = first.requireCertificate;
  const identity = first.useIdentityAsUsername;
  if (require?.value === true) {
    if (first.cafile === undefined) {
      throw new UsageError(
        `${at(require.line)}: require_certificate needs a cafile on this listener (the CA of the client certificates)`,
      );
    }
    flags.requireCertificate = true;
  }
  if (identity?.value === true) {
    if (require?.value !== true) {
      throw new UsageError(
        `${at(identity.line)}: use_identity_as_username needs require_certificate true on this listener`,
      );
    }
    flags.useIdentityAsUsername = true;
  }
}

/** Listener settings mq has once for the whole broker: one value (warned when not every listener set it). */
function perListenerLimits(
  conf: ParsedConf,
  flags: ConfFlags,
  warnings: string[],
  at: (line: number) => string,
): void {
  const settings = [
    [
      'maxConnections',
      'max_connections',
      'maxConnections',
      'counts the connections of every listener together',
    ],
    ['maxQos', 'max_qos', 'maxQos', 'applies to every listener'],
    ['maxTopicAlias', 'max_topic_alias', 'topicAliasMax', 'applies to every listener'],
  ] as const;
  for (const [key, name, flag, scope] of settings) {
    // max_connections -1: unlimited, as if not set.
    const set = conf.listeners.flatMap((l) => {
      const s = l[key];
      return s !== undefined && !(key === 'maxConnections' && s.value < 0) ? [s] : [];
    });
    const [first] = set;
    if (first === undefined) continue;
    const other = set.find((s) => s.value !== first.value);
    if (other !== undefined) {
      throw new UsageError(
        `${at(other.line)}: ${name} ${other.value} differs from ${first.value} on line ${first.line}: mq broker has one ${name} for all its listeners`,
      );
    }
    if (set.length < conf.listeners.length) {
      warnings.push(`${at(first.line)}: ${name} ${scope} in mq broker, not just this listener`);
    }
    flags[flag] = String(first.value);
  }
}

/** allow_anonymous, password_file, acl_file: global, or the same for every listener. */
function securityFlags(
  conf: ParsedConf,
  flags: ConfFlags,
  warnings: string[],
  at: (line: number) => string,
): void {
  let security: ConfSecurity = conf.security;
  if (conf.perListenerSettings && conf.listeners.length > 0) {
    const [first, ...rest] = conf.listeners as [ConfListener, ...ConfListener[]];
    for (const l of rest) {
      for (const key of ['allowAnonymous', 'passwordFile', 'aclFile'] as const) {
        if (first.security[key]?.value !== l.security[key]?.value) {
          const name = {
            allowAnonymous: 'allow_anonymous',
            passwordFile: 'password_file',
            aclFile: 'acl_file',
          }[key];
          throw new UsageError(
            `${at(l.security[key]?.line ?? l.line)}: per_listener_settings: the listeners on lines ${first.line} and ${l.line} have different ${name}: mq broker applies one to every listener`,
          );
        }
      }
    }
    security = first.security;
  }
  const anonymous = security.allowAnonymous;
  if (conf.localOnly) {
    // Mosquitto 2 without a listener: loopback only, anonymous clients allowed whatever the file
    // says, beside the password_file's users. (Users given with --auth/--passwd alone keep mq's
    // rule: anonymous clients refused.)
    if (anonymous?.value === false) {
      warnings.push(
        `${at(anonymous.line)}: allow_anonymous false has no effect without a listener (Mosquitto's local-only mode allows anonymous clients; so does mq broker)`,
      );
    }
    if (security.passwordFile !== undefined || anonymous !== undefined) flags.allowAnonymous = 'true';
  } else {
    // Mosquitto 2 with a listener: anonymous clients refused unless allowed.
    flags.allowAnonymous = anonymous?.value === true ? 'true' : 'false';
  }
  if (security.passwordFile !== undefined) flags.passwd = security.passwordFile.value;
  if (security.aclFile !== undefined) flags.acl = security.aclFile.value;
}

function globalFlags(conf: ParsedConf, flags: ConfFlags, at: (line: number) => string): void {
  if (conf.persistence?.value === true) {
    const file = join(conf.persistenceLocation?.value ?? '', conf.persistenceFile?.value ?? 'mosquitto.db');
    if (isMosquittoDb(file)) {
      throw new UsageError(
        `${at(conf.persistence.line)}: ${file} is Mosquitto's own database; mq broker keeps its state in another format and would overwrite it: give mq another persistence_file (or --persist FILE)`,
      );
    }
    flags.persist = file;
  }
  const size = conf.maxPacketSize?.value;
  if (size !== undefined && size < WIRE_MAX) flags.maxPacketSize = String(size);
  const inflight = conf.maxInflightMessages?.value;
  if (inflight !== undefined) flags.maxInflight = inflight <= 0 ? NO_MAX_INFLIGHT : String(inflight);
  const queued = conf.maxQueuedMessages?.value;
  if (queued !== undefined)
    flags.maxQueued = queued <= 0 ? NO_MAX_QUEUED : String(Math.min(queued, 100_000_000));
  // max_keepalive 0: no limit.
  const keepalive = conf.maxKeepalive?.value;
  if (keepalive !== undefined && keepalive > 0) flags.maxKeepalive = String(keepalive);
  if (conf.retainAvailable?.value === false) flags.retain = false;
  if (conf.sysInterval !== undefined) flags.sysInterval = String(conf.sysInterval.value);
}

function isMosquittoDb(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(MOSQUITTO_DB_MAGIC.length);
    const n = readSync(fd, head, 0, head.length, 0);
    return n === head.length && head.equals(MOSQUITTO_DB_MAGIC);
  } finally {
    closeSync(fd);
  }
}
