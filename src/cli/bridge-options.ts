/**
 * mq broker's bridge flags. `--bridge URL` starts a bridge; the --bridge-* flags after it (up to
 * the next --bridge) are that bridge's, so several bridges can be given, each with its own topics
 * and credentials. The flags are collected in command-line order (commander's option events) and
 * resolved into the broker's BridgeOptions, each mistake one UsageError naming the flag.
 */
import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import { type BridgeOptions, BridgeTopicError, parseBridgeTopic } from '../broker/index.js';
import type { ClientOptions } from '../client/index.js';
import { parseBrokerUrl } from './broker-url.js';
import { parseReconnect, parseVersion, tlsOptions } from './connection-options.js';
import { UsageError } from './errors.js';
import { parseInteger } from './values.js';

/** What was typed for one --bridge. */
export interface BridgeFlags {
  url: string;
  topics: string[];
  clientId?: string;
  username?: string;
  password?: string;
  protocolVersion?: string;
  keepalive?: string;
  clean?: boolean;
  sessionExpiry?: string;
  tryPrivate?: boolean;
  cafile?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  servername?: string;
  tlsVersion?: string;
  reconnect?: string;
}

type Setter = (b: BridgeFlags, value: string | undefined) => void;

const GROUP = 'Bridge options (each --bridge-* flag applies to the --bridge before it):';

/** [flags, description, what it sets]: the --bridge-* options, in --help order. */
const BRIDGE_FLAGS: [string, string, Setter][] = [
  [
    '--bridge-topic <spec>',
    "'PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]' (repeatable; Mosquitto's topic syntax)",
    (b, v) => b.topics.push(v ?? ''),
  ],
  [
    '--bridge-client-id <id>',
    'client id on the remote broker (default mq-bridge.HOSTNAME; locally local.ID)',
    (b, v) => {
      b.clientId = v;
    },
  ],
  [
    '--bridge-username <user>',
    'user name on the remote broker (or in the URL)',
    (b, v) => {
      b.username = v;
    },
  ],
  [
    '--bridge-password <pass>',
    'password on the remote broker (or in the URL, or MQ_BRIDGE_PASSWORD)',
    (b, v) => {
      b.password = v;
    },
  ],
  [
    '--bridge-protocol-version <v>',
    'MQTT version to the remote broker: 3.1, 3.1.1 or 5 (default 5)',
    (b, v) => {
      b.protocolVersion = v;
    },
  ],
  [
    '--bridge-keepalive <s>',
    'keepalive to the remote broker (default 60)',
    (b, v) => {
      b.keepalive = v;
    },
  ],
  [
    '--bridge-clean',
    'clean session: the remote broker keeps nothing for the bridge while the link is down',
    (b) => {
      b.clean = true;
    },
  ],
  [
    '--bridge-session-expiry <s>',
    'MQTT 5 Session Expiry Interval on the remote broker, or "never" (default 3600)',
    (b, v) => {
      b.sessionExpiry = v;
    },
  ],
  [
    '--no-bridge-try-private',
    "3.1/3.1.1: no bridge flag in CONNECT (Mosquitto's try_private false), for brokers refusing it",
    (b) => {
      b.tryPrivate = false;
    },
  ],
  [
    '--bridge-cafile <file>',
    'trust the CAs in this PEM file (turns TLS on)',
    (b, v) => {
      b.cafile = v;
    },
  ],
  [
    '--bridge-cert <file>',
    'client certificate (PEM) for the remote broker, with --bridge-key',
    (b, v) => {
      b.cert = v;
    },
  ],
  [
    '--bridge-key <file>',
    'private key (PEM) of --bridge-cert',
    (b, v) => {
      b.key = v;
    },
  ],
  [
    '--bridge-insecure',
    "do not verify the remote broker's certificate",
    (b) => {
      b.insecure = true;
    },
  ],
  [
    '--bridge-servername <name>',
    'TLS server name (SNI and certificate check)',
    (b, v) => {
      b.servername = v;
    },
  ],
  [
    '--bridge-tls-version <v>',
    'minimum TLS version: tlsv1.2 or tlsv1.3',
    (b, v) => {
      b.tlsVersion = v;
    },
  ],
  [
    '--bridge-reconnect <min..max>',
    'reconnect backoff in seconds, with jitter (default 1..30)',
    (b, v) => {
      b.reconnect = v;
    },
  ],
];

/**
 * Adds --bridge and the --bridge-* flags to `cmd`; the returned function gives what was typed,
 * one BridgeFlags per --bridge (a --bridge-* flag before any --bridge is a UsageError there).
 */
export function addBridgeOptions(cmd: Command): () => BridgeFlags[] {
  const bridges: BridgeFlags[] = [];
  let misplaced: string | undefined;
  cmd.addOption(
    new Option(
      '--bridge <url>',
      'bridge to this broker: mqtt://, mqtts://, ws://, wss:// [user[:pass]@]host[:port] (repeatable)',
    ).helpGroup(GROUP),
  );
  cmd.on('option:bridge', (url: string) => bridges.push({ url, topics: [] }));
  for (const [flags, description, set] of BRIDGE_FLAGS) {
    const option = new Option(flags, description).helpGroup(GROUP);
    cmd.addOption(option);
    cmd.on(`option:${option.name()}`, (value: string | undefined) => {
      const current = bridges[bridges.length - 1];
      if (current === undefined) misplaced ??= option.long ?? flags;
      else set(current, value);
    });
  }
  return () => {
    if (misplaced !== undefined)
      throw new UsageError(
        `${misplaced} before --bridge: give --bridge URL first, then the flags of that bridge`,
      );
    return bridges;
  };
}

