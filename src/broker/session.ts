/**
 * Session state [MQTT 5.0 4.1]: subscriptions, QoS 1/2 messages in flight and queued, QoS 2
 * packet ids received and not yet released. Outlives connections while its expiry allows.
 */
import type { ProtocolVersion, Will } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { Outgoing } from './message.js';
import type { SubEntry } from './trie.js';

/** Session Expiry Interval meaning "never expires" (and every 3.1.1 clean-session=0 session). */
export const NEVER_EXPIRES = 0xffffffff;

/** A will waiting out its Will Delay Interval: published at `dueAt` (wall clock, ms) or when the session ends. */
export interface PendingWill {
  will: Will;
  dueAt: number;
}

export class Session {
  readonly clientId: string;
  version: ProtocolVersion;
  conn: Connection | undefined = undefined;
  // Created on first use: most sessions of a connection storm never need them (memory per idle
  // connection is a target).
  private subsMap: Map<string, SubEntry> | undefined = undefined;
  private inflightMap: Map<number, Outgoing> | undefined = undefined;
  private queueList: Outgoing[] | undefined = undefined;
  /** Incoming QoS 2 packet ids between PUBLISH and PUBREL (exactly-once: no second delivery). */
  incomingQos2: Set<number> | undefined = undefined;
  nextPacketId = 1;
  /** Seconds; 0 ends the session with the connection; NEVER_EXPIRES keeps it. */
  expiryInterval = 0;
  expiryTimer: NodeJS.Timeout | undefined = undefined;
  /** A will waiting for its Will Delay Interval (v5) after the connection ended. */
  pendingWill: PendingWill | undefined = undefined;
  willTimer: NodeJS.Timeout | undefined = undefined;
  /** Username at the last CONNECT (ACL patterns use it). */
  username: string | undefined = undefined;
  /**
   * A 3.1/3.1.1 bridge (Mosquitto's CONNECT flag, "try_private"): its subscriptions are No Local
   * and Retain As Published, as Mosquitto treats bridges.
   */
  bridge = false;
  /** Messages dropped because the queue was full since the last log line about it. */
  droppedSinceLog = 0;
  dropReason = '';
  /** Written to the --persist log (so its end must be too). */
  persisted = false;

  constructor(clientId: string, version: ProtocolVersion) {
    this.clientId = clientId;
    this.version = version;
  }

  /** Full filter (shares included) -> subscription. */
  get subs(): Map<string, SubEntry> {
    this.subsMap ??= new Map();
    return this.subsMap;
  }

  get subCount(): number {
    return this.subsMap?.size ?? 0;
  }

  /** Outgoing QoS>0 messages sent and not yet completed, by packet id, in send order. */
  get inflight(): Map<number, Outgoing> {
    this.inflightMap ??= new Map();
    return this.inflightMap;
  }

  get inflightSize(): number {
    return this.inflightMap?.size ?? 0;
  }

  /** Outgoing QoS>0 messages waiting for a free in-flight slot or for the client to come back. */
  get queue(): Outgoing[] {
    this.queueList ??= [];
    return this.queueList;
  }

  get queueLength(): number {
    return this.queueList?.length ?? 0;
  }

  /** A packet id not in use by an in-flight message [MQTT-2.2.1-3]. */
  allocatePacketId(): number {
    for (let tries = 0; tries < 65_535; tries++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65_535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    return 0;
  }
}
