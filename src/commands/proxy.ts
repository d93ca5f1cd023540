/**
 * `mq proxy --listen PORT --to URL`: forwards every client connection to the broker at URL and
 * prints each packet both ways, decoded as --trace prints them; records them; injects faults per
 * direction. Parses and checks the flags, runs src/proxy until SIGINT/SIGTERM, renders its events
 * with src/cli/proxy-output.
 */
import type { Command } from 'commander';
import { newCommand, run } from '../cli/command.js';
import {
  type ConnectionFlags,
  resolveConnectionOptions,
  someConnectionOptions,
  TRANSPORT_FLAGS,
} from '../cli/connection-options.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { collect } from '../cli/options.js';
import { colors } from '../cli/output.js';
import { proxyOutput, type TraceMode } from '../cli/proxy-output.js';
import { stopWhen } from '../cli/signals.js';
import { parseInteger, parseSeconds } from '../cli/values.js';
import { describeTarget } from '../client/index.js';
import {
  type ConnectionFaults,
  type Direction,
  type DirectionFaults,
  MqttProxy,
  NO_FAULTS,
  type ProxyAddresses,
  type ProxyOptions,
} from '../proxy/index.js';

interface ProxyFlags extends ConnectionFlags {
  listen?: string;
  wsListen?: string;
  host: string;
  to?: string;
  trace: string;
  json?: boolean;
  record?: string;
  strict?: boolean;
  quiet?: boolean;
  delay: string[];
  dropEvery: string[];
  dropAny?: boolean;
  disconnectAfter?: string;
  throttle: string[];
}

/** The shared connection flags that apply to the upstream connection. */
const UPSTREAM_FLAGS = TRANSPORT_FLAGS;

export function command(): Command {
  const cmd = newCommand('proxy')
    .description(
      'Forward MQTT clients to a broker and show every packet both ways, decoded; record them; inject faults per direction.',
    )
    .usage('--listen PORT --to URL [options]');
  addProxyOptions(cmd);
  cmd.addHelpText('after', HELP);
  return run<ProxyFlags>(cmd, proxyCommand);
}

/** Every flag of mq proxy, in --help order. */
function addProxyOptions(cmd: Command): void {
  cmd
    .option('--listen <port>', 'accept MQTT over TCP on this port; 0 picks a free one (printed)')
    .option(
      '--ws-listen <port>',
      'accept MQTT over WebSocket on this port (any path, subprotocol mqtt); 0 picks one',
    )
    .option(
      '-h, --host <host>',
      'address to listen on (anything but loopback is reachable from other machines)',
      '127.0.0.1',
    )
    .option(
      '--to <url>',
      'the broker: mqtt://host[:port], mqtts://, ws://host[:port][/path], wss://, unix:///path',
    )
    .option('--trace <mode>', 'how packets are printed on stdout: line, full or off', 'line')
    .option('--json', 'print one JSON object per packet and connection event on stdout instead')
    .option('--record <file>', 'append every packet as NDJSON {time, client, direction, hex} (mode 0600)')
    .option('--strict', 'close a connection on a malformed packet (default: show the violation, forward it)')
    .option('-q, --quiet', 'no lines on stderr (failures, warnings)')
    .option(
      '--delay <[dir:]ms>',
      'fault: hold every byte this many milliseconds (order and rate kept)',
      collect,
      [],
    )
    .option(
      '--drop-every <[dir:]n>',
      'fault: lose every Nth PUBLISH (its bytes are not forwarded)',
      collect,
      [],
    )
    .option('--drop-any', 'with --drop-every: count every packet but CONNECT and CONNACK, not only PUBLISH')
    .option('--disconnect-after <[dir:]s>', 'fault: cut each connection this many seconds after it opened')
    .option(
      '--throttle <[dir:]rate>',
      'fault: at most RATE bytes per second (k = 1000, M = 1000000)',
      collect,
      [],
    );
  // The shared table's TLS and WebSocket flags, for the upstream (the rest is a client's, not a proxy's).
  for (const o of someConnectionOptions(UPSTREAM_FLAGS)) {
    if (o.attributeName() === 'connectTimeout')
      o.description = 'give up dialling the broker after this long (default: 10)';
    cmd.addOption(
      o.helpGroup(
        o.helpGroupHeading === 'TLS options:'
          ? 'Upstream TLS (--to mqtts:// or wss://):'
          : 'Upstream connection (--to):',
      ),
    );
  }
}

