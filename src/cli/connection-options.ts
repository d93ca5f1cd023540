/**
 * The shared connection options of pub, sub, req (and bench): one definition of every flag in
 * CLI.md's "Shared connection options" table, and one resolver that merges flags, environment
 * (MQ_URL, MQ_USERNAME, MQ_PASSWORD, MQ_PROFILE) and a profile from the config file (profile.ts)
 * into ClientOptions, one step per section (layers, transport, paths, client id, session,
 * credentials, -D, will, TLS files, behaviour). Precedence: flags > environment > profile >
 * defaults. Every mistake is one UsageError. Kept light at load time: no TLS, no ws, no chalk here.
 */
import { type Command, Option } from 'commander';
import { type ScramMethod, saslPrep } from '../auth/scram.js';
import { scramAuth, scramMethod } from '../client/enhanced-auth.js';
import type { ClientOptions, TlsOptions, TransportKind } from '../client/index.js';
import type { ProtocolVersion, QoS, Will } from '../protocol/index.js';
import { validateTopicName } from '../protocol/topic.js';
import { type ParsedUrl, parseBrokerUrl } from './broker-url.js';
import { newCommand } from './command.js';
import { UsageError } from './errors.js';
import { PEM_LIMIT } from './io.js';
import { collect } from './options.js';
import { loadProfile, type Profile } from './profile.js';
import { emptyPacketProperties, type PacketProperties, parsePropertyFlags } from './properties-flag.js';
import {
  MAX_SECONDS,
  parseBinaryValue,
  parseInteger,
  parseQos,
  parseSeconds,
  readFileValue,
} from './values.js';

/**
 * The shared flags that say how to reach a broker beyond where it is (deadline, WebSocket, TLS):
 * what `mq bench` and `mq proxy`'s upstream take alongside their own.
 */
export const TRANSPORT_FLAGS = [
  'connectTimeout',
  'wsPath',
  'wsHeader',
  'cafile',
  'cert',
  'key',
  'insecure',
  'tlsVersion',
  'alpn',
  'servername',
] as const satisfies readonly (keyof ConnectionFlags)[];

/** What commander hands over for the shared flags (all optional; defaults are applied here). */
export interface ConnectionFlags {
  host?: string;
  port?: string;
  url?: string;
  protocolVersion?: string;
  id?: string;
  idPrefix?: string;
  keepalive?: string;
  clean?: boolean;
  sessionExpiry?: string;
  username?: string;
  password?: string;
  authMethod?: string;
  willTopic?: string;
  willPayload?: string;
  willQos?: string;
  willRetain?: boolean;
  cafile?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  tlsVersion?: string;
  alpn?: string[];
  servername?: string;
  wsPath?: string;
  wsHeader?: string[];
  property?: string[];
  reconnect?: boolean | string;
  connectTimeout?: string;
  trace?: boolean | string;
  /** mosquitto's -d: the same as --trace. */
  debug?: boolean;
  profile?: string;
  quiet?: boolean;
  json?: boolean;
  /** pub's -M, read when the command defines it. */
  maxInflight?: string | number;
}

/** ClientOptions plus what the commands need from the same flags. */
export interface ResolvedConnection extends ClientOptions {
  /** The topic in the path of the URL (`mqtt://host/a/b` -> `a/b`), for pub/sub to use without -t. */
  topic?: string;
  /** Every -D, per packet (connect and will ones are already applied to this object). */
  properties: PacketProperties;
  quiet: boolean;
  json: boolean;
}

/**
 * Adds every shared connection flag to `cmd`, after mosquitto's -d (--trace by its mosquitto name).
 * `defaults.reconnect`: sub reconnects by default.
 */
