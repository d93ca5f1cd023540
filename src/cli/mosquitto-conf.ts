/**
 * Mosquitto's configuration file (mosquitto.conf(5), as Mosquitto 2.0 reads it), for
 * `mq broker -c FILE`: the directives mq has an equivalent for, with Mosquitto's scoping.
 *
 * - A line is `name value...`; lines whose first non-blank character is `#` are comments (after a
 *   number or true/false value, a `# ...` is a comment too). Paths are the rest of the line.
 * - `listener PORT [ADDRESS]` starts a listener: the listener-scoped directives that follow
 *   (protocol, certfile, keyfile, cafile, require_certificate, use_identity_as_username,
 *   max_connections, max_qos, max_topic_alias) apply to it. Before the first `listener` they apply
 *   to the default listener, which `port` and `bind_address` configure.
 * - allow_anonymous, password_file and acl_file are global unless `per_listener_settings true`.
 *
 * This module only reads: what the settings mean for mq broker (one listener of each kind, one
 * bind address, allow_anonymous's defaults) is mosquitto-conf-flags.ts's business. A malformed line
 * is a UsageError naming FILE:LINE; a directive of Mosquitto's that mq does not implement is one
 * warning line; one that mq cannot honour without letting in clients Mosquitto would refuse (a
 * CRL, PSK, plugins, mount points...) is an error.
 */
import { quoteTopic } from '../protocol/topic.js';
import { UsageError } from './errors.js';

/** A value and the line it came from. */
export interface At<T> {
  value: T;
  line: number;
}

/** The security settings (global, or per listener with per_listener_settings). */
export interface ConfSecurity {
  allowAnonymous?: At<boolean>;
  passwordFile?: At<string>;
  aclFile?: At<string>;
}

export interface ConfListener {
  /** The `listener` line (the default listener: the first line that configured it). */
  line: number;
  /** The default listener (`port`, `bind_address`, or listener settings before any `listener`). */
  isDefault: boolean;
  /** undefined on the default listener without `port` (1883). */
  port: number | undefined;
  /** Bind address; undefined: every interface. */
  host: string | undefined;
  protocol: 'mqtt' | 'websockets';
  certfile?: At<string>;
  keyfile?: At<string>;
  cafile?: At<string>;
  requireCertificate?: At<boolean>;
  useIdentityAsUsername?: At<boolean>;
  maxConnections?: At<number>;
  maxQos?: At<number>;
  maxTopicAlias?: At<number>;
  security: ConfSecurity;
}

export interface ParsedConf {
  file: string;
  /** Explicit listeners, and the default listener when something configured it. */
  listeners: ConfListener[];
  /** No `listener`, `port` or `bind_address`: Mosquitto 2's local-only mode. */
  localOnly: boolean;
  perListenerSettings: boolean;
  security: ConfSecurity;
  persistence?: At<boolean>;
  persistenceLocation?: At<string>;
  persistenceFile?: At<string>;
  maxPacketSize?: At<number>;
  maxInflightMessages?: At<number>;
  maxQueuedMessages?: At<number>;
  maxKeepalive?: At<number>;
  retainAvailable?: At<boolean>;
  sysInterval?: At<number>;
  /** One line each: `FILE:LINE: ...`. */
  warnings: string[];
}

/** One directive line, split. */
interface Line {
  name: string;
  line: number;
  /** The words after the name, up to a `#` word (a trailing comment). */
  args: string[];
  /** Everything after the name, trimmed (paths may hold spaces and `#`). */
  rest: string;
}

/** Mosquitto directives mq broker ignores with a warning (their absence changes no access decision). */
const IGNORED = new Set([
  'allow_duplicate_messages',
  'allow_zero_length_clientid',
  'auto_id_prefix',
  'autosave_interval',
  'autosave_on_changes',
  'check_retain_source',
  'ciphers',
  'ciphers_tls1.3',
  'connection_messages',
  'dhparamfile',
  'http_dir',
  'include_dir',
  'log_dest',
  'log_facility',
  'log_timestamp',
  'log_timestamp_format',
  'log_type',
  'max_inflight_bytes',
  'max_queued_bytes',
  'max_topic_alias_broker',
  'memory_limit',
  'message_size_limit',
  'persistent_client_expiration',
  'pid_file',
  'queue_qos0_messages',
  'quic_log_level',
  'retry_interval',
  'set_tcp_nodelay',
  'socket_domain',
  'tls_engine',
  'tls_engine_kpass_sha1',
  'tls_keyform',
  'upgrade_outgoing_qos',
  'user',
  'websockets_headers_size',
  'websockets_log_level',
]);

