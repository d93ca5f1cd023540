/**
 * One network connection of a client (a new one on every reconnect): the socket, the framer that
 * cuts its bytes into packets, the batched writes, and what keepalive watches. It knows bytes and
 * packets, not the session: what a packet means is the client's business, told through the
 * ConnectionEvents it is given.
 */
import type { Duplex } from 'node:stream';
import {
  type ConnackPacket,
  type DisconnectPacket,
  encode,
  encodeInto,
  Framer,
  formatReasonCode,
  MalformedPacketError,
  type Packet,
  type ProtocolVersion,
  packetSize,
} from '../protocol/index.js';
import type { AuthConversation } from './enhanced-auth.js';
import { ConnectError, DisconnectError } from './errors.js';
import type { Deferred } from './inflight.js';
import type { KeepaliveLink } from './keepalive.js';
import type { Trace } from './options.js';
import { describeTarget, type TransportOptions } from './transport.js';

/** Size of the buffers outgoing packets are encoded into (see send). */
const BATCH_BYTES = 64 * 1024;

/** What a connection reports to its client (one object serves every connection of a client). */
export interface ConnectionEvents {
  /** A packet arrived; none after the socket closed. */
  packet(conn: Connection, packet: Packet): void;
  /** The socket closed (once). */
  close(conn: Connection): void;
  /** The socket takes writes again after send() returned false. */
  drain(conn: Connection): void;
}

export class Connection implements KeepaliveLink {
  readonly framer: Framer;
  /** CONNACK received and accepted. */
  connected = false;
  /** The socket closed: nothing more is read from it. */
  done = false;
  lastSent: number;
  lastReceived: number;
  pingOutstanding = false;
  /** The first socket error. */
  error: Error | undefined;
  /** The DISCONNECT the broker sent. */
  disconnect: DisconnectPacket | undefined;
  /** Why the client itself dropped it (malformed input, bad alias, keepalive). */
  lostReason: DisconnectError | undefined;
  /** The handshake's CONNACK, until it arrives or the connection ends first. */
  awaitingConnack: Deferred<ConnackPacket> | undefined;
  /** An enhanced authentication exchange in progress (of the CONNECT, or a re-authentication). */
  authConversation: AuthConversation | undefined;
  /** client.reauthenticate() waiting for AUTH 0x00. */
  reauth: Deferred<void> | undefined;

  /** A write of the packets sent this turn of the event loop is scheduled (see send). */
  private corked = false;
  /** Packets are encoded into this buffer; [batchStart, batchEnd) is not written yet. */
  private batch: Buffer | undefined;
  private batchStart = 0;
  private batchEnd = 0;

