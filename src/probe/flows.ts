/**
 * Packet exchanges the checks share on raw connections: publish and see what the broker does with
 * it (acknowledged, refused, or the connection closed), subscribe and read the SUBACK.
 */
import type {
  Packet,
  Properties,
  PublishPacket,
  QoS,
  SubackPacket,
  Subscription,
} from '../protocol/index.js';
import { SourceClosed } from './inbox.js';
import type { CloseInfo, RawConnection } from './raw.js';
import type { CheckScope } from './scope.js';

/** What became of a packet: taken (with the ack's reason code for QoS > 0), or the connection closed. */
export type Fate =
  | { ok: true; reasonCode: number; ack: 'PINGRESP' | 'PUBACK' | 'PUBREC' }
  | { ok: false; close: CloseInfo };

/** Runs `exchange`; a connection that closes meanwhile turns into `{ ok: false, close }`. */
async function orClosed<T>(
  conn: RawConnection,
  exchange: () => Promise<T>,
): Promise<T | { ok: false; close: CloseInfo }> {
  try {
    return await exchange();
  } catch (err) {
    if (err instanceof SourceClosed) return { ok: false, close: await conn.closed };
    throw err;
  }
}

export interface RawPublish {
  topic: string;
  payload?: Buffer | string;
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
}

/** A PUBLISH packet (with a fresh packet id for QoS > 0). */
export function publishPacket(conn: RawConnection, p: RawPublish): PublishPacket {
  const qos = p.qos ?? 0;
  const packet: PublishPacket = {
    type: 'PUBLISH',
    dup: false,
    qos,
    retain: p.retain ?? false,
    topic: p.topic,
    payload: typeof p.payload === 'string' ? Buffer.from(p.payload) : (p.payload ?? Buffer.alloc(0)),
  };
  if (qos > 0) packet.packetId = conn.packetId();
  if (p.properties !== undefined && conn.version === 5) packet.properties = p.properties;
  return packet;
}

/**
 * Publishes and waits for the outcome: QoS 0 is taken when a PINGREQ sent after it is answered;
 * QoS 1 on PUBACK, QoS 2 on PUBREC (then PUBREL/PUBCOMP). A DISCONNECT or a close instead: not taken.
 */
export function publishFate(scope: CheckScope, conn: RawConnection, packet: PublishPacket): Promise<Fate> {
  return orClosed(conn, async (): Promise<Fate> => {
    conn.send(packet);
    const id = packet.packetId;
    if (packet.qos === 0 || id === undefined) {
      await scope.wait(conn.ping(`the broker to take a PUBLISH to ${packet.topic}`), 'PINGRESP');
      return { ok: true, reasonCode: 0, ack: 'PINGRESP' };
    }
    if (packet.qos === 1) {
      const ack = await scope.wait(
        conn.next('PUBACK', 'PUBACK', (a) => a.packetId === id),
        'PUBACK',
      );
      return { ok: true, reasonCode: ack.reasonCode ?? 0, ack: 'PUBACK' };
    }
    const rec = await scope.wait(
      conn.next('PUBREC', 'PUBREC', (a) => a.packetId === id),
      'PUBREC',
    );
    if ((rec.reasonCode ?? 0) < 0x80) {
      conn.send({ type: 'PUBREL', packetId: id });
      await scope.wait(
        conn.next('PUBCOMP', 'PUBCOMP', (a) => a.packetId === id),
        'PUBCOMP',
      );
    }
    return { ok: true, reasonCode: rec.reasonCode ?? 0, ack: 'PUBREC' };
  });
}

/** SUBSCRIBE and its SUBACK, or the close that came instead. */
export function subscribeFate(
  scope: CheckScope,
  conn: RawConnection,
  subscriptions: Subscription[],
  properties?: Properties,
): Promise<{ ok: true; suback: SubackPacket } | { ok: false; close: CloseInfo }> {
  return orClosed(conn, async () => {
    const packetId = conn.packetId();
    const packet: Packet = { type: 'SUBSCRIBE', packetId, subscriptions };
    if (properties !== undefined && conn.version === 5) packet.properties = properties;
    conn.send(packet);
    const suback = await scope.wait(
      conn.next('SUBACK', 'SUBACK', (a) => a.packetId === packetId),
      'SUBACK',
    );
    return { ok: true as const, suback };
  });
}

/** The DISCONNECT reason code of a close, if the broker sent one. */
export function disconnectCode(close: CloseInfo): number | undefined {
  return close.disconnect === undefined ? undefined : (close.disconnect.reasonCode ?? 0);
}

/** Bytes of payload that make a QoS 0 PUBLISH to `topic` exactly `size` bytes long (v5: no properties). */
export function payloadForSize(topic: string, size: number, version: 3 | 4 | 5): number {
  const topicBytes = Buffer.byteLength(topic);
  // remaining = 2 + topic + (v5: 1 property-length byte) + payload; header = 1 + varint(remaining)
  const fixed = 2 + topicBytes + (version === 5 ? 1 : 0);
  for (let varint = 1; varint <= 4; varint++) {
    const payload = size - 1 - varint - fixed;
    const remaining = fixed + payload;
    if (payload >= 0 && varintBytes(remaining) === varint) return payload;
  }
  return -1;
}

function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}
