/**
 * --trace (every packet in and out, one line or every field) and --record (all traffic as NDJSON
 * {time, client, direction, hex}). The connection calls in only while `tracing` is on.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { decode, type Packet, type ProtocolVersion } from '../protocol/index.js';
import type { Connection } from './connection.js';
import { errorText } from './error-text.js';

/** Formats a packet for --trace; the CLI passes render.ts's formatter, embedders may pass their own. */
export type TraceFormatter = (packet: Packet, version: ProtocolVersion, mode: 'line' | 'full') => string;

export class Tracer {
  /** Set by Broker.setTraceFormatter. */
  format: TraceFormatter = defaultTraceFormat;
  private readonly mode: 'line' | 'full' | undefined;
  private readonly traceLine: (line: string) => void;
  private record: WriteStream | undefined = undefined;

  constructor(mode: 'line' | 'full' | undefined, traceLine: (line: string) => void) {
    this.mode = mode;
    this.traceLine = traceLine;
  }

  /** Starts --record: appends to `file`; a write error is logged once it happens. */
  openRecord(file: string, log: (line: string) => void): void {
    this.record = createWriteStream(file, { flags: 'a' });
    this.record.on('error', (err) => log(`--record ${file}: ${err.message}`));
  }

  in(conn: Connection, packet: Packet, raw: Buffer): void {
    const mode = this.mode;
    const version = packet.type === 'CONNECT' ? packet.protocolVersion : conn.version;
    const who = packet.type === 'CONNECT' ? packet.clientId || conn.label : conn.label;
    if (mode !== undefined) this.traceLine(`[${who}] -> ${this.render(packet, version, mode, raw)}`);
    if (this.record !== undefined) this.writeRecord(who, 'in', raw);
  }

  out(conn: Connection, bytes: Buffer): void {
    const mode = this.mode;
    if (mode !== undefined) {
      let text: string;
      try {
        text = this.render(decode(bytes, conn.version), conn.version, mode, bytes);
      } catch (err) {
        text = `(undecodable: ${errorText(err)}) ${hexStart(bytes)}`;
      }
      this.traceLine(`[${conn.label}] <- ${text}`);
    }
    if (this.record !== undefined) this.writeRecord(conn.label, 'out', bytes);
  }

  /**
   * The formatter's text for `packet`; when it fails (a formatter bug a hostile packet found), a
   * line that says so, never a throw: tracing must not cost the client its connection.
   */
  private render(packet: Packet, version: ProtocolVersion, mode: 'line' | 'full', raw: Buffer): string {
    try {
      return this.format(packet, version, mode);
    } catch (err) {
      return `${packet.type} (cannot render: ${errorText(err)}) ${hexStart(raw)}`;
    }
  }

  /** Ends --record once everything written reached the file. */
  async close(): Promise<void> {
    const record = this.record;
    if (record !== undefined) await new Promise<void>((resolve) => record.end(() => resolve()));
  }

  private writeRecord(client: string, direction: 'in' | 'out', bytes: Buffer): void {
    const line = JSON.stringify({
      time: new Date().toISOString(),
      client,
      direction,
      hex: bytes.toString('hex'),
    });
    this.record!.write(`${line}\n`);
  }
}

function defaultTraceFormat(packet: Packet, _version: ProtocolVersion, mode: 'line' | 'full'): string {
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

/** The first bytes of a packet in hex (a whole 256 MB packet would not fit in a string). */
function hexStart(bytes: Buffer): string {
  const max = 64;
  return bytes.length <= max
    ? bytes.toString('hex')
    : `${bytes.subarray(0, max).toString('hex')}... (${bytes.length} bytes)`;
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  );
}
