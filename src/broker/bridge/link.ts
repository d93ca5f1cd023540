/**
 * A bridge's side of the local broker: an MQTT 5 session inside the broker's own process, over a
 * Transport that hands bytes across instead of a socket. The broker treats it as any client (the
 * trie, QoS 1/2 flows, its in-flight window and queue, --persist, --trace) except that it is trusted
 * (listener 'bridge': no admission checks, no ACL, no fault injection).
 *
 * - Local messages for the remote broker (the out/both subscriptions) arrive through `message`
 *   with a `done` callback: the PUBACK (or PUBREC) goes to the broker only when it is called, i.e.
 *   once the remote broker has the message. Until then the broker keeps it in flight, and what does
 *   not fit the window waits in the session's queue (bounded by --max-queued).
 * - Messages from the remote broker are published into the broker with publish(), synchronously:
 *   when publish() returns, the message has been routed (queued, stored as retained, persisted).
 * The session is persistent (clean start off, expiry never): with --persist, what waits for the
 * remote survives a restart of the broker.
 */
import { PacketIdAllocator } from '../../client/session.js';
import {
  encode,
  Framer,
  type Packet,
  type Properties,
  type PublishPacket,
  type QoS,
} from '../../protocol/index.js';
import { Connection, type ConnectionContext } from '../connection.js';
import type { BrokerCore } from '../core.js';
import type { Transport } from '../transport.js';

export interface LinkEvents {
  /**
   * A message from the local broker for the remote one. QoS 1/2: call `done` once it is delivered
   * (or given up); the broker keeps it until then. QoS 0: `done` does nothing.
   */
  message(packet: PublishPacket, done: () => void): void;
  /** A line for the broker's log. */
  log(line: string): void;
  /** The broker ended the link (it is shutting down). */
  closed(): void;
}

/** The broker as the link's connection sees it: the broker's own context, minus fault injection. */
class LinkContext implements ConnectionContext {
  readonly maxPacketSize = undefined;
  readonly delayMs = 0;
  /** The link's own reads: nothing to pause (it is never a socket). */
  reader: Connection | undefined = undefined;
  constructor(private readonly core: BrokerCore) {}
  get maxConnectSize() {
    return this.core.maxConnectSize;
  }
  get decodeOptions() {
    return this.core.decodeOptions;
  }
  get maxUserProperties() {
    return this.core.maxUserProperties;
  }
  get maxSubscriptions() {
    return this.core.maxSubscriptions;
  }
  get counters() {
    return this.core.counters;
  }
  get tracing() {
    return this.core.tracing;
  }
  log(line: string): void {
    this.core.log(line);
  }
  traceIn(conn: Connection, packet: Packet, raw: Buffer): void {
    this.core.traceIn(conn, packet, raw);
  }
  traceOut(conn: Connection, bytes: Buffer): void {
    this.core.traceOut(conn, bytes);
  }
  faultDrop(): boolean {
    return false;
  }
  now(): number {
    return this.core.now();
  }
  drained(conn: Connection): void {
    this.core.drained(conn);
  }
  scheduleFlush(conn: Connection): void {
    this.core.scheduleFlush(conn);
  }
  syncPersist(): void {
    this.core.syncPersist();
  }
  handlePacket(conn: Connection, packet: Packet, raw: Buffer): void {
    this.core.handlePacket(conn, packet, raw);
  }
  connectionEnded(conn: Connection): void {
    this.core.connectionEnded(conn);
  }
  connectionClosed(conn: Connection): void {
    this.core.connectionClosed(conn);
  }
}

const SESSION_NEVER_EXPIRES = 0xffffffff;