/** Bridge directives: ignored together, with one warning. */
const BRIDGE = new Set([
  'address',
  'addresses',
  'cleansession',
  'clientid',
  'connection',
  'idle_timeout',
  'keepalive_interval',
  'local_cleansession',
  'local_clientid',
  'local_password',
  'local_username',
  'notification_topic',
  'notifications',
  'notifications_local_only',
  'password',
  'remote_clientid',
  'remote_password',
  'remote_username',
  'restart_timeout',
  'round_robin',
  'start_type',
  'threshold',
  'topic',
  'try_private',
  'username',
]);

/** Mosquitto directives mq broker refuses: ignoring them would admit what Mosquitto refuses. */
const REFUSED: Record<string, string> = {
  accept_protocol_versions: 'protocol versions cannot be restricted',
  auth_plugin: 'authentication plugins are not supported',
  plugin: 'plugins are not supported',
  global_plugin: 'plugins are not supported',
  bind_interface: 'listeners bind to an address, not an interface (use listener PORT ADDRESS)',
  capath: 'CA directories are not supported: give the CAs in one cafile',
  clientid_prefixes: 'client id prefixes cannot be enforced',
  crlfile: 'certificate revocation lists are not supported',
  mount_point: 'mount points are not supported',
  psk_file: 'TLS-PSK is not supported',
  psk_hint: 'TLS-PSK is not supported',
  use_subject_as_username: 'only use_identity_as_username (the CN) is supported',
  use_username_as_clientid: 'user names cannot replace client ids',
  websockets_origin: 'WebSocket origins cannot be restricted',
};

/** Reads a mosquitto.conf text (`file` names it in messages); throws UsageError on a malformed line. */
export function parseMosquittoConf(text: string, file: string): ParsedConf {
  const reader = new ConfReader(file);
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const body = raw.replace(/\r$/, '').trim();
    if (body === '' || body.startsWith('#')) continue;
    const [name = '', ...words] = body.split(/[ \t]+/);
    const comment = words.findIndex((w) => w.startsWith('#'));
    reader.directive({
      name,
      line: lineNo,
      args: comment < 0 ? words : words.slice(0, comment),
      rest: body.slice(name.length).trim(),
    });
  }
  return reader.finish();
}

class ConfReader {
  private readonly file: string;
  private readonly conf: ParsedConf;
  private readonly defaultListener: ConfListener;
  private defaultUsed = false;
  private current: ConfListener;
  /** A security directive was seen (per_listener_settings must come first). */
  private securitySeen = false;
  /** Ignored directive -> the lines it was on (one warning each, at the end). */
  private readonly ignored = new Map<string, number[]>();

  constructor(file: string) {
    this.file = file;
    this.defaultListener = newListener(0, true, undefined, undefined);
    this.current = this.defaultListener;
    this.conf = {
      file,
      listeners: [],
      localOnly: true,
      perListenerSettings: false,
      security: {},
      warnings: [],
    };
  }

  finish(): ParsedConf {
    if (this.defaultUsed) this.conf.listeners.unshift(this.defaultListener);
    for (const [name, lines] of this.ignored) {
      const also =
        lines.length > 1 ? ` (also on line${lines.length > 2 ? 's' : ''} ${lines.slice(1).join(', ')})` : '';
      const what = name === 'connection' ? 'bridges (connection, address, topic...) are' : `${name} is`;
      this.conf.warnings.push(
        `${this.file}:${lines[0]}: ${what} not implemented by mq broker: ignored${also}`,
      );
    }
    return this.conf;
  }

  directive(d: Line): void {
    const handler = HANDLERS[d.name];
    if (handler !== undefined) {
      handler(this, d);
      return;
    }
    const refused = REFUSED[d.name];
    if (refused !== undefined) throw this.error(d, `${d.name}: ${refused} by mq broker`);
    if (d.name.startsWith('auth_opt_') || d.name.startsWith('plugin_opt_')) {
      throw this.error(d, `${quoteTopic(d.name)}: plugins are not supported by mq broker`);
    }
    if (IGNORED.has(d.name) || BRIDGE.has(d.name) || d.name.startsWith('bridge_')) {
      const key = IGNORED.has(d.name) ? d.name : 'connection';
      const lines = this.ignored.get(key) ?? [];
      lines.push(d.line);
      this.ignored.set(key, lines);
      return;
    }
    throw this.error(d, `unknown directive ${quoteTopic(d.name)} (not a Mosquitto option either)`);
  }

