/**
 * A raw MQTT connection for what MqttClient will not do on purpose: a CONNECT in any version with
 * any fields, a PUBLISH above the broker's announced limits, a topic alias of our choosing, no
 * acknowledgements (in-flight counting), silence (keepalive), a drop without DISCONNECT. It is the
 * transport of src/client plus the codec: every packet received goes to an Inbox the check waits
 * on; nothing is answered unless `autoAck` says so.
 */
import type { Duplex } from 'node:stream';
import { openTransport, type TransportOptions } from '../client/index.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  type DisconnectPacket,
  encode,
  Framer,
  formatReasonCode,
  type Packet,
  type PacketOf,
  type PacketTypeName,
  type ProtocolVersion,
} from '../protocol/index.js';
import { Inbox, SourceClosed } from './inbox.js';
import { quoted } from './text.js';

export type Trace = (direction: 'in' | 'out', packet: Packet, raw: Buffer) => void;

/** How a connection ended. */
export interface CloseInfo {
  /** Date.now() when the socket closed. */
  at: number;
  /** The broker's DISCONNECT, when it sent one. */
  disconnect?: DisconnectPacket;
  /** A socket error, or a malformed packet from the broker. */
  error?: Error;
}

export interface RawOptions {
  /** Answer incoming QoS 1/2 PUBLISH (PUBACK, PUBREC) and PUBREL (PUBCOMP). Default true. */
  autoAck?: boolean;
  trace?: Trace;
}

export class RawConnection {
  readonly inbox: Inbox<Packet>;
  /** Resolves when the socket has closed, however it closed. */
  readonly closed: Promise<CloseInfo>;
  /** Date.now() of the last packet written. */
  lastSent = 0;
  /** A 3.1.1-style CONNACK (return code) came back for a v5 CONNECT. */
  v4Answer: number | undefined;
  private info: CloseInfo | undefined;
  private disconnect: DisconnectPacket | undefined;
  private error: Error | undefined;
  private readonly framer: Framer;
  private nextPacketId = 1;

  private constructor(
    private readonly socket: Duplex,
    readonly version: ProtocolVersion,
    signal: AbortSignal,
    private readonly options: RawOptions,
  ) {
    this.inbox = new Inbox<Packet>(signal);
    this.framer = new Framer(version);
    let settle: (info: CloseInfo) => void = () => {};
    this.closed = new Promise((resolve) => {
      settle = resolve;
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => {
      this.error ??= err;
    });
    socket.on('end', () => socket.destroy());
    socket.on('close', () => {
      const info: CloseInfo = { at: Date.now() };
      if (this.disconnect !== undefined) info.disconnect = this.disconnect;
      if (this.error !== undefined) info.error = this.error;
      this.info = info;
      this.inbox.close(new SourceClosed(describeClose(info)));
      settle(info);
    });
    // The check's time is up: nothing of it may stay open.
    const onAbort = () => socket.destroy();
    if (signal.aborted) socket.destroy();
    else signal.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal.removeEventListener('abort', onAbort));
  }

  /** Opens the byte stream (TCP, TLS, WebSocket, unix) to `target`; rejects with ConnectError. */
  static async open(
    target: TransportOptions,
    version: ProtocolVersion,
    signal: AbortSignal,
    options: RawOptions = {},
  ): Promise<RawConnection> {
    const socket = await openTransport(target, signal);
    return new RawConnection(socket, version, signal, options);
  }

  /** The socket has closed. */
  get isClosed(): CloseInfo | undefined {
    return this.info;
  }

  /** A packet identifier not used before on this connection. */
  packetId(): number {
    const id = this.nextPacketId;
    this.nextPacketId = id === 65535 ? 1 : id + 1;
    return id;
  }

  send(packet: Packet): void {
    const raw = encode(packet, this.version);
    this.options.trace?.('out', packet, raw);
    this.write(raw);
  }

  /** Bytes as they are (a hand-made packet). */
  write(bytes: Buffer): void {
    if (this.info !== undefined || this.socket.destroyed) return;
    this.lastSent = Date.now();
    this.socket.write(bytes);
  }

  /** The next packet of `type` (and matching `match`), present or future. */
  next<T extends PacketTypeName>(
    type: T,
    what: string,
    match: (p: PacketOf<T>) => boolean = () => true,
  ): Promise<PacketOf<T>> {
    return this.inbox.take((p) => p.type === type && match(p as PacketOf<T>), what) as Promise<PacketOf<T>>;
  }

  /**
   * Sends CONNECT; resolves with the CONNACK (accepted or not). Rejects with SourceClosed when the
   * broker closes without one. A v5 CONNECT answered in 3.1.1 resolves with that return code and
   * sets v4Answer.
   */
  async handshake(connect: ConnectPacket): Promise<ConnackPacket> {
    this.send(connect);
    return this.next('CONNACK', 'CONNACK');
  }

  /** PINGREQ, then PINGRESP: everything the broker sent before it has arrived. */
  async ping(what = 'PINGRESP'): Promise<void> {
    this.send({ type: 'PINGREQ' });
    await this.next('PINGRESP', what);
  }

  /** DISCONNECT (reason `reasonCode` in v5), then waits for the socket to close. */
  async end(reasonCode = 0): Promise<void> {
    if (this.info !== undefined) return;
    this.send(this.version === 5 ? { type: 'DISCONNECT', reasonCode } : { type: 'DISCONNECT' });
    this.socket.end();
    await this.closed;
  }

  /** Closes the socket at once, without DISCONNECT (the broker then publishes the will). */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.version === 5 && this.v4Answer === undefined && chunk[0] === 0x20 && chunk[1] === 0x02) {
      // An old broker answers a v5 CONNECT in 3.1.1: flags, return code.
      this.v4Answer = chunk[3] ?? 0;
      this.inbox.push({ type: 'CONNACK', sessionPresent: false, reasonCode: this.v4Answer });
      return;
    }
    try {
      this.framer.push(chunk, (packet, raw) => {
        this.options.trace?.('in', packet, raw);
        if (packet.type === 'DISCONNECT') this.disconnect = packet;
        this.autoAck(packet);
        // The payload is a view into the read buffer: keep a copy.
        this.inbox.push(
          packet.type === 'PUBLISH' ? { ...packet, payload: Buffer.from(packet.payload) } : packet,
        );
      });
    } catch (err) {
      this.error = new Error(`the broker sent a malformed packet: ${(err as Error).message}`);
      this.socket.destroy();
    }
  }

  private autoAck(packet: Packet): void {
    if (this.options.autoAck === false) return;
    if (packet.type === 'PUBLISH' && packet.packetId !== undefined) {
      this.send({ type: packet.qos === 1 ? 'PUBACK' : 'PUBREC', packetId: packet.packetId });
    } else if (packet.type === 'PUBREL') {
      this.send({ type: 'PUBCOMP', packetId: packet.packetId });
    }
  }
}

/** "the broker sent DISCONNECT 0x95 Packet too large" / "the broker closed the connection". */
export function describeClose(info: CloseInfo): string {
  if (info.disconnect !== undefined) {
    const rc = info.disconnect.reasonCode ?? 0;
    const why = info.disconnect.properties?.reasonString;
    return `the broker sent DISCONNECT ${formatReasonCode(rc, 'DISCONNECT')}${why !== undefined ? ` (${quoted(why)})` : ''}`;
  }
  const code = (info.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'the broker reset the connection';
  if (info.error !== undefined) return `the connection failed: ${info.error.message}`;
  return 'the broker closed the connection';
}
