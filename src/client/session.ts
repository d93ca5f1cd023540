/**
 * Per-session bookkeeping that outlives one network connection: packet identifiers in use, and the
 * incoming QoS 2 messages already delivered (exactly once). Kept in memory for the client's life;
 * cleared when the broker reports it lost the session.
 */

/**
 * Allocates packet identifiers 1..65535 round-robin, never one that is still in flight
 * [MQTT-2.2.1-3]: an id is in use from allocate() until release().
 */
export class PacketIdAllocator {
  private next = 1;
  private readonly used = new Set<number>();

  /** Ids in flight right now. */
  get inUse(): number {
    return this.used.size;
  }

  has(id: number): boolean {
    return this.used.has(id);
  }

  /** A free id, marked in use; undefined when all 65,535 are in flight. */
  allocate(): number | undefined {
    if (this.used.size >= 65535) return undefined;
    for (;;) {
      const id = this.next;
      this.next = id === 65535 ? 1 : id + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }

  release(id: number): void {
    this.used.delete(id);
  }

  clear(): void {
    this.used.clear();
  }
}

/**
 * Incoming QoS 2 (receiver side, MQTT 5.0 4.3.3 method B): the message is delivered when its
 * PUBLISH first arrives and its id remembered until the PUBREL; a PUBLISH with the same id before
 * then (a DUP resend, possibly after a reconnect) is acknowledged again but not delivered again.
 */
export class IncomingQos2 {
  private readonly pending = new Set<number>();

  /** True when the message is new and must be delivered; false for a resend of one already delivered. */
  receive(packetId: number): boolean {
    if (this.pending.has(packetId)) return false;
    this.pending.add(packetId);
    return true;
  }

  /** PUBREL arrived: the id may be reused by the sender. */
  release(packetId: number): void {
    this.pending.delete(packetId);
  }

  get size(): number {
    return this.pending.size;
  }

  clear(): void {
    this.pending.clear();
  }
}

/** A FIFO queue with O(1) take (Array.shift is O(n) on long arrays). */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  take(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    // Drop the consumed prefix now and then.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns everything left. */
  drain(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