export class BridgeLink implements Transport {
  readonly remoteAddress = 'in-process';
  readonly remotePort = undefined;
  readonly writableLength = 0;
  private readonly core: BrokerCore;
  private readonly conn: Connection;
  private readonly events: LinkEvents;
  readonly clientId: string;
  private readonly framer = new Framer(5);
  /** What the broker wrote and the link has not read yet (read in a microtask: no re-entry). */
  private inbox: Buffer[] = [];
  private reading = false;
  /** Packet ids of the link's own QoS 1/2 PUBLISHes until PUBACK / PUBCOMP. */
  private readonly ids = new PacketIdAllocator();
  /** The out/both filters (see start). */
  private subscriptions: { filter: string; qos: QoS; id: number }[] = [];
  /** SUBSCRIBE packet id -> its filter, until the SUBACK. */
  private readonly pendingSubscribe = new Map<number, string>();
  private open = true;
  /** The link's QoS 2 PUBLISHes without PUBREL yet (the broker's Receive Maximum counts them). */
  private qos2Unreleased = 0;

  constructor(core: BrokerCore, clientId: string, events: LinkEvents) {
    this.core = core;
    this.clientId = clientId;
    this.events = events;
    this.conn = new Connection(new LinkContext(core), this, 'bridge', core.now());
    core.connections.add(this.conn);
  }

  /**
   * CONNECT (persistent session) and a SUBSCRIBE per filter, with its Subscription Identifier (the
   * bridge forwards one copy of a message that matches several), No Local (what the bridge
   * publishes locally does not come back), Retain As Published, and no retained messages now (see
   * resendRetained). Subscriptions of an earlier run that are no longer wanted go on CONNACK.
   */
  start(subscriptions: { filter: string; qos: QoS; id: number }[]): void {
    this.send({
      type: 'CONNECT',
      protocolVersion: 5,
      clean: false,
      keepalive: 0,
      clientId: this.clientId,
      properties: { sessionExpiryInterval: SESSION_NEVER_EXPIRES },
    });
    this.subscriptions = subscriptions;
    for (const s of subscriptions) this.subscribe(s, 2);
  }

  /** SUBSCRIBE again, asking for the retained messages (each time the remote link comes up). */
  resendRetained(): void {
    for (const s of this.subscriptions) this.subscribe(s, 0);
  }

  /**
   * Publishes a message into the local broker as this session (so No Local keeps it from coming
   * back). Synchronous: the broker has routed it when this returns.
   */
  publish(topic: string, payload: Buffer, qos: QoS, retain: boolean, properties?: Properties): void {
    if (!this.open) return;
    const core = this.core;
    // Within the broker's limits (--max-qos, --no-retain, --receive-maximum), as any client must be.
    let q = Math.min(qos, core.maxQoS) as QoS;
    if (q === 2 && this.qos2Unreleased >= core.receiveMaximum) q = 1;
    const p: PublishPacket = {
      type: 'PUBLISH',
      dup: false,
      qos: q,
      retain: retain && !core.noRetain,
      topic,
      payload,
    };
    if (properties !== undefined) p.properties = properties;
    if (q > 0) {
      const id = this.ids.allocate();
      // 65,535 unacknowledged in one tick cannot happen (acks come every tick); if it did, QoS 1.
      if (id === undefined) p.qos = 1;
      p.packetId = id ?? 1;
      if (p.qos === 2) this.qos2Unreleased++;
    }
    try {
      this.send(p);
    } catch (err) {
      // Not encodable (a remapped topic too long...): nothing was sent.
      if (p.packetId !== undefined) this.ids.release(p.packetId);
      if (p.qos === 2) this.qos2Unreleased--;
      throw err;
    }
  }

  /** DISCONNECT (the session stays for the next start) and close. */
  close(): void {
    if (!this.open) return;
    this.send({ type: 'DISCONNECT', reasonCode: 0 });
    this.shut();
  }

  // ---- Transport: what the broker's Connection calls ------------------------------------------

  write(data: Buffer): boolean {
    if (!this.open) return true;
    this.inbox.push(data);
    if (!this.reading) {
      this.reading = true;
      queueMicrotask(this.readInbox);
    }
    return true;
  }