export function addConnectionOptions(cmd: Command, defaults: { reconnect: boolean }): Command {
  cmd.addOption(
    new Option('-d, --debug', "print every packet sent and received (mosquitto's -d; same as --trace)"),
  );
  const groups: [string, Option[]][] = [
    [
      'Connection options:',
      [
        new Option('-h, --host <host>', 'broker host (default: localhost, or from -L / MQ_URL)'),
        new Option('-p, --port <port>', 'port (default: 1883; 8883 with TLS; 80/443 for ws/wss)'),
        new Option(
          '-L, --url <url>',
          'broker URL: mqtt://, mqtts://, ws://, wss://, unix:// [user[:pass]@]host[:port][/topic or /ws-path]',
        ),
        new Option('-V, --protocol-version <version>', 'MQTT version: 3.1, 3.1.1 or 5 (default: 5)'),
        new Option('-i, --id <id>', 'client id (default: mq- and 8 random hex digits)'),
        new Option('-I, --id-prefix <prefix>', 'client id prefix; random hex digits are appended'),
        new Option('-k, --keepalive <seconds>', 'keepalive interval, 0 = off (default: 60)'),
        new Option('-u, --username <user>', 'user name (or MQ_USERNAME)'),
        new Option('-P, --password <pass>', 'password (or MQ_PASSWORD, which keeps it out of ps)'),
        new Option(
          '--auth-method <method>',
          'v5 enhanced authentication with -u/-P: SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512 (the password is not sent)',
        ),
        new Option('--profile <name>', 'use a profile from ~/.config/mq/config.json (or MQ_PROFILE)'),
        new Option('--connect-timeout <seconds>', 'give up when no CONNACK arrives in time (default: 10)'),
        new Option('--ws-path <path>', 'WebSocket path (default: /mqtt)'),
        new Option('--ws-header <k=v>', 'extra WebSocket upgrade header (repeatable)').argParser(collect),
      ],
    ],
    [
      'TLS options:',
      [
        new Option('--cafile <file>', 'trust the CAs in this PEM file (turns TLS on)'),
        new Option('--cert <file>', 'client certificate (PEM), with --key'),
        new Option('--key <file>', 'client private key (PEM)'),
        new Option('--insecure', "do not verify the server's certificate"),
        new Option('--tls-version <version>', 'minimum TLS version: tlsv1.2 or tlsv1.3'),
        new Option('--alpn <protocol>', 'ALPN protocol to offer (repeatable)').argParser(collect),
        new Option('--servername <name>', 'TLS server name (SNI and certificate check)'),
      ],
    ],
    [
      'Session, will and diagnostics:',
      [
        new Option(
          '-c, --no-clean',
          'persistent session: clean start off (v5: session never expires unless -x)',
        ),
        new Option('-x, --session-expiry <seconds>', 'v5 session expiry interval, or "never" (default: 0)'),
        new Option('--will-topic <topic>', 'last will topic'),
        new Option('--will-payload <value>', 'last will payload (text, hex:, base64:, @file)'),
        new Option('--will-qos <qos>', 'last will QoS (default: 0)'),
        new Option('--will-retain', 'retain the last will'),
        new Option(
          '-D, --property <values...>',
          'MQTT 5 property: PACKET NAME VALUE (connect|publish|subscribe|unsubscribe|disconnect|will; user-property takes KEY VALUE)',
        ),
        new Option(
          '--reconnect [min..max]',
          'reconnect with backoff and jitter between min and max seconds (1..30 when no range is given)',
        ).default(defaults.reconnect, defaults.reconnect ? 'on' : 'off'),
        new Option('--no-reconnect', 'exit when the connection is lost'),
        new Option(
          '--trace [hex]',
          'print every packet sent and received to stderr (--trace=hex adds bytes); passwords and authentication data are masked',
        ),
        new Option('--quiet', 'no diagnostics on stderr'),
        new Option('--json', 'machine output: one JSON object per line'),
      ],
    ],
  ];
  for (const [heading, options] of groups) {
    for (const o of options) cmd.addOption(o.helpGroup(heading));
  }
  return cmd;
}

/**
 * Some of the shared connection flags, by attribute name ('host', 'cafile', 'clean'...), as fresh
 * Options in the table's order and help groups: for the commands that take only part of the table
 * (bench, proxy's upstream).
 */
export function someConnectionOptions(names: readonly string[]): Option[] {
  const all = addConnectionOptions(newCommand('shared'), { reconnect: false }).options;
  return all.filter((o) => names.includes(o.attributeName()));
}

// --- resolving -------------------------------------------------------------------------------

/** `-V` values: 3.1, 31, mqttv31, 3 / 3.1.1, 311, mqttv311, 4 / 5, 5.0, mqttv5, mqttv50. */
export function parseVersion(text: string, what = '-V'): ProtocolVersion {
  const t = text
    .trim()
    .toLowerCase()
    .replace(/^mqttv?/, '');
  if (t === '3.1' || t === '31' || t === '3') return 3;
  if (t === '3.1.1' || t === '311' || t === '4') return 4;
  if (t === '5' || t === '5.0' || t === '50') return 5;
  throw new UsageError(`${what}: unknown MQTT version '${text}' (use 3.1, 3.1.1 or 5)`);
}

