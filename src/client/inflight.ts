/**
 * The sender's side of QoS 1 and 2 (MQTT 5.0 4.3.2, 4.3.3): publishes wait in a queue until the
 * in-flight limit (the lower of -M and the broker's Receive Maximum) and a free packet id allow
 * them out; then each waits for PUBACK, or PUBREC -> PUBREL -> PUBCOMP. Un-acked messages stay here
 * across reconnects so they can be resent. No I/O: the client writes what this says to write.
 */
import {
  formatReasonCode,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  packetSize,
  validateTopicName,
} from '../protocol/index.js';
import { PublishRefusedError } from './errors.js';
import { Fifo, type PacketIdAllocator } from './session.js';

export interface PublishResult {
  packetId?: number;
  /** PUBACK / PUBREC reason code (v5); 0 for QoS 0 and for 3.1/3.1.1. */
  reasonCode: number;
}

export interface Deferred<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

/** A publish waiting to go out. */
export interface QueuedPublish extends Deferred<PublishResult> {
  packet: PublishPacket;
}

/** A QoS 1/2 publish sent and not yet acknowledged. */
interface Unacked extends Deferred<PublishResult> {
  packet: PublishPacket;
  /** 'publish': waiting for PUBACK / PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
  pubrecCode: number;
}

/** What every QoS 0 publish resolves with (one shared object: -l sends 100k+ a second). */
const WRITTEN: PublishResult = Object.freeze({ reasonCode: 0 });

export class OutgoingPublishes {
  private readonly queue = new Fifo<QueuedPublish>();
  private readonly unacked = new Map<number, Unacked>();
  /** At most this many QoS 1/2 messages un-acked at once. */
  limit = 65535;

  /** Packet ids are shared with SUBSCRIBE / UNSUBSCRIBE. */
  constructor(private readonly ids: PacketIdAllocator) {}

  /** QoS 1/2 messages sent and not fully acknowledged. */
  get inflight(): number {
    return this.unacked.size;
  }

  /** Messages waiting to be sent. */
  get queued(): number {
    return this.queue.length;
  }

  enqueue(item: QueuedPublish): void {
    this.queue.push(item);
  }

  /**
   * The next message that may go out now, taken off the queue; a QoS 1/2 one has its packet id
   * assigned. undefined when the queue is empty, the in-flight limit is reached, or no id is free.
   * Call sent() or failed() with it next.
   */
  next(): QueuedPublish | undefined {
    const item = this.queue.peek();
    if (item === undefined) return undefined;
    if (item.packet.qos > 0) {
      if (this.unacked.size >= this.limit) return undefined;
      const id = this.ids.allocate();
      if (id === undefined) return undefined;
      item.packet.packetId = id;
    }
    this.queue.take();
    return item;
  }

  /** `item` was written: QoS 0 is done, QoS 1/2 now waits for its acknowledgement. */
  sent(item: QueuedPublish): void {
    const id = item.packet.packetId;
    if (item.packet.qos === 0 || id === undefined) {
      item.resolve(WRITTEN);
      return;
    }
    this.unacked.set(id, {
      packet: item.packet,
      resolve: item.resolve,
      reject: item.reject,
      state: 'publish',
      pubrecCode: 0,
    });
  }

  /** `item` could not be written (not encodable): nothing went out. */
  failed(item: QueuedPublish, err: Error): void {
    if (item.packet.qos > 0 && item.packet.packetId !== undefined) this.ids.release(item.packet.packetId);
    item.reject(err);
  }

  /** PUBACK for a QoS 1 message; false when no such message is waiting for one. */
  onPuback(packetId: number, reasonCode: number): boolean {
    const entry = this.unacked.get(packetId);
    if (entry === undefined || entry.packet.qos !== 1) return false;
    this.complete(packetId, entry, reasonCode, 'PUBACK');
    return true;
  }

  /**
   * PUBREC for a QoS 2 message: 'pubrel' = send PUBREL now; 'done' = refused (reason >= 0x80), the
   * flow ends without PUBREL [MQTT-4.3.3-4]; 'unknown' = no such message (answer PUBREL 0x92 in v5).
   */
  onPubrec(packetId: number, reasonCode: number): 'pubrel' | 'done' | 'unknown' {
    const entry = this.unacked.get(packetId);
    if (entry === undefined || entry.packet.qos !== 2) return 'unknown';
    if (reasonCode >= 0x80) {
      this.complete(packetId, entry, reasonCode, 'PUBREC');
      return 'done';
    }
    entry.state = 'pubrel';
    entry.pubrecCode = reasonCode;
    return 'pubrel';
  }

