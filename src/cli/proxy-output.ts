/**
 * What `mq proxy` prints: the proxy's events (src/proxy) as trace lines (the `--trace` renderer,
 * line or full, prefixed with the connection id and the direction) or as JSON objects, one a line.
 * Packets and connection lines go to stdout (they are the command's output); failures (a broker
 * that cannot be reached, --strict closing a connection) and warnings also get one line on stderr.
 * Every string that came from the network is escaped before it reaches a terminal (escape.ts):
 * control characters (C0, DEL, C1) and bidirectional/line-separator marks never pass through raw.
 */
import type { MalformedPacketError } from '../protocol/errors.js';
import { PACKET_TYPE_NAMES } from '../protocol/index.js';
import type { ConnectionInfo, Direction, PacketEvent, ProxyEvents } from '../proxy/index.js';
import { escapeForTerminal, safeJson } from './escape.js';
import { packetToJson, versionLabel } from './packet-json.js';
import { formatPacketFull, formatPacketLine, type Paint } from './render.js';

export type TraceMode = 'line' | 'full' | 'off';

export interface ProxyOutputOptions {
  trace: TraceMode;
  json: boolean;
  /** No lines on stderr. */
  quiet: boolean;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Colours for stdout (a chalk instance, colourless off a TTY or with NO_COLOR). */
  colors: Paint & { level: number };
}

export const DIRECTION_LABEL: Record<Direction, string> = {
  up: 'client->broker',
  down: 'broker->client',
};

let stampMs = 0;
let stampText = '';

/** HH:MM:SS.mmm (UTC), formatted once per millisecond. */
function stamp(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stampText = new Date(now).toISOString().slice(11, 23);
  }
  return stampText;
}

function violationJson(v: MalformedPacketError): Record<string, unknown> {
  const out: Record<string, unknown> = { offset: v.offset, message: v.message, reasonCode: v.reasonCode };
  if (v.rule !== undefined) out.rule = v.rule;
  return out;
}

/** The ProxyEvents that print. */
export function proxyOutput(o: ProxyOutputOptions): ProxyEvents {
  const c = o.colors;
  // Lines built here (a --trace full block has several) hold colour sequences only when colours are
  // on: then ESC is kept. Their strings from the network were escaped on the way in.
  const clean = (text: string) =>
    escapeForTerminal(text, c.level > 0 ? { keepColours: true } : { keepLayout: true });
  const line = (text: string) => o.stdout(`${clean(text)}\n`);
  const errLine = (text: string) => {
    if (!o.quiet) o.stderr(`${escapeForTerminal(`mq proxy: ${text}`)}\n`);
  };
  const json = (conn: ConnectionInfo | undefined, event: string, fields: Record<string, unknown>) => {
    const record = { time: new Date().toISOString(), ...(conn ? { conn: conn.id } : {}), event, ...fields };
    o.stdout(`${safeJson(JSON.stringify(record))}\n`);
  };
  const who = (conn: ConnectionInfo, direction?: Direction) =>
    `${c.dim(stamp())} ${c.magenta(`[${conn.id}]`)}${direction ? ` ${DIRECTION_LABEL[direction]}` : ''}`;

  return {
    connected(conn) {
      if (o.json) json(conn, 'connected', { client: conn.peer, via: conn.via, upstream: conn.upstream });
      else line(`${who(conn)} connected: client ${conn.peer} (${conn.via}) <-> broker ${conn.upstream}`);
    },
    packet(e) {
      if (o.json) json(e.conn, 'packet', packetFields(e));
      else if (o.trace !== 'off') line(`${who(e.conn, e.direction)} ${packetText(e, o.trace, c)}`);
    },
    notice(conn, direction, message) {
      if (o.json)
        json(conn, 'notice', { ...(direction ? { direction: DIRECTION_LABEL[direction] } : {}), message });
      else line(`${who(conn, direction)}: ${c.yellow(escapeForTerminal(message))}`);
    },
    close(conn, reason, failure) {
      if (failure) errLine(`[${conn.id}] client ${conn.peer}: ${reason}`);
      if (o.json) json(conn, 'closed', { reason, failure });
      else if (!failure) line(`${who(conn)} closed: ${escapeForTerminal(reason)}`);
    },
    warning(message) {
      errLine(message);
    },
  };
}

/** The JSON fields of a packet event (packets as `mq decode --json` writes them, secrets masked). */
function packetFields(e: PacketEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {
    direction: DIRECTION_LABEL[e.direction],
    offset: e.offset,
    size: e.size,
    version: versionLabel(e.version),
  };
  if (e.packet !== undefined) out.packet = packetToJson(e.packet, { version: e.version });
  else out.type = PACKET_TYPE_NAMES[e.typeCode] ?? `reserved type ${e.typeCode}`;
  if (e.packet === undefined && e.bytes !== undefined) out.hex = e.bytes.toString('hex');
  if (e.tooLarge) out.decoded = false;
  if (e.dropped) out.dropped = true;
  if (e.violations.length > 0) out.violations = e.violations.map(violationJson);
  return out;
}

/** A packet as the trace shows it: decoded (line or block), else its type, size and first bytes; then what happened to it. */
function packetText(e: PacketEvent, mode: 'line' | 'full', c: Paint): string {
  const typeName = PACKET_TYPE_NAMES[e.typeCode] ?? `reserved type ${e.typeCode}`;
  let text: string;
  if (e.packet !== undefined) {
    text =
      mode === 'full'
        ? formatPacketFull(e.packet, e.version, { colors: c, remainingLength: e.size - e.headerLength })
        : formatPacketLine(e.packet, e.version, { colors: c });
  } else if (e.tooLarge) {
    text = `${c.bold(typeName)} (${e.size} B, too large to decode here: forwarded as it is)`;
  } else {
    const hex = (e.bytes ?? Buffer.alloc(0)).subarray(0, 32).toString('hex');
    text = `${c.bold(typeName)} (${e.size} B) ${c.dim(`hex:${hex}${e.size > 32 ? '...' : ''}`)}`;
  }
  if (e.dropped) text += ` ${c.yellow('DROPPED (--drop-every)')}`;
  if (e.violations.length > 0) {
    const list = e.violations.map((v) => escapeForTerminal(v.message)).join('; ');
    text += ` ${c.red(`MALFORMED (packet at stream byte ${e.offset}): ${list}`)}`;
  }
  return text;
}