const HELP = `
Faults apply per connection and per direction: a plain value applies both ways, up:VALUE only to
what the client sends (client->broker), down:VALUE only to what the broker sends (broker->client);
give the flag twice for different values (--delay up:20 --delay down:5).
  --delay MS            every byte leaves MS ms after it arrived (never sooner, rarely 0.2 ms
                        later: the last millisecond is waited out turn by turn, which costs CPU
                        while bytes wait), in order, at the rate it came
  --drop-every N        the Nth, 2Nth... PUBLISH of each direction is lost: QoS 0 messages vanish,
                        QoS 1/2 ones are retried by the client (after a reconnect); --drop-any
                        counts every packet but CONNECT and CONNACK
  --disconnect-after S  S seconds after a client connected, its connection is cut (both sides);
                        up:S cuts the broker side (the client then sees the proxy close),
                        down:S the client side (the broker then sees the proxy close)
  --throttle RATE       at most RATE bytes per second, e.g. 1000, 64k, 2M

Examples:
  mq proxy --listen 1884 --to mqtt://localhost:1883            watch a client that cannot trace
  mq proxy --listen 0 --to mqtts://broker.example.com --cafile ca.pem
  mq proxy --listen 1884 --ws-listen 8081 --to ws://localhost:9001/mqtt
  mq proxy --listen 1884 --to mqtt://localhost --trace full --record traffic.ndjson
  mq decode -f traffic.ndjson --line                          read a recording back
  mq proxy --listen 1884 --to mqtt://localhost --json | jq .  packets for machines
  mq proxy --listen 1884 --to mqtt://localhost --delay up:20 --drop-every 10
  mq proxy --listen 1884 --to mqtt://localhost --disconnect-after 30 --throttle down:10k
  mq proxy --listen 1884 --to mqtt://localhost --trace off     forward only (no decoding, no copy)

Output: "mq proxy listening on mqtt://HOST:PORT -> URL" (and ws://) on stdout once listening; then
per connection "[c1] connected: ...", each packet as "[c1] client->broker PUBLISH ..." or
"[c1] broker->client ...", "[c1] closed: reason". Passwords and authentication data are masked
(same-length '*') in the trace, --json and --record. A malformed packet is shown with its
violations (byte offset, spec rule) and forwarded unchanged (--strict: the connection is closed
instead); a stream that cannot be cut into packets is forwarded undecoded from there on.
A broker that cannot be reached: the client's connection is closed, one line on stderr says why.

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 usage error, 6 cannot listen (port in use) or cannot
open the --record file.`;

async function proxyCommand(flags: ProxyFlags): Promise<number> {
  const options = await toOptions(flags);
  const mode = options.observe === true ? (flags.trace as TraceMode) : 'off';
  options.events = proxyOutput({
    trace: mode,
    json: flags.json === true,
    quiet: flags.quiet === true,
    stdout: batchedStdout,
    stderr: (text) => process.stderr.write(text),
    colors: colors(process.stdout),
  });
  const proxy = new MqttProxy(options);
  if (!isLoopback(options.host ?? '127.0.0.1')) {
    process.stderr.write(`mq proxy: WARNING: listening on ${options.host}: reachable from other machines\n`);
  }
  return serve(proxy, flags, options);
}