/** `--reconnect` value: true (1..30 s), `MIN..MAX` or `MIN` seconds. */
export function parseReconnect(
  value: boolean | string | undefined,
): false | { minMs: number; maxMs: number } {
  if (value === undefined || value === false) return false;
  if (value === true) return { minMs: 1000, maxMs: 30_000 };
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:\.\.\s*(\d+(?:\.\d+)?))?\s*$/.exec(value);
  const min = m ? Number(m[1]) : Number.NaN;
  const max = m?.[2] !== undefined ? Number(m[2]) : Math.max(30, min);
  if (!Number.isFinite(min) || !Number.isFinite(max) || min <= 0 || max < min || max > MAX_SECONDS) {
    throw new UsageError(
      `--reconnect: '${value}' is not a range of seconds MIN..MAX with 0 < MIN <= MAX <= ${MAX_SECONDS} (e.g. --reconnect 0.5..10)`,
    );
  }
  return { minMs: Math.round(min * 1000), maxMs: Math.round(max * 1000) };
}

/** 8 random hex digits (a client id needs no cryptographic randomness; node:crypto costs start-up time). */
function randomId(): string {
  return Math.floor(Math.random() * 0x1_0000_0000)
    .toString(16)
    .padStart(8, '0');
}

const DEFAULT_PORT: Record<TransportKind, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443, unix: 0 };

interface Layer {
  transport?: TransportKind;
  host?: string;
  port?: number;
  path?: string;
  topic?: string;
  username?: string;
  password?: string;
}

/** A URL replaces where to connect entirely (a port from a lower layer does not survive a new URL). */
function urlLayer(url: ParsedUrl): Layer {
  const layer: Layer = {
    transport: url.transport,
    host: url.host,
    port: url.port,
    path: url.path,
    topic: url.topic,
  };
  if (url.username !== undefined) layer.username = url.username;
  if (url.password !== undefined) layer.password = url.password;
  return layer;
}

function dropUndefined(layer: Layer): Layer {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(layer)) if (v !== undefined) out[k] = v;
  return out as Layer;
}

/** Where to connect and as whom: the layers, lowest precedence first (profile, environment, flags), merged. */
function mergeLayers(
  opts: ConnectionFlags,
  profile: Profile,
  profileName: string | undefined,
  env: NodeJS.ProcessEnv,
): Layer {
  const layers: Layer[] = [];
  if (profile.url !== undefined)
    layers.push(urlLayer(parseBrokerUrl(profile.url, `profile ${profileName} url`)));
  layers.push(
    dropUndefined({
      host: profile.host,
      port:
        profile.port !== undefined
          ? parseInteger(profile.port, `profile ${profileName} port`, 1, 65535)
          : undefined,
      username: profile.username,
      password: profile.password,
    }),
  );
  if (env.MQ_URL) layers.push(urlLayer(parseBrokerUrl(env.MQ_URL, 'MQ_URL')));
  layers.push(
    dropUndefined({ username: env.MQ_USERNAME || undefined, password: env.MQ_PASSWORD || undefined }),
  );
  if (opts.url !== undefined) layers.push(urlLayer(parseBrokerUrl(opts.url, '-L')));
  layers.push(
    dropUndefined({
      host: opts.host,
      port: opts.port !== undefined ? parseInteger(opts.port, '-p', 1, 65535) : undefined,
      username: opts.username,
      password: opts.password,
    }),
  );
  return Object.assign({}, ...layers);
}

/** The TLS files and switches, from the flags or the profile. */
export interface TlsChoice {
  cafile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  insecure: boolean;
}

/** The transport: the URL's, turned to TLS (mqtts, wss) when any TLS flag or profile TLS file is given. */
function chooseTransport(opts: ConnectionFlags, merged: Layer, tls: TlsChoice): TransportKind {
  const wantsTls =
    tls.cafile !== undefined ||
    tls.certFile !== undefined ||
    tls.keyFile !== undefined ||
    tls.insecure ||
    opts.tlsVersion !== undefined ||
    opts.alpn !== undefined ||
    opts.servername !== undefined;
  let transport: TransportKind = merged.transport ?? 'mqtt';
  if (wantsTls && transport === 'mqtt') transport = 'mqtts';
  if (wantsTls && transport === 'ws') transport = 'wss';
  if (wantsTls && transport === 'unix')
    throw new UsageError('TLS flags (--cafile, --cert, ...) do not apply to unix://');
  return transport;
}