  error(d: Line, message: string): UsageError {
    return new UsageError(`${this.file}:${d.line}: ${message}`);
  }

  // ---- values --------------------------------------------------------------------------------

  /** The one word of a value (a missing or second word is an error). */
  word(d: Line, what: string): string {
    const [first, second] = d.args;
    if (first === undefined) throw this.error(d, `${d.name} needs ${what}`);
    if (second !== undefined)
      throw this.error(d, `${d.name}: unexpected ${quoteTopic(second)} after the value`);
    return first;
  }

  int(d: Line, min: number, max: number): At<number> {
    const text = this.word(d, `a whole number from ${min} to ${max}`);
    const n = /^[+-]?\d{1,12}$/.test(text) ? Number(text) : Number.NaN;
    if (!(n >= min && n <= max)) {
      throw this.error(d, `${d.name}: ${quoteTopic(text)} is not a whole number from ${min} to ${max}`);
    }
    return { value: n, line: d.line };
  }

  bool(d: Line): At<boolean> {
    const text = this.word(d, 'true or false');
    if (text === 'true' || text === '1') return { value: true, line: d.line };
    if (text === 'false' || text === '0') return { value: false, line: d.line };
    throw this.error(d, `${d.name}: ${quoteTopic(text)} is not true or false`);
  }

  /** A path or name: the rest of the line. Given twice in one scope: an error, as in Mosquitto. */
  string(d: Line, before: At<string> | undefined): At<string> {
    if (d.rest === '') throw this.error(d, `${d.name} needs a value`);
    if (before !== undefined) throw this.error(d, `${d.name} given twice (first on line ${before.line})`);
    return { value: d.rest, line: d.line };
  }

  // ---- scopes --------------------------------------------------------------------------------

  get parsed(): ParsedConf {
    return this.conf;
  }

  /**
   * The listener the listener-scoped directives apply to now. Before the first `listener` that is
   * the default listener, which exists (as in Mosquitto) once a directive gives it a value other
   * than the default one (`nonDefault`), or `port` / `bind_address` configure it.
   */
  listener(d: Line, nonDefault = true): ConfListener {
    if (this.current === this.defaultListener && nonDefault) this.useDefault(d.line);
    return this.current;
  }

  useDefault(line: number): ConfListener {
    if (!this.defaultUsed) {
      this.defaultUsed = true;
      this.defaultListener.line = line;
    }
    return this.defaultListener;
  }

  startListener(d: Line): void {
    const [portText, address, extra] = d.args;
    if (portText === undefined) throw this.error(d, 'listener needs a port: listener PORT [ADDRESS]');
    if (extra !== undefined)
      throw this.error(d, `listener: unexpected ${quoteTopic(extra)} after the address`);
    const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
    if (!(port >= 0 && port <= 65_535))
      throw this.error(d, `listener: ${quoteTopic(portText)} is not a port (0-65535)`);
    if (port === 0) {
      throw this.error(d, 'listener 0 PATH (a unix socket) is not supported by mq broker: give a TCP port');
    }
    this.conf.localOnly = false;
    this.current = newListener(d.line, false, port, address);
    this.conf.listeners.push(this.current);
  }

  /** Where a security directive goes: the current listener with per_listener_settings, else global. */
  security(d: Line): ConfSecurity {
    this.securitySeen = true;
    return this.conf.perListenerSettings ? this.listener(d).security : this.conf.security;
  }

  setPerListener(d: Line): void {
    const v = this.bool(d);
    if (this.conf.perListenerSettings) return; // Once true, it stays (as in Mosquitto).
    if (v.value && this.securitySeen) {
      throw this.error(
        d,
        'per_listener_settings must come before allow_anonymous, password_file and acl_file',
      );
    }
    this.conf.perListenerSettings = v.value;
  }

  /** Directives mq accepts but does nothing for, with a warning (e.g. tls_version tlsv1.1). */
  note(d: Line, message: string): void {
    this.conf.warnings.push(`${this.file}:${d.line}: ${message}`);
  }
}

function newListener(line: number, isDefault: boolean, port: number | undefined, host: string | undefined) {
  const l: ConfListener = { line, isDefault, port, host, protocol: 'mqtt', security: {} };
  return l;
}

type Handler = (r: ConfReader, d: Line) => void;

