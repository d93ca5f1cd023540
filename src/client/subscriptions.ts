/**
 * SUBSCRIBE and UNSUBSCRIBE of one client session. Each request waits for its SUBACK / UNSUBACK
 * under a packet id shared with the publish flows, and goes out again on a new connection while
 * unanswered. The filters the broker granted are remembered, so that a new session (the broker
 * kept none) subscribes to them again.
 */
import type {
  Properties,
  ProtocolVersion,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
} from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { Deferred } from './inflight.js';
import type { PacketIdAllocator } from './session.js';

type PendingRequest =
  | ({ packet: SubscribePacket } & Deferred<SubackPacket>)
  | ({ packet: UnsubscribePacket } & Deferred<UnsubackPacket>);

interface Granted {
  sub: Subscription;
  properties?: Properties;
}

export class Subscriptions {
  private readonly requests = new Map<number, PendingRequest>();
  private readonly granted = new Map<string, Granted>();

  /** `ids` are shared with the publish flows. */
  constructor(
    private readonly ids: PacketIdAllocator,
    private readonly version: ProtocolVersion,
  ) {}

  /** Sends SUBSCRIBE on `conn` when connected (else on the next connection); resolves with the SUBACK. */
  subscribe(
    subscriptions: Subscription[],
    properties: Properties | undefined,
    conn: Connection | undefined,
  ): Promise<SubackPacket> {
    return new Promise<SubackPacket>((resolve, reject) => {
      const packet: SubscribePacket = { type: 'SUBSCRIBE', packetId: 0, subscriptions };
      const remember = (suback: SubackPacket) => {
        suback.reasonCodes.forEach((code: number, i: number) => {
          const sub = subscriptions[i];
          if (sub !== undefined && code < 0x80) {
            const entry: Granted = { sub };
            if (properties !== undefined) entry.properties = properties;
            this.granted.set(sub.topicFilter, entry);
          }
        });
        resolve(suback);
      };
      this.request({ packet, resolve: remember, reject }, properties, conn);
    });
  }

  /** Sends UNSUBSCRIBE like subscribe(); the filters are forgotten at once (no resubscribe to them). */
  unsubscribe(
    topicFilters: string[],
    properties: Properties | undefined,
    conn: Connection | undefined,
  ): Promise<UnsubackPacket> {
    return new Promise<UnsubackPacket>((resolve, reject) => {
      const packet: UnsubscribePacket = { type: 'UNSUBSCRIBE', packetId: 0, topicFilters };
      if (this.request({ packet, resolve, reject }, properties, conn)) {
        for (const f of topicFilters) this.granted.delete(f);
      }
    });
  }

  /** SUBACK / UNSUBACK: settles the request with that packet id. */
  onAck(packet: SubackPacket | UnsubackPacket): void {
    const req = this.requests.get(packet.packetId);
    if (req === undefined) return;
    this.requests.delete(packet.packetId);
    this.ids.release(packet.packetId);
    if (req.packet.type === 'SUBSCRIBE' && packet.type === 'SUBACK') {
      (req as Deferred<SubackPacket>).resolve(packet);
    } else if (req.packet.type === 'UNSUBSCRIBE' && packet.type === 'UNSUBACK') {
      (req as Deferred<UnsubackPacket>).resolve(packet);
    } else {
      req.reject(new Error(`the broker answered packet ${packet.packetId} with a ${packet.type}`));
    }
  }

  /** The SUBSCRIBE / UNSUBSCRIBE packets still waiting for their ack, in the order they were made. */
  unanswered(): (SubscribePacket | UnsubscribePacket)[] {
    return [...this.requests.values()].map((req) => req.packet);
  }

  /**
   * Subscribes again to every granted filter on `conn` (a new session): one SUBSCRIBE per set of
   * properties; `onSuback` is told each answer.
   */
  resubscribe(
    conn: Connection,
    onSuback: (suback: SubackPacket, subscriptions: Subscription[]) => void,
  ): void {
    const groups = new Map<Properties | undefined, Subscription[]>();
    for (const { sub, properties } of this.granted.values()) {
      const list = groups.get(properties) ?? [];
      list.push(sub);
      groups.set(properties, list);
    }
    for (const [properties, subs] of groups) {
      const packet: SubscribePacket = { type: 'SUBSCRIBE', packetId: 0, subscriptions: subs };
      const resubscribed = (suback: SubackPacket) => onSuback(suback, subs);
      if (!this.request({ packet, resolve: resubscribed, reject: () => {} }, properties, conn)) return;
    }
  }

  /** Rejects every request still waiting (the client is finished). */
  failAll(err: Error): void {
    for (const req of this.requests.values()) req.reject(err);
    this.requests.clear();
  }

  /**
   * Gives `req` a packet id and sends it now when `conn` is up (else it goes out on connect). False
   * (and `req` rejected) when no packet id is free.
   */
  private request(
    req: PendingRequest,
    properties: Properties | undefined,
    conn: Connection | undefined,
  ): boolean {
    const packetId = this.ids.allocate();
    if (packetId === undefined) {
      req.reject(new Error('all 65,535 packet identifiers are in use'));
      return false;
    }
    req.packet.packetId = packetId;
    if (properties !== undefined && this.version === 5) req.packet.properties = properties;
    this.requests.set(packetId, req);
    if (!conn?.connected) return true;
    try {
      conn.send(req.packet);
    } catch (err) {
      // Not encodable: nothing was written.
      this.requests.delete(packetId);
      this.ids.release(packetId);
      req.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return true;
  }
}