  constructor(
    readonly socket: Duplex,
    readonly target: TransportOptions,
    private readonly version: ProtocolVersion,
    private readonly trace: Trace | undefined,
    private readonly events: ConnectionEvents,
  ) {
    this.framer = new Framer(version);
    const now = Date.now();
    this.lastSent = now;
    this.lastReceived = now;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => {
      this.error ??= err;
    });
    // A WebSocket stream may end without 'close' until destroyed.
    socket.on('end', () => socket.destroy());
    socket.on('close', () => {
      if (this.done) return;
      this.done = true;
      events.close(this);
    });
    socket.on('drain', () => events.drain(this));
  }

  /** How the broker is named in messages: `localhost:1883`, `ws://h:80/mqtt`... */
  get where(): string {
    return describeTarget(this.target);
  }

  /**
   * Encodes `packet` into the batch buffer; everything sent in one turn of the event loop goes out
   * in one write (uncork), or every BATCH_BYTES. No Buffer and no stream write per packet:
   * `mq pub -l` sends 100k+ messages a second this way. False when the socket asks to wait for
   * 'drain'. Throws EncodeError (nothing written) when the packet cannot be encoded.
   */
  send(packet: Packet): boolean {
    const version = this.version;
    const size = packetSize(packet, version);
    let ok = true;
    let batch = this.batch;
    if (batch === undefined || this.batchEnd + size > batch.length) {
      ok = this.writeBatch();
      if (size > BATCH_BYTES / 4) {
        // Big packets get their own buffer (and keep the batch buffer small).
        const raw = encode(packet, version);
        this.trace?.('out', packet, raw);
        this.lastSent = Date.now();
        return this.writeRaw(raw) && ok;
      }
      batch = Buffer.allocUnsafe(BATCH_BYTES);
      this.batch = batch;
      this.batchStart = 0;
      this.batchEnd = 0;
    }
    const start = this.batchEnd;
    encodeInto(packet, version, batch, start);
    this.batchEnd = start + size;
    // The bytes stay as they are once encoded (the buffer is only ever appended to): safe to show.
    this.trace?.('out', packet, batch.subarray(start, start + size));
    this.lastSent = Date.now();
    if (!this.corked) {
      this.corked = true;
      setImmediate(this.uncorkNow);
    }
    return ok;
  }

  /** Writes what send() batched; called once per turn of the event loop, and before ending. */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.writeBatch();
  }

  private readonly uncorkNow = () => this.uncork();

  /**
   * The broker broke the protocol: DISCONNECT with `reasonCode` (v5) and drop the connection.
   * Before CONNACK, the handshake fails with `message` instead.
   */
  fail(reasonCode: number, message: string): void {
    if (this.done) return;
    if (!this.connected) {
      this.awaitingConnack?.reject(new ConnectError(`${this.where}: ${message}`));
    } else {
      this.lostReason = new DisconnectError(message);
      if (this.version === 5) this.send({ type: 'DISCONNECT', reasonCode });
      this.uncork();
    }
    this.socket.end();
    this.socket.destroy();
  }

  /** Why this connection, once up, was lost: in the client's words, the broker's, or the socket's. */
  lossError(): DisconnectError {
    if (this.lostReason) return this.lostReason;
    const where = this.where;
    if (this.disconnect) {
      const rc = this.disconnect.reasonCode ?? 0;
      const reason = this.disconnect.properties?.reasonString;
      const ref = this.disconnect.properties?.serverReference;
      const hint = rc === 0x8e ? ': another client connected with the same client id (-i)' : '';
      return new DisconnectError(
        `${where} disconnected: ${formatReasonCode(rc, 'DISCONNECT')}${reason ? ` (${reason})` : ''}${ref ? ` (use ${ref})` : ''}${hint}`,
        rc,
      );
    }
    const why = this.error ? `: ${this.error.message}` : '';
    return new DisconnectError(`the connection to ${where} was lost${why}`);
  }

  private writeBatch(): boolean {
    const batch = this.batch;
    if (batch === undefined || this.batchEnd === this.batchStart) return true;
    const chunk = batch.subarray(this.batchStart, this.batchEnd);
    this.batchStart = this.batchEnd;
    return this.writeRaw(chunk);
  }

  private writeRaw(bytes: Buffer): boolean {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return true; // lost: the 'close' handler deals with it
    return socket.write(bytes);
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.lastReceived = Date.now();
    this.pingOutstanding = false;
    // An old broker answers a v5 CONNECT with a 3.1.1 CONNACK (remaining length 2; a v5 one is >= 3).
    if (
      !this.connected &&
      this.version === 5 &&
      chunk.length >= 4 &&
      chunk[0] === 0x20 &&
      chunk[1] === 0x02
    ) {
      const rc = chunk[3] ?? 0;
      this.awaitingConnack?.reject(
        new ConnectError(
          `connection refused by ${this.where}: it answered in MQTT 3.1.1 (${formatReasonCode(rc, 'CONNACK', 4)}): the broker does not speak MQTT 5; try -V 3.1.1`,
          { reasonCode: rc },
        ),
      );
      this.socket.destroy();
      return;
    }
    try {
      this.framer.push(chunk, this.onFramed);
    } catch (err) {
      if (!(err instanceof MalformedPacketError)) throw err;
      this.fail(err.reasonCode, `the broker sent a malformed packet: ${err.message}`);
    }
  }

  private readonly onFramed = (packet: Packet, raw: Buffer): void => {
    if (this.done) return;
    this.trace?.('in', packet, raw);
    this.events.packet(this, packet);
  };
}