/** certfile, keyfile, cafile: a path on the current listener. */
function listenerFile(key: 'certfile' | 'keyfile' | 'cafile'): Handler {
  return (r, d) => {
    const l = r.listener(d);
    l[key] = r.string(d, l[key]);
  };
}

/** password_file, acl_file: global, or the current listener's with per_listener_settings. */
function securityFile(key: 'passwordFile' | 'aclFile'): Handler {
  return (r, d) => {
    const s = r.security(d);
    s[key] = r.string(d, s[key]);
  };
}

function maxQos(r: ConfReader, d: Line): void {
  const v = r.int(d, 0, 2);
  r.listener(d, v.value !== 2).maxQos = v;
}

const HANDLERS: Record<string, Handler> = {
  listener: (r, d) => r.startListener(d),
  port: (r, d) => {
    const l = r.useDefault(d.line);
    l.port = r.int(d, 1, 65_535).value;
    r.parsed.localOnly = false;
  },
  bind_address: (r, d) => {
    const l = r.useDefault(d.line);
    l.host = r.string(d, l.host === undefined ? undefined : { value: l.host, line: l.line }).value;
    r.parsed.localOnly = false;
  },
  protocol: (r, d) => {
    const p = r.word(d, 'mqtt or websockets');
    if (p !== 'mqtt' && p !== 'websockets')
      throw r.error(d, `protocol: ${quoteTopic(p)} is not mqtt or websockets`);
    r.listener(d, p !== 'mqtt').protocol = p;
  },
  certfile: listenerFile('certfile'),
  keyfile: listenerFile('keyfile'),
  cafile: listenerFile('cafile'),
  require_certificate: (r, d) => {
    const v = r.bool(d);
    r.listener(d, v.value).requireCertificate = v;
  },
  use_identity_as_username: (r, d) => {
    const v = r.bool(d);
    r.listener(d, v.value).useIdentityAsUsername = v;
  },
  tls_version: (r, d) => {
    const v = r.word(d, 'tlsv1.3, tlsv1.2 or tlsv1.1');
    if (v === 'tlsv1.3')
      throw r.error(d, 'tls_version tlsv1.3 is not supported by mq broker (it accepts TLS 1.2 and 1.3)');
    if (v === 'tlsv1.1') r.note(d, 'tls_version tlsv1.1: mq broker accepts TLS 1.2 and 1.3 only');
    else if (v !== 'tlsv1.2')
      throw r.error(d, `tls_version: ${quoteTopic(v)} is not tlsv1.3, tlsv1.2 or tlsv1.1`);
  },
  max_connections: (r, d) => {
    const v = r.int(d, -1_000_000_000, 1_000_000_000);
    r.listener(d, v.value >= 0).maxConnections = v;
  },
  max_qos: (r, d) => maxQos(r, d),
  maximum_qos: (r, d) => maxQos(r, d),
  max_topic_alias: (r, d) => {
    const v = r.int(d, 0, 65_535);
    r.listener(d, v.value !== 10).maxTopicAlias = v;
  },
  per_listener_settings: (r, d) => r.setPerListener(d),
  allow_anonymous: (r, d) => {
    r.security(d).allowAnonymous = r.bool(d);
  },
  password_file: securityFile('passwordFile'),
  acl_file: securityFile('aclFile'),
  persistence: (r, d) => {
    r.parsed.persistence = r.bool(d);
  },
  retained_persistence: (r, d) => {
    r.parsed.persistence = r.bool(d);
  },
  persistence_location: (r, d) => {
    r.parsed.persistenceLocation = r.string(d, r.parsed.persistenceLocation);
  },
  persistence_file: (r, d) => {
    r.parsed.persistenceFile = r.string(d, r.parsed.persistenceFile);
  },
  // Mosquitto: at least 20 bytes.
  max_packet_size: (r, d) => {
    r.parsed.maxPacketSize = r.int(d, 20, 2_147_483_647);
  },
  max_inflight_messages: (r, d) => {
    r.parsed.maxInflightMessages = r.int(d, -2_147_483_648, 65_535);
  },
  max_queued_messages: (r, d) => {
    r.parsed.maxQueuedMessages = r.int(d, -2_147_483_648, 2_147_483_647);
  },
  max_keepalive: (r, d) => {
    r.parsed.maxKeepalive = r.int(d, 0, 65_535);
  },
  retain_available: (r, d) => {
    r.parsed.retainAvailable = r.bool(d);
  },
  sys_interval: (r, d) => {
    r.parsed.sysInterval = r.int(d, 0, 65_535);
  },
};