/** The unix socket path or the WebSocket path and headers. */
function applyPaths(out: ResolvedConnection, opts: ConnectionFlags, merged: Layer): void {
  const transport = out.transport;
  if (transport === 'unix') {
    out.path = merged.path;
  } else if (transport === 'ws' || transport === 'wss') {
    out.path = opts.wsPath ?? merged.path ?? '/mqtt';
    if (!out.path.startsWith('/')) out.path = `/${out.path}`;
  } else if (opts.wsPath !== undefined) {
    throw new UsageError('--ws-path needs a WebSocket URL: -L ws://host:port or wss://');
  }
  if (opts.wsHeader !== undefined) {
    if (transport !== 'ws' && transport !== 'wss') {
      throw new UsageError('--ws-header needs a WebSocket URL: -L ws://host:port or wss://');
    }
    const headers: [string, string][] = [];
    for (const h of opts.wsHeader) {
      const eq = h.indexOf('=');
      if (eq <= 0) throw new UsageError(`--ws-header: '${h}' is not NAME=VALUE`);
      headers.push([h.slice(0, eq).trim(), h.slice(eq + 1)]);
    }
    // fromEntries defines own properties: a header named __proto__ is a header, not a prototype.
    out.wsHeaders = Object.fromEntries(headers);
  }
}

/** The client id (-i, -I, the profile's, or a random mq-xxxxxxxx), checked against the version. */
function applyClientId(out: ResolvedConnection, opts: ConnectionFlags, profile: Profile): void {
  if (opts.id !== undefined && opts.idPrefix !== undefined) {
    throw new UsageError('-i and -I cannot be used together: -i sets the whole client id, -I a prefix');
  }
  out.clientId =
    opts.id ??
    (opts.idPrefix !== undefined ? `${opts.idPrefix}${randomId()}` : (profile.id ?? `mq-${randomId()}`));
  if (out.version === 3 && (out.clientId.length === 0 || out.clientId.length > 23)) {
    throw new UsageError(
      `-i: MQTT 3.1 needs a client id of 1 to 23 characters ('${out.clientId}' has ${out.clientId.length}); use -V 3.1.1 or 5 for longer ones`,
    );
  }
  if (out.clientId === '' && !out.clean && out.version !== 5) {
    throw new UsageError(
      '-c needs a client id (-i) in MQTT 3.1.1: the broker keeps the session under that id',
    );
  }
}

/** Keepalive and session expiry. */
function applySession(
  out: ResolvedConnection,
  opts: ConnectionFlags,
  profile: Profile,
  profileName: string | undefined,
): void {
  if (opts.keepalive !== undefined) out.keepalive = parseInteger(opts.keepalive, '-k', 0, 65535);
  else if (profile.keepalive !== undefined)
    out.keepalive = parseInteger(profile.keepalive, `profile ${profileName} keepalive`, 0, 65535);
  if (opts.sessionExpiry !== undefined) {
    if (out.version !== 5)
      throw new UsageError('-x (session expiry) needs MQTT 5 (-V 5); use -c for a persistent session');
    out.sessionExpiry =
      opts.sessionExpiry === 'never' ? 0xffffffff : parseInteger(opts.sessionExpiry, '-x', 0, 0xffffffff);
  } else if (!out.clean && out.version === 5) {
    // As mosquitto_sub: -c alone asks for a session that outlives the connection.
    out.sessionExpiry = 0xffffffff;
  }
}

/** User name and password from the merged layers. */
function applyCredentials(out: ResolvedConnection, merged: Layer): void {
  if (merged.username !== undefined) out.username = merged.username;
  if (merged.password !== undefined) {
    if (merged.username === undefined && out.version !== 5) {
      throw new UsageError('-P needs -u in MQTT 3.1/3.1.1 (a password without a user name) [MQTT-3.1.2-22]');
    }
    out.password = Buffer.from(merged.password, 'utf8');
  }
}

/**
 * --auth-method: SCRAM (v5 enhanced authentication) as -u with -P; the password then proves the
 * user without being sent, and the broker must prove it knows it too.
 */
function applyAuthMethod(out: ResolvedConnection, opts: ConnectionFlags): void {
  const scram = scramLogin(out, opts.authMethod);
  if (scram === undefined) return;
  out.auth = scramAuth(scram.method, scram.username, scram.password);
  delete out.password;
}

/**
 * `--auth-method` checked against the resolved version and credentials (UsageError otherwise):
 * the SCRAM method, user and password, or undefined without the flag. mq bench, whose raw
 * connections do their own exchange, takes these as they are.
 */