/** BridgeOptions for each --bridge; `env` gives MQ_BRIDGE_PASSWORD. */
export async function resolveBridges(
  flags: BridgeFlags[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<BridgeOptions[]> {
  const out: BridgeOptions[] = [];
  for (let i = 0; i < flags.length; i++) out.push(await resolveBridge(flags[i]!, i, env));
  return out;
}

async function resolveBridge(f: BridgeFlags, index: number, env: NodeJS.ProcessEnv): Promise<BridgeOptions> {
  const where = `--bridge ${f.url}`;
  if (f.topics.length === 0) {
    throw new UsageError(`${where}: no --bridge-topic (e.g. --bridge-topic 'sensors/# in 1')`);
  }
  const topics = f.topics.map((spec) => {
    try {
      return parseBridgeTopic(spec);
    } catch (err) {
      if (err instanceof BridgeTopicError) throw new UsageError(`--bridge-topic '${spec}': ${err.message}`);
      throw err;
    }
  });
  const remote = await remoteOptions(f, index, env);
  const options: BridgeOptions = { remote, topics };
  if (f.reconnect !== undefined) {
    const range = parseReconnect(f.reconnect);
    if (range !== false) options.reconnect = range;
  }
  return options;
}

/** The client session on the remote broker. */
async function remoteOptions(f: BridgeFlags, index: number, env: NodeJS.ProcessEnv): Promise<ClientOptions> {
  const url = parseBrokerUrl(f.url, '--bridge');
  if (url.topic !== undefined) {
    throw new UsageError(`--bridge: '${f.url}' names a topic: topics are given with --bridge-topic`);
  }
  const version =
    f.protocolVersion !== undefined ? parseVersion(f.protocolVersion, '--bridge-protocol-version') : 5;
  const tlsWanted =
    f.cafile !== undefined ||
    f.cert !== undefined ||
    f.key !== undefined ||
    f.insecure === true ||
    f.servername !== undefined ||
    f.tlsVersion !== undefined;
  let transport = url.transport;
  if (tlsWanted && transport === 'mqtt') transport = 'mqtts';
  if (tlsWanted && transport === 'ws') transport = 'wss';
  if (tlsWanted && transport === 'unix')
    throw new UsageError('--bridge-cafile, --bridge-cert...: not for unix://');
  const defaultPort = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443, unix: 0 }[transport];
  const clean = f.clean === true;
  const r: ClientOptions = {
    transport,
    host: url.host ?? 'localhost',
    port: url.port ?? defaultPort,
    version,
    clientId: f.clientId ?? `mq-bridge${index > 0 ? `-${index + 1}` : ''}.${hostname()}`,
    keepalive: f.keepalive !== undefined ? parseInteger(f.keepalive, '--bridge-keepalive', 0, 65_535) : 60,
    clean,
  };
  if (url.path !== undefined) r.path = url.path;
  if (r.clientId === '')
    throw new UsageError('--bridge-client-id: empty (the remote session is kept under it)');
  if (version === 3 && r.clientId.length > 23) {
    throw new UsageError(
      `--bridge-client-id: MQTT 3.1 allows 23 characters, '${r.clientId}' has ${r.clientId.length}; give a shorter one`,
    );
  }
  if (version !== 5) {
    if (f.sessionExpiry !== undefined) {
      throw new UsageError(
        '--bridge-session-expiry needs --bridge-protocol-version 5 (3.1.1 sessions do not expire)',
      );
    }
    if (f.tryPrivate !== false) r.bridge = true;
  } else if (!clean) {
    const s = f.sessionExpiry ?? '3600';
    r.sessionExpiry = s === 'never' ? 0xffffffff : parseInteger(s, '--bridge-session-expiry', 1, 0xffffffff);
  } else if (f.sessionExpiry !== undefined) {
    throw new UsageError(
      '--bridge-session-expiry with --bridge-clean: a clean session ends with the connection',
    );
  }
  const username = f.username ?? url.username;
  const password =
    f.password ?? url.password ?? (username !== undefined ? env.MQ_BRIDGE_PASSWORD || undefined : undefined);
  if (username !== undefined) r.username = username;
  if (password !== undefined) {
    if (username === undefined && version !== 5) {
      throw new UsageError('--bridge-password needs --bridge-username in MQTT 3.1/3.1.1 [MQTT-3.1.2-22]');
    }
    r.password = Buffer.from(password, 'utf8');
  }
  if (transport === 'mqtts' || transport === 'wss') {
    r.tls = await tlsOptions(
      { tlsVersion: f.tlsVersion, servername: f.servername },
      { cafile: f.cafile, certFile: f.cert, keyFile: f.key, insecure: f.insecure === true },
      (name) => `--bridge-${name}`,
    );
  }
  return r;
}
