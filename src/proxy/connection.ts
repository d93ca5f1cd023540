/**
 * One proxied connection: a client's byte stream, the upstream connection dialled for it, and the
 * two lanes between them (up: client to broker, down: broker to client). Observes packets (decoded
 * with the version of the client's CONNECT, secrets masked), applies the faults of each direction,
 * and closes each side when the other closes: a side that ends is answered, once what it sent has
 * been forwarded, by ending the other; a side that does not close within a grace period is cut.
 */
import type { Duplex } from 'node:stream';
import type { Recorder } from '../cli/record.js';
import { ConnectError, describeTarget, openTransport, type TransportOptions } from '../client/index.js';
import { MalformedPacketError } from '../protocol/errors.js';
import { inspectPacket } from '../protocol/inspect.js';
import type { Packet, ProtocolVersion } from '../protocol/types.js';
import { Lane, type LaneFaults } from './lane.js';
import { type FrameHead, Splitter, type SplitterHooks } from './splitter.js';

/** up: client to broker; down: broker to client. */
export type Direction = 'up' | 'down';

export interface ConnectionInfo {
  /** 'c1', 'c2', ... in the order the proxy accepted them. */
  readonly id: string;
  /** Where the client connected from: '127.0.0.1:50412'. */
  readonly peer: string;
  /** The listener it came through. */
  readonly via: 'tcp' | 'ws';
  /** The upstream, as in messages: 'localhost:1883', 'wss://host:443/mqtt'. */
  readonly upstream: string;
  /** The protocol version of the client's CONNECT (4 until one is seen). */
  version: ProtocolVersion;
  /** The client id of the client's CONNECT. */
  clientId?: string;
}

export interface PacketEvent {
  conn: ConnectionInfo;
  direction: Direction;
  /** Stream offset of the packet's first byte in its direction. */
  offset: number;
  /** Packet size in bytes (fixed header included). */
  size: number;
  /** Bytes of its fixed header (size - headerLength is the remaining length). */
  headerLength: number;
  typeCode: number;
  /** The version it was decoded with. */
  version: ProtocolVersion;
  /** The decoded packet, secrets masked; undefined when unreadable or too large to decode. */
  packet: Packet | undefined;
  /** Every violation found (empty when well-formed). */
  violations: readonly MalformedPacketError[];
  /** --drop-every: its bytes were not forwarded. */
  dropped: boolean;
  /** Larger than the decode limit: not decoded. */
  tooLarge: boolean;
  /** The bytes as received, secrets masked (undefined when too large). */
  bytes: Buffer | undefined;
}

/** What the proxy reports; every callback is optional. */
export interface ProxyEvents {
  /** A client connected; the upstream is being dialled. */
  open?(conn: ConnectionInfo): void;
  /** The upstream connection is open: bytes flow. */
  connected?(conn: ConnectionInfo): void;
  packet?(event: PacketEvent): void;
  /** Something worth one line: a direction no longer decoded, a fault that fired. */
  notice?(conn: ConnectionInfo, direction: Direction | undefined, message: string): void;
  /** Both sides are closed. `failure`: the upstream could not be reached, or --strict closed it. */
  close?(conn: ConnectionInfo, reason: string, failure: boolean): void;
  /** A problem of the proxy itself (the recording file failed). */
  warning?(message: string): void;
}

export interface DirectionFaults extends LaneFaults {
  /** Lose every Nth PUBLISH (or packet, with dropAny) of this direction; 0 = none. */
  dropEvery: number;
  /** Count every packet but CONNECT and CONNACK, not only PUBLISH. */
  dropAny: boolean;
}

export interface ConnectionFaults {
  up: DirectionFaults;
  down: DirectionFaults;
  /** Cut the connection this long after it opened: both sides, or one (the other is then closed). */
  disconnectAfter?: { seconds: number; side: Direction | 'both' };
}

/**
 * `events` with every callback guarded: an exception in one (a renderer's bug on a strange packet)
 * is reported once through `warning` and never reaches the socket handlers that called it.
 */
export function guardEvents(events: ProxyEvents): ProxyEvents {
  let reported = false;
  const report = (err: unknown) => {
    if (reported) return;
    reported = true;
    try {
      events.warning?.(
        `internal error while reporting traffic (forwarding goes on): ${err instanceof Error ? err.message : String(err)}`,
      );
    } catch {
      // nothing more to do
    }
  };
  const guarded: ProxyEvents = {};
  for (const key of Object.keys(events) as (keyof ProxyEvents)[]) {
    const fn = events[key] as ((...args: unknown[]) => void) | undefined;
    if (fn === undefined) continue;
    (guarded as Record<string, unknown>)[key] = (...args: unknown[]) => {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    };
  }
  return guarded;
}

export const NO_FAULTS: DirectionFaults = { delayMs: 0, bytesPerSecond: 0, dropEvery: 0, dropAny: false };

