/**
 * Plain-TCP connections on libuv's stream handle directly, without node:net's Socket on top.
 *
 * Why: a net.Socket is a Duplex stream (a ReadableState, a WritableState, an EventEmitter, a
 * nextTick per write). Measured here with 2,000 connections, a server that only answers CONNECT
 * costs ~110-130 us of CPU and ~4.8 KB of RSS per connection through net.Socket, ~43 us and ~2.9
 * KB on the handle alone (Mosquitto: ~50 us, 0.7 KB): the stream layer alone was twice Mosquitto's
 * whole cost. Each read and write of a busy connection pays the same layer again.
 *
 * How: the listener is still a net.Server (address resolution, bind errors, close); once it
 * listens, its handle's connection callback is replaced, so each accepted connection arrives as
 * the TCP handle net.Socket would have wrapped. The handle API used (tcp_wrap, stream_wrap:
 * readStart/readStop, onread, writeBuffer with a WriteWrap, shutdown, close, getpeername,
 * writeQueueSize) is what net.js itself is written on, reached through process.binding (whose
 * allowlist keeps tcp_wrap and stream_wrap, without a runtime deprecation unless pending
 * deprecations are asked for: then it is not used). When it is not there in the expected shape,
 * the listener keeps node:net's sockets (listeners.ts) and nothing else changes.
 * BrokerOptions.nodeStreams forces that path (tests keep it working).
 */
import type { Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { Connection } from './connection.js';
import type { Transport } from './transport.js';

/** The parts of tcp_wrap's TCP handle (and stream_wrap's StreamBase) used here. */
interface TcpHandle {
  onread: (this: TcpHandle) => void;
  readStart(): number;
  readStop(): number;
  /** Reads go into `buffer` (one for every connection) instead of a new allocation each. */
  useUserBuffer(buffer: Buffer): void;
  writeBuffer(req: WriteReq, data: Buffer): number;
  shutdown(req: ShutdownReq): number;
  close(callback: () => void): void;
  getpeername(out: { address?: string; port?: number }): number;
  setNoDelay(on: boolean): number;
  readonly writeQueueSize: number;
  /** The transport of an accepted connection. */
  [kTransport]?: TcpTransport;
}

interface WriteReq {
  handle: TcpHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  /** Kept alive until the write completes. */
  buffer: Buffer | null;
}

interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}

interface StreamWrap {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const kTransport = Symbol('mq.tcp.transport');
/**
 * Every connection reads into this one buffer (libuv's reads are one at a time, each handled before
 * the next): no allocation per read. A read's bytes are valid only while it is handled: the framer
 * copies a packet it has to keep whole, and a message the broker keeps (retained, queued, QoS 1/2,
 * a will) is copied (Message.own, ownWill); everything else is consumed before the read returns.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** libuv's end of stream (UV_EOF). */
const UV_EOF = -4095;

/** The TCP handle's methods used here: every one must be there, or node:net's sockets are used. */
const HANDLE_METHODS = [
  'readStart',
  'readStop',
  'useUserBuffer',
  'writeBuffer',
  'shutdown',
  'close',
  'getpeername',
  'setNoDelay',
] as const;

/**
 * stream_wrap's classes and shared state, or undefined when this Node does not expose them, or
 * its TCP handle lacks a method used here (checked once, at start, not on a client's connection).
 */
function loadStreamWrap(): StreamWrap | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding;
    const s = binding('stream_wrap') as Partial<StreamWrap>;
    const tcp = (binding('tcp_wrap') as { TCP?: { prototype?: Record<string, unknown> } }).TCP?.prototype;
    if (
      typeof s.WriteWrap === 'function' &&
      typeof s.ShutdownWrap === 'function' &&
      s.streamBaseState instanceof Int32Array &&
      typeof s.kReadBytesOrError === 'number' &&
      typeof s.kLastWriteWasAsync === 'number' &&
      tcp !== undefined &&
      HANDLE_METHODS.every((m) => typeof tcp[m] === 'function') &&
      'writeQueueSize' in tcp
    )
      return s as StreamWrap;
  } catch {
    // No process.binding, or not this one: node:net's sockets it is.
  }
  return undefined;
}

/**
 * Node prints DEP0111 for process.binding when pending deprecations are asked for (a flag, or
 * either variable): the broker then keeps node:net's sockets rather than warn its user.
 */
function pendingDeprecation(): boolean {
  return (
    process.execArgv.includes('--pending-deprecation') ||
    (process.env.NODE_OPTIONS ?? '').includes('--pending-deprecation') ||
    process.env.NODE_PENDING_DEPRECATION === '1'
  );
}

/** Loaded by the first acceptOnHandles (not at start: every mq command loads this module). */
let wrap: StreamWrap | undefined;
let loaded = false;

const State = {
  Open: 0,
  /** end(): shut down after the pending writes; closed at the peer's end of stream. */
  Ending: 1,
  Closed: 2,
} as const;
type State = (typeof State)[keyof typeof State];