export function scramLogin(
  out: ResolvedConnection,
  authMethod: string | undefined,
): { method: ScramMethod; username: string; password: string } | undefined {
  if (authMethod === undefined) return undefined;
  const method = scramMethod(authMethod);
  if (method === undefined) {
    throw new UsageError(`--auth-method: '${authMethod}' is not SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512`);
  }
  if (out.version !== 5) {
    throw new UsageError('--auth-method needs MQTT 5 (-V 5): enhanced authentication is new in 5.0');
  }
  if (out.username === undefined || out.password === undefined) {
    throw new UsageError(`--auth-method ${method} needs -u and -P (or MQ_USERNAME and MQ_PASSWORD)`);
  }
  try {
    saslPrep(out.username);
  } catch (err) {
    throw new UsageError(`-u: SCRAM cannot carry this user name: ${(err as Error).message}`);
  }
  return { method, username: out.username, password: out.password.toString('utf8') };
}

/** Every -D, per packet; the CONNECT ones go on the connection (a session expiry one too, unless -x). */
async function applyPropertyFlags(out: ResolvedConnection, opts: ConnectionFlags): Promise<void> {
  if (opts.property === undefined || opts.property.length === 0) return;
  if (out.version !== 5) throw new UsageError('-D sets MQTT 5 properties: it needs -V 5');
  out.properties = await parsePropertyFlags(opts.property);
  const cp = out.properties.connect;
  if (Object.keys(cp).length > 0) {
    out.connectProperties = cp;
    if (cp.sessionExpiryInterval !== undefined && opts.sessionExpiry === undefined) {
      out.sessionExpiry = cp.sessionExpiryInterval;
    }
  }
}

/** The last will from --will-* and -D will ...; a will part without --will-topic is a mistake. */
async function applyWill(out: ResolvedConnection, opts: ConnectionFlags): Promise<void> {
  const willGiven = opts.willPayload !== undefined || opts.willQos !== undefined || opts.willRetain === true;
  if (opts.willTopic !== undefined) {
    const problem = validateTopicName(opts.willTopic, out.version);
    if (problem) throw new UsageError(`--will-topic: ${problem.message}`);
    const will: Will = {
      topic: opts.willTopic,
      payload:
        opts.willPayload !== undefined
          ? await parseBinaryValue(opts.willPayload, '--will-payload')
          : Buffer.alloc(0),
      qos: opts.willQos !== undefined ? (parseQos(opts.willQos, '--will-qos') as QoS) : 0,
      retain: opts.willRetain ?? false,
    };
    if (Object.keys(out.properties.will).length > 0) will.properties = out.properties.will;
    out.will = will;
  } else if (willGiven) {
    throw new UsageError('will payload, QoS or retain given, but no will topic (--will-topic)');
  } else if (Object.keys(out.properties.will).length > 0) {
    throw new UsageError('-D will ... given, but no will topic (--will-topic)');
  }
}

/**
 * The TLS options of an mqtts/wss connection: the files read, the versions and names checked
 * (`opts`: --tls-version, --alpn, --servername). `flag` names the flags in messages (mq broker's
 * --bridge-cafile, --bridge-cert... come here too).
 */
export async function tlsOptions(
  opts: Pick<ConnectionFlags, 'tlsVersion' | 'alpn' | 'servername'>,
  choice: TlsChoice,
  flag: (name: string) => string = (name) => `--${name}`,
): Promise<TlsOptions> {
  const { cafile, certFile, keyFile } = choice;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(
      certFile !== undefined
        ? `${flag('cert')} needs ${flag('key')} (the private key of the certificate)`
        : `${flag('key')} needs ${flag('cert')}`,
    );
  }
  const t: TlsOptions = { insecure: choice.insecure };
  if (cafile !== undefined) {
    t.ca = await readFileValue(cafile, flag('cafile'), PEM_LIMIT);
    t.caFile = cafile;
  }
  if (certFile !== undefined && keyFile !== undefined) {
    t.cert = await readFileValue(certFile, flag('cert'), PEM_LIMIT);
    t.key = await readFileValue(keyFile, flag('key'), PEM_LIMIT);
    t.certFile = certFile;
    t.keyFile = keyFile;
  }
  if (opts.tlsVersion !== undefined) {
    const v = opts.tlsVersion.toLowerCase().replace(/^tlsv?/, '');
    if (v === '1.2') t.minVersion = 'TLSv1.2';
    else if (v === '1.3') t.minVersion = 'TLSv1.3';
    else throw new UsageError(`${flag('tls-version')}: '${opts.tlsVersion}' is not tlsv1.2 or tlsv1.3`);
  }
  if (opts.alpn !== undefined) t.alpn = opts.alpn.flatMap((a) => a.split(',')).filter((a) => a !== '');
  if (opts.servername !== undefined) t.servername = opts.servername;
  return t;
}