export interface ConnectionSettings {
  upstream: TransportOptions;
  connectTimeoutMs: number;
  faults: ConnectionFaults;
  /** Decode every packet (for events.packet). */
  observe: boolean;
  /** Close the connection on a malformed packet instead of forwarding it. */
  strict: boolean;
  recorder: Recorder | undefined;
  events: ProxyEvents;
  /** Packets up to this size are decoded (default 1 MiB). */
  decodeLimit?: number;
}

/** How long a side may stay open after the other closed and what it sent was forwarded. */
const CLOSE_GRACE_MS = 2000;

export class ProxyConnection {
  readonly info: ConnectionInfo;
  private upstream: Duplex | undefined = undefined;
  private dial: AbortController | undefined = undefined;
  private up: Lane | undefined = undefined;
  private down: Lane | undefined = undefined;
  private reason: string | undefined = undefined;
  private failure = false;
  private clientClosed = false;
  private upstreamClosed = false;
  private done = false;
  private graceTimer: NodeJS.Timeout | undefined = undefined;
  private faultTimer: NodeJS.Timeout | undefined = undefined;
  private rejection: string | undefined = undefined;

  constructor(
    private readonly client: Duplex,
    info: Omit<ConnectionInfo, 'version' | 'upstream'>,
    private readonly settings: ConnectionSettings,
    private readonly onDone: (conn: ProxyConnection) => void,
  ) {
    this.info = { ...info, upstream: describeTarget(settings.upstream), version: 4 };
  }

  /** Dials the upstream; bytes flow once it is open. */
  start(): void {
    const { events, upstream, connectTimeoutMs } = this.settings;
    this.client.on('error', (err) => this.because(`client connection error: ${err.message}`));
    this.client.on('close', () => this.onClientClose());
    events.open?.(this.info);
    const abort = new AbortController();
    this.dial = abort;
    const timer = setTimeout(
      () =>
        abort.abort(
          new ConnectError(`could not connect to ${this.info.upstream} within ${connectTimeoutMs / 1000} s`, {
            code: 'ETIMEDOUT',
          }),
        ),
      connectTimeoutMs,
    );
    openTransport(upstream, abort.signal).then(
      (socket) => {
        clearTimeout(timer);
        this.dial = undefined;
        if (this.clientClosed || this.reason !== undefined) {
          socket.destroy();
          this.upstreamClosed = true;
          this.finishIfClosed();
          return;
        }
        this.wire(socket);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.dial = undefined;
        this.upstreamClosed = true;
        const message = err instanceof Error ? err.message : String(err);
        this.fail(`cannot reach the broker: ${message}`);
      },
    );
  }

  /** Closes both sides (the proxy stops): ends them, cuts them after the grace period. */
  close(reason: string): void {
    this.because(reason);
    this.dial?.abort(new ConnectError(reason));
    this.up?.stop();
    this.down?.stop();
    this.client.end();
    this.upstream?.end();
    this.armGrace(0);
  }

  private wire(socket: Duplex): void {
    const { faults, events } = this.settings;
    this.upstream = socket;
    socket.on('error', (err) => this.because(`broker connection error: ${err.message}`));
    socket.on('close', () => this.onUpstreamClose());
    socket.on('end', () => {
      this.because('the broker closed the connection');
      this.down?.finish(() => this.client.end());
    });
    this.client.on('end', () => {
      this.because('the client closed the connection');
      this.up?.finish(() => socket.end());
    });
    const reject = () => this.fail(`--strict: ${this.rejection ?? 'malformed packet'}: connection closed`);
    this.up = new Lane(this.client, socket, faults.up, this.splitter('up', faults.up), reject);
    this.down = new Lane(socket, this.client, faults.down, this.splitter('down', faults.down), reject);
    events.connected?.(this.info);
    const cut = faults.disconnectAfter;
    if (cut !== undefined) {
      this.faultTimer = setTimeout(() => this.cut(cut.side, cut.seconds), cut.seconds * 1000);
      this.faultTimer.unref();
    }
    this.up.start();
    this.down.start();
  }

  /** --disconnect-after: cuts one side (the other is then closed as usual) or both. */
  private cut(side: Direction | 'both', seconds: number): void {
    const which = side === 'both' ? '' : side === 'up' ? ' (broker side)' : ' (client side)';
    this.because(`--disconnect-after ${seconds} s: connection cut${which}`);
    this.settings.events.notice?.(this.info, undefined, `--disconnect-after ${seconds} s: cutting${which}`);
    if (side !== 'down') this.upstream?.destroy();
    if (side !== 'up') this.client.destroy();
  }

