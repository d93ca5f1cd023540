/**
 * The publish flows of one client session, in both directions, over whichever connection is up.
 * Outgoing: messages leave the queue while the in-flight limit and the socket allow, with topic
 * aliases, are acknowledged (PUBACK, or PUBREC -> PUBREL -> PUBCOMP) and are resent after a
 * reconnect. Incoming: topic aliases resolved, QoS 1 acknowledged, QoS 2 delivered exactly once.
 * The bookkeeping without I/O lives in inflight.ts, session.ts and topic-alias.ts; this module
 * says what goes on the wire.
 */
import type {
  ConnackPacket,
  Properties,
  ProtocolVersion,
  PubackPacket,
  PubcompPacket,
  PublishPacket,
  PubrecPacket,
  PubrelPacket,
} from '../protocol/index.js';
import type { Connection } from './connection.js';
import { OutgoingPublishes, type QueuedPublish } from './inflight.js';
import { IncomingQos2, type PacketIdAllocator } from './session.js';
import { IncomingAliases, OutgoingAliases } from './topic-alias.js';

export class PublishFlows {
  private readonly outgoing: OutgoingPublishes;
  private readonly incomingQos2 = new IncomingQos2();
  private aliasesOut = new OutgoingAliases(0);
  /** `{ topicAlias: n }`, one shared object per alias (see aliasProperties). */
  private readonly aliasProps: (Properties | undefined)[] = [];
  private readonly aliasesIn: IncomingAliases;
  /** The socket asked to wait for 'drain' before more is sent. */
  private waitingDrain = false;

  /**
   * `ids` are shared with SUBSCRIBE / UNSUBSCRIBE; `aliasMaximumIn` is the Topic Alias Maximum the
   * client announced in CONNECT; `deliver` hands an incoming message to the client.
   */
  constructor(
    ids: PacketIdAllocator,
    private readonly version: ProtocolVersion,
    aliasMaximumIn: number,
    private readonly deliver: (packet: PublishPacket) => void,
  ) {
    this.outgoing = new OutgoingPublishes(ids);
    this.aliasesIn = new IncomingAliases(aliasMaximumIn);
  }

  /** QoS 1/2 PUBLISH packets sent and not yet fully acknowledged. */
  get inflight(): number {
    return this.outgoing.inflight;
  }

  /** Queues a message and sends what may go out now on `conn` (undefined: offline). */
  publish(item: QueuedPublish, conn: Connection | undefined): void {
    this.outgoing.enqueue(item);
    this.flush(conn);
  }

  /**
   * A new connection is up: the CONNACK's limits apply (Receive Maximum, Topic Alias Maximum),
   * aliases start afresh, and a session the broker did not keep forgets incoming QoS 2 ids.
   */
  connected(connack: ConnackPacket, maxInflight: number | undefined): void {
    const props = connack.properties ?? {};
    this.outgoing.limit = Math.max(1, Math.min(maxInflight ?? 65535, props.receiveMaximum ?? 65535));
    this.aliasesOut = new OutgoingAliases(this.version === 5 ? (props.topicAliasMaximum ?? 0) : 0);
    this.aliasesIn.reset();
    if (!connack.sessionPresent) this.incomingQos2.clear();
  }

  /** [MQTT-4.4.0-1] resends un-acknowledged PUBLISH (DUP=1) and PUBREL, in their original order. */
  resend(conn: Connection): void {
    for (const r of this.outgoing.resend()) {
      if (r.kind === 'publish') this.sendPublish(conn, r.packet);
      else conn.send({ type: 'PUBREL', packetId: r.packetId });
    }
  }

  /** The connection is gone: whatever waited for its 'drain' waits for the next connection. */
  lost(): void {
    this.waitingDrain = false;
  }

  /** The socket of `conn`, the current connection, takes writes again. */
  drained(conn: Connection): void {
    if (!this.waitingDrain) return;
    this.waitingDrain = false;
    this.flush(conn);
  }