/** Listens, prints where, waits for SIGINT/SIGTERM (or a closed stdout), closes. */
async function serve(proxy: MqttProxy, flags: ProxyFlags, options: ProxyOptions): Promise<number> {
  // Signal handlers first: a script may send SIGTERM the moment it reads the listening line.
  const stop = stopWhen({ signals: ['SIGINT', 'SIGTERM'] });
  // stdout closed (`mq proxy ... | head`): stop as on a signal.
  let onStdoutError = () => {};
  const stdoutClosed = new Promise<void>((resolve) => {
    onStdoutError = () => resolve();
  });
  process.stdout.on('error', onStdoutError);
  try {
    let addresses: ProxyAddresses;
    try {
      addresses = await proxy.listen();
    } catch (e) {
      throw listenError(e, options);
    }
    process.stdout.write(listeningText(addresses, upstreamUrl(options), flags.json === true));
    await Promise.race([stop.stopped, stdoutClosed]);
    await proxy.close();
    flushStdout();
    return ExitCode.Ok;
  } finally {
    stop.dispose();
    process.stdout.off('error', onStdoutError);
  }
}

let pending: string[] = [];
let flushScheduled = false;

/**
 * Output lines are gathered and written once per turn of the event loop: stdout on a file or a
 * pipe is written synchronously, and one write per packet (two per message) would cap the traffic
 * a tracing proxy can carry at a fraction of what it forwards untraced.
 */
function batchedStdout(text: string): void {
  pending.push(text);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushStdout);
  }
}

function flushStdout(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const text = pending.join('');
  pending = [];
  if (!process.stdout.destroyed) process.stdout.write(text);
}

function listeningText(a: ProxyAddresses, upstream: string, json: boolean): string {
  if (json) return `${JSON.stringify({ event: 'listening', ...a, upstream })}\n`;
  const show = (host: string) => (host.includes(':') ? `[${host}]` : host);
  const lines: string[] = [];
  if (a.tcp) lines.push(`mq proxy listening on mqtt://${show(a.tcp.host)}:${a.tcp.port} -> ${upstream}`);
  if (a.ws) lines.push(`mq proxy listening on ws://${show(a.ws.host)}:${a.ws.port} -> ${upstream}`);
  return `${lines.join('\n')}\n`;
}

/** The upstream as a URL without credentials: mqtt://host:port, wss://host:port/path, unix:///path. */
function upstreamUrl(o: ProxyOptions): string {
  const u = o.upstream;
  if (u.transport === 'unix') return `unix://${u.path ?? ''}`;
  const target = describeTarget(u);
  return u.transport === 'ws' || u.transport === 'wss' ? target : `${u.transport}://${target}`;
}

function listenError(e: unknown, options: ProxyOptions): CliError {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err.syscall === 'open') {
    const why =
      err.code === 'ENOENT'
        ? 'no such directory'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'it is a directory'
            : err.message;
    return new CliError(`--record ${options.recordFile}: cannot open: ${why}`, ExitCode.Failure);
  }
  const where = `${err.address ?? options.host ?? '127.0.0.1'}:${err.port ?? options.port ?? options.wsPort}`;
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is in use (another process listens there; --listen 0 picks a free port)'
      : err.code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges)'
        : err.code === 'EADDRNOTAVAIL'
          ? 'no such local address (check --host)'
          : (err.message ?? String(e));
  return new CliError(`cannot listen on ${where}: ${why}`, ExitCode.Failure);
}