  /** The splitter of one direction, when packets must be seen, recorded, checked or dropped. */
  private splitter(direction: Direction, faults: DirectionFaults): Splitter | undefined {
    const { observe, strict, recorder } = this.settings;
    if (!observe && !strict && recorder === undefined && faults.dropEvery === 0) return undefined;
    const hooks: SplitterHooks = {};
    if (faults.dropEvery > 0) {
      let counted = 0;
      hooks.drop = (h) => {
        const counts = faults.dropAny ? h.typeCode !== 1 && h.typeCode !== 2 : h.typeCode === 3;
        return counts && ++counted % faults.dropEvery === 0;
      };
    }
    if (observe || strict || recorder !== undefined) {
      hooks.frame = (raw, head, dropped) => this.observe(direction, raw, head, dropped);
      hooks.lost = (error, at) => {
        this.rejection = `cannot cut the stream into packets at byte ${at}: ${error.message}`;
        const then = strict ? 'closing (--strict)' : 'the rest is forwarded undecoded';
        this.settings.events.notice?.(this.info, direction, `${this.rejection}; ${then}`);
      };
    }
    if (recorder !== undefined) {
      const dir = direction === 'up' ? 'in' : 'out';
      // Bytes of packets too large to decode, recorded as they pass (mq decode joins the pieces);
      // not those that may hold a password or authentication data: they cannot be masked unread.
      hooks.piece = (bytes, head) => {
        if (head.typeCode !== 1 && head.typeCode !== 2 && head.typeCode !== 15)
          recorder.write(this.info.id, dir, bytes);
      };
    }
    const options =
      this.settings.decodeLimit !== undefined ? { assembleLimit: this.settings.decodeLimit } : {};
    return new Splitter(hooks, { ...options, hold: strict });
  }

  /** One whole packet seen in `direction`: decode, record, report; false rejects it (--strict). */
  private observe(direction: Direction, raw: Buffer | undefined, head: FrameHead, dropped: boolean): boolean {
    const { events, recorder, strict } = this.settings;
    const info = this.info;
    if (raw === undefined) {
      events.packet?.({ ...base(), packet: undefined, violations: [], bytes: undefined, tooLarge: true });
      return true;
    }
    const inspection = inspectPacket(raw, info.version);
    const { packet, violations } = inspection;
    if (packet?.type === 'CONNECT' && direction === 'up') {
      if (packet.protocolVersion === 3 || packet.protocolVersion === 4 || packet.protocolVersion === 5)
        info.version = packet.protocolVersion;
      info.clientId = packet.clientId;
    }
    if (direction === 'up' && head.index === 0 && head.typeCode !== 1) {
      violations.push(
        new MalformedPacketError("a client's first packet must be CONNECT", {
          offset: 0,
          packetType: packet?.type,
          rule: 'MQTT-3.1.0-1',
          reasonCode: 0x82,
        }),
      );
    }
    recorder?.write(
      info.id,
      direction === 'up' ? 'in' : 'out',
      inspection.bytes,
      dropped ? { dropped } : undefined,
    );
    events.packet?.({ ...base(), packet, violations, bytes: inspection.bytes, tooLarge: false });
    if (strict && violations.length > 0) {
      this.rejection = violations[0]!.message;
      return false;
    }
    return true;

    function base() {
      return {
        conn: info,
        direction,
        offset: head.offset,
        size: head.total,
        headerLength: head.headerLength,
        typeCode: head.typeCode,
        version: info.version,
        dropped,
      };
    }
  }

  private onClientClose(): void {
    this.clientClosed = true;
    this.because('the client closed the connection');
    this.down?.stop();
    if (this.dial !== undefined) this.dial.abort(new ConnectError('the client left'));
    const upstream = this.upstream;
    if (upstream !== undefined && this.up !== undefined) this.up.finish(() => upstream.end());
    this.armGrace(this.settings.faults.up.delayMs);
    this.finishIfClosed();
  }

  private onUpstreamClose(): void {
    this.upstreamClosed = true;
    this.because('the broker closed the connection');
    this.up?.stop();
    this.down?.finish(() => this.client.end());
    this.armGrace(this.settings.faults.down.delayMs);
    this.finishIfClosed();
  }

  /** The first cause of the end is the one reported. */
  private because(reason: string): void {
    this.reason ??= reason;
  }

  /**
   * Ends with a failure line: the upstream could not be reached (the client is cut), or --strict
   * closed it (both sides are ended: what was forwarded before the bad packet still arrives).
   */
  private fail(reason: string): void {
    if (this.reason === undefined) this.failure = true;
    this.because(reason);
    this.up?.stop();
    this.down?.stop();
    if (this.upstream === undefined) {
      this.client.destroy();
    } else {
      this.client.end();
      this.upstream.end();
      this.armGrace(0);
    }
    this.finishIfClosed();
  }

  private armGrace(extraMs: number): void {
    if (this.graceTimer !== undefined || this.done) return;
    this.graceTimer = setTimeout(() => {
      this.client.destroy();
      this.upstream?.destroy();
    }, CLOSE_GRACE_MS + extraMs);
    this.graceTimer.unref();
  }

  private finishIfClosed(): void {
    if (
      this.done ||
      !this.clientClosed ||
      !(this.upstreamClosed || (this.upstream === undefined && this.dial === undefined))
    )
      return;
    this.done = true;
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    if (this.faultTimer !== undefined) clearTimeout(this.faultTimer);
    this.up?.stop();
    this.down?.stop();
    this.settings.events.close?.(this.info, this.reason ?? 'closed', this.failure);
    this.onDone(this);
  }
}