  /** Moves queued publishes onto the wire while the in-flight limit and the socket allow. */
  flush(conn: Connection | undefined): void {
    if (!conn?.connected || this.waitingDrain) return;
    for (let item = this.outgoing.next(); item !== undefined; item = this.outgoing.next()) {
      let ok: boolean;
      try {
        ok = this.sendPublish(conn, item.packet);
      } catch (err) {
        // Not encodable (a string too long...): nothing was written; refuse this one message.
        this.outgoing.failed(item, err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      this.outgoing.sent(item);
      if (!ok) {
        this.waitingDrain = true;
        return;
      }
    }
  }

  /** The broker's side of a flow: PUBACK, PUBREC, PUBCOMP for ours; PUBREL for one it sent. */
  onAck(conn: Connection, packet: PubackPacket | PubrecPacket | PubcompPacket | PubrelPacket): void {
    switch (packet.type) {
      case 'PUBACK':
        if (this.outgoing.onPuback(packet.packetId, packet.reasonCode ?? 0)) this.flush(conn);
        return;
      case 'PUBREC':
        switch (this.outgoing.onPubrec(packet.packetId, packet.reasonCode ?? 0)) {
          case 'pubrel':
            conn.send({ type: 'PUBREL', packetId: packet.packetId });
            return;
          case 'done':
            this.flush(conn);
            return;
          case 'unknown':
            conn.send(
              this.version === 5
                ? { type: 'PUBREL', packetId: packet.packetId, reasonCode: 0x92 }
                : { type: 'PUBREL', packetId: packet.packetId },
            );
            return;
        }
        return;
      case 'PUBCOMP':
        if (this.outgoing.onPubcomp(packet.packetId)) this.flush(conn);
        return;
      case 'PUBREL':
        this.incomingQos2.release(packet.packetId);
        conn.send({ type: 'PUBCOMP', packetId: packet.packetId });
        return;
      default: {
        const never: never = packet;
        throw new Error(`unhandled packet ${(never as { type: string }).type}`);
      }
    }
  }

  /** A PUBLISH from the broker: delivered (once, for QoS 2) and acknowledged. */
  onPublish(conn: Connection, packet: PublishPacket): void {
    if (this.version === 5) {
      const resolved = this.aliasesIn.resolve(packet.topic, packet.properties?.topicAlias);
      if ('error' in resolved) {
        conn.fail(0x94, `the broker sent a bad topic alias: ${resolved.error}`);
        return;
      }
      packet.topic = resolved.topic;
    }
    switch (packet.qos) {
      case 0:
        this.deliver(packet);
        return;
      case 1:
        this.deliver(packet);
        conn.send({ type: 'PUBACK', packetId: packet.packetId ?? 0 });
        return;
      case 2: {
        const id = packet.packetId ?? 0;
        if (this.incomingQos2.receive(id)) this.deliver(packet);
        conn.send({ type: 'PUBREC', packetId: id });
        return;
      }
      default: {
        const never: never = packet.qos;
        throw new Error(`bad QoS ${String(never)}`);
      }
    }
  }

  /** Rejects every message, sent or not (the client is finished). */
  failAll(err: Error): void {
    this.outgoing.failAll(err);
  }

  private sendPublish(conn: Connection, packet: PublishPacket): boolean {
    if (this.version !== 5) return conn.send(packet);
    const props = packet.properties;
    const userAlias = props?.topicAlias;
    if (userAlias !== undefined) {
      if (packet.topic !== '') this.aliasesOut.remember(packet.topic, userAlias);
      return conn.send(packet);
    }
    const alias = this.aliasesOut.aliasFor(packet.topic);
    if (alias === 0) return conn.send(packet);
    // The stored packet keeps its topic (a resend after reconnect needs it); the wire copy gets the alias.
    const n = Math.abs(alias);
    const wire: PublishPacket = {
      type: 'PUBLISH',
      dup: packet.dup,
      qos: packet.qos,
      retain: packet.retain,
      topic: alias > 0 ? '' : packet.topic,
      payload: packet.payload,
      properties: props === undefined ? this.aliasProperties(n) : { ...props, topicAlias: n },
    };
    if (packet.packetId !== undefined) wire.packetId = packet.packetId;
    return conn.send(wire);
  }

  /** `{ topicAlias: n }`, one shared object per alias (messages without other properties). */
  private aliasProperties(n: number): Properties {
    let p = this.aliasProps[n];
    if (p === undefined) {
      p = { topicAlias: n };
      this.aliasProps[n] = p;
    }
    return p;
  }
}
