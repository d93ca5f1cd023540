/**
 * What a Connection needs from its byte stream. net.Socket and tls.TLSSocket fit as they are;
 * WebSocket is adapted (its messages are a byte stream: one MQTT packet may span frames and one
 * frame may hold several packets).
 */
import type { WebSocket } from 'ws';

export interface Transport {
  write(data: Buffer): unknown;
  end(): unknown;
  destroy(): unknown;
  /** Stop / start reading (backpressure while a CONNECT's password is checked). */
  pause?(): unknown;
  resume?(): unknown;
  readonly writableLength: number;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** The client's CONNECT was accepted: a transport that limits what it buffers before may lift it. */
  connectAccepted?(): void;
  /** --use-identity-as-username: the verified client certificate's subject CN ('' when it has none). */
  certUser?: string | undefined;
}

/** What `ws` keeps of a WebSocket's receiver: the largest message it buffers (not public API). */
interface WsReceiver {
  _maxPayload?: unknown;
}

export class WebSocketTransport implements Transport {
  private readonly ws: WebSocket;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The largest WebSocket message accepted once the CONNECT is. */
  private readonly maxMessage: number;
  certUser: string | undefined = undefined;

  /**
   * `ws` is accepted with a small maxPayload (--max-connect-size: `ws` buffers a whole message
   * before the broker sees a byte of it); `maxMessage` replaces it once the CONNECT is accepted.
   */
  constructor(
    ws: WebSocket,
    remoteAddress: string | undefined,
    remotePort: number | undefined,
    maxMessage: number,
  ) {
    this.ws = ws;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.maxMessage = maxMessage;
  }

  connectAccepted(): void {
    // ws has no public way to change a socket's maxPayload: its receiver's field, when it is there.
    const receiver = (this.ws as unknown as { _receiver?: WsReceiver })._receiver;
    if (receiver !== undefined && typeof receiver._maxPayload === 'number')
      receiver._maxPayload = this.maxMessage;
  }

  write(data: Buffer): boolean {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data, { binary: true });
    return true;
  }

  end(): void {
    this.ws.close();
  }

  destroy(): void {
    this.ws.terminate();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  get writableLength(): number {
    return this.ws.bufferedAmount;
  }
}
