/**
 * --trace (every packet in and out, one line or every field) and --record (all traffic as NDJSON
 * {time, client, direction, hex}, as `mq proxy --record` writes it). The connection calls in only
 * while `tracing` is on. Secrets never reach either: a CONNECT's password and the Authentication
 * Data of CONNECT, CONNACK and AUTH are masked, byte for byte ('*'), in the packet a trace line is
 * made from and in the recorded bytes (protocol/inspect.ts, shared with the proxy). Client ids in
 * trace lines, and the default formatter's text, are escaped for a terminal (cli/escape.ts); a
 * formatter set by Broker.setTraceFormatter escapes what it renders itself (mq's render.ts does).
 */
import { escapeForTerminal } from '../cli/escape.js';
import { Recorder } from '../cli/record.js';
import { decode, type Packet, type ProtocolVersion } from '../protocol/index.js';
import { inspectPacket, mayHoldSecret } from '../protocol/inspect.js';
import type { Connection } from './connection.js';

/**
 * Formats a packet for --trace; the CLI passes render.ts's formatter, embedders may pass their own
 * (its text is printed as it is: it must escape the packet's strings for a terminal itself).
 */
export type TraceFormatter = (packet: Packet, version: ProtocolVersion, mode: 'line' | 'full') => string;

export class Tracer {
  /** Set by Broker.setTraceFormatter. */
  format: TraceFormatter = defaultTraceFormat;
  private readonly mode: 'line' | 'full' | undefined;
  private readonly traceLine: (line: string) => void;
  private record: Recorder | undefined = undefined;

  constructor(mode: 'line' | 'full' | undefined, traceLine: (line: string) => void) {
    this.mode = mode;
    this.traceLine = traceLine;
  }

  /**
   * Starts --record: appends to `file`, created (or set) mode 0600; throws when it cannot be
   * opened, and logs a later write error once.
   */
  openRecord(file: string, log: (line: string) => void): void {
    try {
      this.record = new Recorder(file, log);
    } catch (err) {
      throw new Error(`--record ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  in(conn: Connection, packet: Packet, raw: Buffer): void {
    const mode = this.mode;
    const version = packet.type === 'CONNECT' ? packet.protocolVersion : conn.version;
    const who = packet.type === 'CONNECT' ? escapeForTerminal(packet.clientId) || conn.label : conn.label;
    let shown = packet;
    let bytes = raw;
    if (packet.type === 'CONNECT' || packet.type === 'AUTH') {
      // A copy, masked: the broker still needs the password it authenticates with.
      const masked = inspectPacket(raw, version);
      shown = masked.packet ?? packet;
      bytes = masked.bytes;
    }
    if (mode !== undefined) this.traceLine(`[${who}] -> ${this.format(shown, version, mode)}`);
    this.record?.write(who, 'in', bytes);
  }

  out(conn: Connection, bytes: Buffer): void {
    const mode = this.mode;
    const version = conn.version;
    let packet: Packet | undefined;
    let problem: string | undefined;
    if (mayHoldSecret(bytes[0] ?? 0)) {
      const masked = inspectPacket(bytes, version);
      bytes = masked.bytes;
      packet = masked.packet;
      problem = masked.violations[0]?.message;
    } else if (mode !== undefined) {
      try {
        packet = decode(bytes, version);
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
      }
    }
    if (mode !== undefined) {
      const text =
        packet !== undefined && problem === undefined
          ? this.format(packet, version, mode)
          : `(undecodable: ${problem}) ${bytes.toString('hex')}`;
      this.traceLine(`[${conn.label}] <- ${text}`);
    }
    this.record?.write(conn.label, 'out', bytes);
  }

  /** Ends --record once everything written reached the file. */
  async close(): Promise<void> {
    await this.record?.close();
  }
}

/** The trace line of a packet without mq's CLI renderer: its strings escaped for a terminal. */
function defaultTraceFormat(packet: Packet, version: ProtocolVersion, mode: 'line' | 'full'): string {
  return escapeForTerminal(plainTraceFormat(packet, version, mode));
}

function plainTraceFormat(packet: Packet, _version: ProtocolVersion, mode: 'line' | 'full'): string {
  if (mode === 'full') {
    return `${packet.type} ${JSON.stringify(packet, (_k, v: unknown) => (isBufferJson(v) ? Buffer.from(v.data).toString('hex') : v))}`;
  }
  switch (packet.type) {
    case 'PUBLISH':
      return `PUBLISH q${packet.qos}${packet.retain ? ' retain' : ''}${packet.dup ? ' dup' : ''}${packet.packetId !== undefined ? ` id=${packet.packetId}` : ''} '${packet.topic}' (${packet.payload.length} bytes)`;
    case 'CONNECT':
      return `CONNECT ${packet.clientId === '' ? "''" : packet.clientId} v${packet.protocolVersion} ka=${packet.keepalive}${packet.clean ? ' clean' : ''}`;
    case 'CONNACK':
      return `CONNACK ${packet.reasonCode}${packet.sessionPresent ? ' session-present' : ''}`;
    case 'SUBSCRIBE':
      return `SUBSCRIBE id=${packet.packetId} ${packet.subscriptions.map((s) => `${s.topicFilter} q${s.qos}`).join(', ')}`;
    case 'SUBACK':
    case 'UNSUBACK':
      return `${packet.type} id=${packet.packetId} [${packet.reasonCodes.join(', ')}]`;
    case 'UNSUBSCRIBE':
      return `UNSUBSCRIBE id=${packet.packetId} ${packet.topicFilters.join(', ')}`;
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return `${packet.type} id=${packet.packetId}${packet.reasonCode ? ` rc=${packet.reasonCode}` : ''}`;
    case 'DISCONNECT':
    case 'AUTH':
      return `${packet.type}${packet.reasonCode ? ` rc=${packet.reasonCode}` : ''}`;
    case 'PINGREQ':
    case 'PINGRESP':
      return packet.type;
    default: {
      const unreachable: never = packet;
      return String(unreachable);
    }
  }
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  );
}