export class TcpTransport implements Transport {
  /** Set by the listener right after the connection is accepted. */
  conn: Connection | undefined = undefined;
  private readonly handle: TcpHandle;
  private state: State = State.Open;
  private shutDown = false;
  private peerEnded = false;
  private peer: { address?: string; port?: number } | undefined = undefined;

  constructor(handle: TcpHandle) {
    this.handle = handle;
    handle[kTransport] = this;
  }

  /**
   * Hands `data` to the socket. libuv writes at once what the kernel takes; the rest it queues
   * (writeQueueSize) and `data` is kept referenced until that write completes.
   */
  write(data: Buffer): boolean {
    if (this.state === State.Closed) return false;
    const req = new wrap!.WriteWrap();
    req.handle = this.handle;
    req.oncomplete = onWriteComplete;
    req.async = false;
    req.buffer = null;
    const err = this.handle.writeBuffer(req, data);
    if (err !== 0) {
      this.destroy();
      return false;
    }
    if (wrap!.streamBaseState[wrap!.kLastWriteWasAsync] !== 0) {
      req.async = true;
      req.buffer = data;
    }
    return true;
  }

  get writableLength(): number {
    return this.state === State.Closed ? 0 : this.handle.writeQueueSize;
  }

  /** Shuts the sending side down once the pending writes are out; closes at the peer's end. */
  end(): void {
    if (this.state !== State.Open) return;
    this.state = State.Ending;
    const req = new wrap!.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = onShutdown;
    if (this.handle.shutdown(req) !== 0) this.destroy();
  }

  destroy(): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    this.handle.close(() => this.conn?.onClose());
  }

  pause(): void {
    if (this.state !== State.Closed) this.handle.readStop();
  }

  resume(): void {
    if (this.state !== State.Closed) this.handle.readStart();
  }

  get remoteAddress(): string | undefined {
    return this.peerName().address;
  }

  get remotePort(): number | undefined {
    return this.peerName().port;
  }

  /** getpeername, once (a system call: only log lines ask). */
  private peerName(): { address?: string; port?: number } {
    if (this.peer === undefined) {
      const out: { address?: string; port?: number } = {};
      if (this.state !== State.Closed) this.handle.getpeername(out);
      this.peer = out;
    }
    return this.peer;
  }

  /** A read (into READ_BUFFER): bytes, the peer's end of stream, or an error. */
  onRead(): void {
    const nread = wrap!.streamBaseState[wrap!.kReadBytesOrError]!;
    if (nread > 0) {
      if (this.state === State.Open) this.conn?.onData(READ_BUFFER.subarray(0, nread));
      return;
    }
    if (nread === 0) return;
    if (nread !== UV_EOF) {
      // ECONNRESET and the like.
      this.destroy();
      return;
    }
    // The peer is done sending: like net.Socket (allowHalfOpen false), what is still queued goes
    // out, then the connection closes.
    this.peerEnded = true;
    if (this.state === State.Open) this.end();
    else if (this.shutDown) this.destroy();
  }

  /** The shutdown end() asked for is done: closed if the peer has ended too (else at its end). */
  onShutdown(): void {
    this.shutDown = true;
    if (this.peerEnded) this.destroy();
  }

  /** A write libuv had to queue completed. */
  onWriteComplete(status: number): void {
    if (status < 0) {
      this.destroy();
      return;
    }
    if (this.state !== State.Closed && this.handle.writeQueueSize === 0) this.conn?.onDrain();
  }
}

function onRead(this: TcpHandle): void {
  this[kTransport]?.onRead();
}

function onWriteComplete(this: WriteReq, status: number): void {
  this.buffer = null;
  this.handle[kTransport]?.onWriteComplete(status);
}

function onShutdown(this: ShutdownReq, _status: number): void {
  this.handle[kTransport]?.onShutdown();
}

/** What net.Server keeps of its listening handle (not public API). */
interface ServerWithHandle {
  _handle?: { onconnection?: unknown } | null;
}

/**
 * Takes over the connections of `server` (a net.Server, listening): each one becomes a
 * TcpTransport given to `accept`. false (and nothing changed) when this Node does not expose the
 * handle API in the expected shape: the server's 'connection' event goes on as before.
 */
export function acceptOnHandles(
  server: Server,
  accept: (transport: TcpTransport) => Connection,
  log: (line: string) => void,
): boolean {
  if (!loaded) {
    loaded = true;
    wrap = pendingDeprecation() ? undefined : loadStreamWrap();
  }
  const handle = (server as unknown as ServerWithHandle)._handle;
  if (wrap === undefined || handle == null || typeof handle.onconnection !== 'function') return false;
  handle.onconnection = (err: number, client: TcpHandle | undefined) => {
    if (err !== 0 || client === undefined) {
      // EMFILE (out of descriptors) and the like: the connection was never ours.
      log(`listener error: accept ${getSystemErrorName(err)}`);
      return;
    }
    client.setNoDelay(true);
    const transport = new TcpTransport(client);
    transport.conn = accept(transport);
    client.useUserBuffer(READ_BUFFER);
    client.onread = onRead;
    const rc = client.readStart();
    if (rc !== 0) transport.destroy();
  };
  return true;
}