  end(): void {
    queueMicrotask(() => this.shut());
  }

  destroy(): void {
    queueMicrotask(() => this.shut());
  }

  // ---- inside ---------------------------------------------------------------------------------

  private send(packet: Packet): void {
    if (!this.open) return;
    this.conn.onData(encode(packet, 5));
  }

  private subscribe(s: { filter: string; qos: QoS; id: number }, retainHandling: 0 | 2): void {
    const packetId = this.ids.allocate() ?? 1;
    this.pendingSubscribe.set(packetId, s.filter);
    this.send({
      type: 'SUBSCRIBE',
      packetId,
      subscriptions: [
        { topicFilter: s.filter, qos: s.qos, noLocal: true, retainAsPublished: true, retainHandling },
      ],
      properties: { subscriptionIdentifiers: [s.id] },
    });
  }

  private shut(): void {
    if (!this.open) return;
    this.open = false;
    this.inbox = [];
    this.conn.onClose();
    this.events.closed();
  }

  private readonly readInbox = (): void => {
    this.reading = false;
    const chunks = this.inbox;
    this.inbox = [];
    try {
      for (const chunk of chunks) if (this.open) this.framer.push(chunk, this.onPacket);
    } catch (err) {
      // The broker's own bytes: a failure here is a bug, logged; the link goes on.
      this.events.log(
        `internal error on the local link: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };

  private readonly onPacket = (packet: Packet): void => {
    switch (packet.type) {
      case 'PUBLISH':
        this.onPublish(packet);
        return;
      case 'PUBREL':
        this.send({ type: 'PUBCOMP', packetId: packet.packetId });
        return;
      case 'PUBACK':
      case 'PUBCOMP':
      case 'SUBACK':
      case 'UNSUBACK':
        this.ids.release(packet.packetId);
        if (packet.type === 'SUBACK') this.checkSuback(packet.packetId, packet.reasonCodes);
        return;
      case 'PUBREC':
        this.qos2Unreleased--;
        this.send({ type: 'PUBREL', packetId: packet.packetId });
        return;
      case 'CONNACK':
        if (packet.reasonCode !== 0)
          this.events.log(`the local broker refused the link (reason ${packet.reasonCode})`);
        else if (packet.sessionPresent) this.dropStaleSubscriptions();
        return;
      case 'DISCONNECT':
        this.shut();
        return;
      default:
        return;
    }
  };

  private onPublish(p: PublishPacket): void {
    const id = p.packetId ?? 0;
    if (p.qos === 0) {
      this.events.message(p, noop);
      return;
    }
    // The payload is a view into the broker's write: the message may wait for the remote broker.
    p.payload = Buffer.from(p.payload);
    let done = false;
    this.events.message(p, () => {
      if (done) return;
      done = true;
      this.send({ type: p.qos === 1 ? 'PUBACK' : 'PUBREC', packetId: id });
    });
  }

  private checkSuback(packetId: number, codes: number[]): void {
    const filter = this.pendingSubscribe.get(packetId);
    this.pendingSubscribe.delete(packetId);
    const code = codes[0] ?? 0;
    if (code >= 0x80 && filter !== undefined)
      this.events.log(
        `the local broker refused the subscription to '${filter}' (reason 0x${code.toString(16)})`,
      );
  }

  /** A session resumed from an earlier run (--persist) drops the subscriptions no topic wants now. */
  private dropStaleSubscriptions(): void {
    const session = this.core.sessions.get(this.clientId);
    if (session === undefined) return;
    const wanted = new Set(this.subscriptions.map((s) => s.filter));
    const stale = [...session.subs.keys()].filter((f) => !wanted.has(f));
    if (stale.length === 0) return;
    const id = this.ids.allocate() ?? 1;
    this.send({ type: 'UNSUBSCRIBE', packetId: id, topicFilters: stale });
  }
}

function noop(): void {}
