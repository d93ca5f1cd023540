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
}

export class WebSocketTransport implements Transport {
  private readonly ws: WebSocket;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;

  constructor(ws: WebSocket, remoteAddress: string | undefined, remotePort: number | undefined) {
    this.ws = ws;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
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
