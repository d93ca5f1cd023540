/**
 * A scripted "broker" on a real socket (port 0) for client tests that need one to misbehave: it
 * frames what each client sends and calls `onPacket` with the socket, so a test answers as it
 * likes (a CONNACK with a hostile reason string, a DISCONNECT right after CONNACK...).
 *
 *   const fake = await fakeBroker((socket, packet) => {
 *     if (packet.type === 'CONNECT') socket.end(encode({ type: 'CONNACK', ... }, 5));
 *   });
 *   ... 127.0.0.1:fake.port ...
 *   await fake.close();
 */
import { createServer, type Socket } from 'node:net';
import { Framer, type Packet, type ProtocolVersion } from '../../src/protocol/index.js';

export interface FakeBroker {
  port: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

export async function fakeBroker(
  onPacket: (socket: Socket, packet: Packet) => void,
  version: ProtocolVersion = 5,
): Promise<FakeBroker> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const framer = new Framer(version);
    socket.on('data', (chunk) => {
      try {
        framer.push(chunk, (packet) => onPacket(socket, packet));
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