/** --reconnect, --connect-timeout, -M, --trace (or -d). */
async function applyBehaviour(out: ResolvedConnection, opts: ConnectionFlags): Promise<void> {
  out.reconnect = parseReconnect(opts.reconnect);
  if (opts.connectTimeout !== undefined) {
    const s = parseSeconds(opts.connectTimeout, '--connect-timeout');
    if (s <= 0) throw new UsageError('--connect-timeout must be more than 0 seconds');
    out.connectTimeoutMs = Math.round(s * 1000);
  }
  if (opts.maxInflight !== undefined) out.maxInflight = parseInteger(opts.maxInflight, '-M', 1, 65535);
  // mosquitto's -d is --trace.
  const traceFlag = opts.debug === true && opts.trace === undefined ? true : opts.trace;
  const trace = await traceWriter({ trace: traceFlag }, out.version);
  if (trace) out.trace = trace;
}

/**
 * Merges flags, environment and profile into ClientOptions (plus the URL topic and every -D).
 * Every mistake is a UsageError, checked in the order of the steps below. `env` is injectable for
 * tests.
 */
export async function resolveConnectionOptions(
  opts: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedConnection> {
  const profileName = opts.profile ?? (env.MQ_PROFILE || undefined);
  const profile = profileName !== undefined ? await loadProfile(profileName, env) : {};
  const merged = mergeLayers(opts, profile, profileName, env);
  const version =
    opts.protocolVersion !== undefined
      ? parseVersion(opts.protocolVersion)
      : profile.version !== undefined
        ? parseVersion(profile.version, `profile ${profileName} version`)
        : 5;
  const tls: TlsChoice = {
    cafile: opts.cafile ?? profile.cafile,
    certFile: opts.cert ?? profile.cert,
    keyFile: opts.key ?? profile.key,
    insecure: opts.insecure ?? profile.insecure ?? false,
  };
  const transport = chooseTransport(opts, merged, tls);
  const out: ResolvedConnection = {
    transport,
    host: merged.host ?? 'localhost',
    port: merged.port ?? DEFAULT_PORT[transport],
    version,
    clientId: '',
    keepalive: 60,
    clean: opts.clean ?? true,
    properties: emptyPacketProperties(),
    quiet: opts.quiet ?? false,
    json: opts.json ?? false,
  };
  if (merged.topic !== undefined) out.topic = merged.topic;
  applyPaths(out, opts, merged);
  applyClientId(out, opts, profile);
  applySession(out, opts, profile, profileName);
  applyCredentials(out, merged);
  applyAuthMethod(out, opts);
  await applyPropertyFlags(out, opts);
  await applyWill(out, opts);
  if (transport === 'mqtts' || transport === 'wss') out.tls = await tlsOptions(opts, tls);
  await applyBehaviour(out, opts);
  return out;
}

// --- --trace ---------------------------------------------------------------------------------

/**
 * The `trace` callback for `--trace` (`--trace=hex` adds the bytes): one line per packet on
 * stderr, `-> ` for sent, `<- ` for received, passwords and Authentication Data masked ('*').
 * undefined when --trace is off.
 */
export async function traceWriter(
  opts: { trace?: boolean | string },
  version: ProtocolVersion,
  write: (line: string) => void = (line) => process.stderr.write(line),
): Promise<ClientOptions['trace']> {
  if (opts.trace === undefined || opts.trace === false) return undefined;
  if (opts.trace !== true && opts.trace !== 'hex') {
    throw new UsageError(`--trace: '${opts.trace}' is not a trace mode (use --trace or --trace=hex)`);
  }
  const hex = opts.trace === 'hex';
  // Loaded only with --trace: the renderer is not needed for a plain publish.
  const { formatPacketLine, traceHex } = await import('./render.js');
  return (direction, packet, raw) => {
    let line = `${direction === 'out' ? '->' : '<-'} ${formatPacketLine(packet, version)}\n`;
    if (hex) line += `   ${traceHex(raw, packet, version)}\n`;
    write(line);
  };
}