  /** PUBCOMP ends a QoS 2 flow; false when no message was waiting for it. */
  onPubcomp(packetId: number): boolean {
    const entry = this.unacked.get(packetId);
    if (entry === undefined || entry.state !== 'pubrel') return false;
    this.complete(packetId, entry, entry.pubrecCode, 'PUBREC');
    return true;
  }

  /**
   * What to resend on a new connection [MQTT-4.4.0-1], in the original order: PUBLISH (now with
   * DUP set) for messages not acknowledged yet, PUBREL for those past PUBREC.
   */
  *resend(): Iterable<{ kind: 'publish'; packet: PublishPacket } | { kind: 'pubrel'; packetId: number }> {
    for (const [packetId, entry] of this.unacked) {
      if (entry.state === 'publish') {
        entry.packet.dup = true;
        yield { kind: 'publish', packet: entry.packet };
      } else {
        yield { kind: 'pubrel', packetId };
      }
    }
  }

  /** Rejects everything, sent or not (the client is finished). */
  failAll(err: Error): void {
    for (const [id, entry] of this.unacked) {
      this.ids.release(id);
      entry.reject(err);
    }
    this.unacked.clear();
    for (const item of this.queue.drain()) item.reject(err);
  }

  private complete(packetId: number, entry: Unacked, reasonCode: number, ack: 'PUBACK' | 'PUBREC'): void {
    this.unacked.delete(packetId);
    this.ids.release(packetId);
    if (reasonCode >= 0x80) {
      entry.reject(
        new PublishRefusedError(
          `the broker refused the message to ${entry.packet.topic}: ${formatReasonCode(reasonCode, ack)}`,
          reasonCode,
        ),
      );
    } else {
      entry.resolve({ packetId, reasonCode });
    }
  }
}

/** The topic name last found valid: a stream of messages to one topic is checked once. */
let lastValidTopic: string | undefined;
let lastValidVersion: ProtocolVersion | undefined;
const isKnownValid = (topic: string, version: ProtocolVersion) =>
  topic === lastValidTopic && version === lastValidVersion;

/**
 * Why this PUBLISH cannot go out, checked before sending: an invalid topic, or a limit from the
 * broker's CONNACK (Maximum Packet Size, Maximum QoS, Retain Available, Topic Alias Maximum).
 */
export function refusalBeforeSending(
  packet: PublishPacket,
  version: ProtocolVersion,
  props: Properties | undefined,
): PublishRefusedError | undefined {
  const alias = packet.properties?.topicAlias;
  if ((packet.topic !== '' || alias === undefined) && !isKnownValid(packet.topic, version)) {
    const problem = validateTopicName(packet.topic, version);
    if (problem) return new PublishRefusedError(`cannot publish: ${problem.message}`, 0x90);
    lastValidTopic = packet.topic;
    lastValidVersion = version;
  }
  const maxSize = props?.maximumPacketSize;
  if (maxSize !== undefined) {
    // QoS 1/2 get their packet id when they go out: count its two bytes now.
    const size = packetSize(
      packet.qos > 0 && packet.packetId === undefined ? { ...packet, packetId: 1 } : packet,
      version,
    );
    if (size > maxSize) {
      return new PublishRefusedError(
        `cannot publish to ${packet.topic}: the message (${size} bytes) exceeds the broker's Maximum Packet Size of ${maxSize} bytes`,
        0x95,
      );
    }
  }
  if (props?.maximumQoS !== undefined && packet.qos > props.maximumQoS) {
    return new PublishRefusedError(
      `the broker accepts at most QoS ${props.maximumQoS} (Maximum QoS in its CONNACK): use -q ${props.maximumQoS}`,
      0x9b,
    );
  }
  if (packet.retain && props?.retainAvailable === 0) {
    return new PublishRefusedError(
      'the broker does not support retained messages (Retain Available 0)',
      0x9a,
    );
  }
  // [MQTT-3.3.2-9] no alias above the broker's Topic Alias Maximum (none when it announced none).
  if (alias !== undefined) {
    const max = version === 5 ? (props?.topicAliasMaximum ?? 0) : 0;
    if (alias < 1 || alias > max) {
      return new PublishRefusedError(
        max === 0
          ? 'the broker accepts no topic aliases (Topic Alias Maximum 0)'
          : `topic alias ${alias} is outside the broker's range 1..${max}`,
        0x94,
      );
    }
  }
  return undefined;
}