async function toOptions(f: ProxyFlags): Promise<ProxyOptions> {
  if (f.to === undefined)
    throw new UsageError('--to URL is required: the broker to forward to (e.g. --to mqtt://localhost:1883)');
  if (f.listen === undefined && f.wsListen === undefined) {
    throw new UsageError('give --listen PORT (0 picks a free port) and/or --ws-listen PORT');
  }
  const upstreamFlags: ConnectionFlags = { url: f.to };
  for (const key of UPSTREAM_FLAGS) if (f[key] !== undefined) Object.assign(upstreamFlags, { [key]: f[key] });
  // The environment (MQ_URL, MQ_PROFILE...) is a client's: --to alone says where the upstream is.
  const upstream = await resolveConnectionOptions(upstreamFlags, {});
  const o: ProxyOptions = {
    host: f.host,
    upstream: {
      transport: upstream.transport,
      host: upstream.host,
      port: upstream.port,
      ...(upstream.path !== undefined ? { path: upstream.path } : {}),
      ...(upstream.wsHeaders !== undefined ? { wsHeaders: upstream.wsHeaders } : {}),
      ...(upstream.tls !== undefined ? { tls: upstream.tls } : {}),
    },
  };
  if (upstream.connectTimeoutMs !== undefined) o.connectTimeoutMs = upstream.connectTimeoutMs;
  if (f.listen !== undefined) o.port = parseInteger(f.listen, '--listen', 0, 65_535);
  if (f.wsListen !== undefined) o.wsPort = parseInteger(f.wsListen, '--ws-listen', 0, 65_535);
  if (f.trace !== 'line' && f.trace !== 'full' && f.trace !== 'off') {
    throw new UsageError(`--trace: '${f.trace}' is not line, full or off`);
  }
  o.observe = f.trace !== 'off' || f.json === true;
  if (f.strict === true) o.strict = true;
  if (f.record !== undefined) o.recordFile = f.record;
  o.faults = toFaults(f);
  return o;
}

function toFaults(f: ProxyFlags): ConnectionFaults {
  const up: DirectionFaults = { ...NO_FAULTS };
  const down: DirectionFaults = { ...NO_FAULTS };
  const set = (
    values: string[],
    what: string,
    key: 'delayMs' | 'dropEvery' | 'bytesPerSecond',
    parse: (v: string) => number,
  ) => {
    for (const text of values) {
      const { side, value } = splitDirection(text, what);
      const n = parse(value);
      if (side !== 'down') up[key] = n;
      if (side !== 'up') down[key] = n;
    }
  };
  set(f.delay, '--delay', 'delayMs', (v) => parseInteger(v, '--delay', 0, 3_600_000));
  set(f.dropEvery, '--drop-every', 'dropEvery', (v) => parseInteger(v, '--drop-every', 1, 1_000_000_000));
  set(f.throttle, '--throttle', 'bytesPerSecond', parseRate);
  if (f.dropAny === true) {
    if (f.dropEvery.length === 0) throw new UsageError('--drop-any needs --drop-every N');
    up.dropAny = down.dropAny = true;
  }
  const faults: ConnectionFaults = { up, down };
  if (f.disconnectAfter !== undefined) {
    const { side, value } = splitDirection(f.disconnectAfter, '--disconnect-after');
    const seconds = parseSeconds(value, '--disconnect-after');
    if (seconds <= 0) throw new UsageError('--disconnect-after must be more than 0 seconds');
    faults.disconnectAfter = { seconds, side };
  }
  return faults;
}

/** `20`, `up:20`, `down:20` -> the direction (both when none is named) and the value. */
function splitDirection(text: string, what: string): { side: Direction | 'both'; value: string } {
  const m = /^\s*(?:(up|down)\s*:)?\s*(.*)$/i.exec(text);
  const prefix = m?.[1]?.toLowerCase();
  const value = m?.[2] ?? '';
  if (value === '' || /:/.test(value)) {
    throw new UsageError(`${what}: '${text}' is not VALUE, up:VALUE or down:VALUE`);
  }
  return { side: prefix === 'up' ? 'up' : prefix === 'down' ? 'down' : 'both', value };
}

/** Bytes per second: `1000`, `64k` (x1000), `2M` (x1000000); at least 1. */
function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmM]?)$/.exec(text.trim());
  const n = m
    ? Number(m[1]) * (m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1000 : 1_000_000)
    : Number.NaN;
  if (!Number.isFinite(n) || n < 1) {
    throw new UsageError(`--throttle: '${text}' is not a rate in bytes per second (e.g. 1000, 64k, 2M)`);
  }
  return Math.floor(n);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
