/**
 * Backpressure: a client whose publishes feed a subscriber that is backed up (more than HIGH_WATER
 * bytes waiting for it) is not read from until that subscriber has taken them, so the broker reads
 * only as fast as it can deliver and QoS 0 messages are not dropped under load. TCP then pushes
 * back on the publisher, as Mosquitto's single thread does by being busy.
 *
 * A subscriber that has not caught up (drained to LOW_WATER) within --backpressure-timeout
 * (default 5 s) of being backed up stops holding anyone up: the publishers it paused are read
 * again, and QoS 0 messages to it are dropped while it is over the mark (counted in
 * $SYS/broker/publish/messages/dropped, logged). So one client that does not read, or reads only
 * a trickle (a paused terminal, two clients each waiting for the other, a client that publishes to
 * its own subscription and never reads, one that takes a few bytes a second on purpose) cannot
 * stall the others for longer than that.
 */
import { type Connection, ConnState } from './connection.js';

/**
 * Bytes waiting for a subscriber (this tick's output and what the socket still holds) beyond which
 * it is backed up. The kernel's socket buffer (megabytes on loopback) is full by then: this is the
 * queue on top of it. Well above what one read (64 KiB) fans out to one subscriber, so a subscriber
 * that keeps up never pauses anyone.
 */
export const HIGH_WATER = 1024 * 1024;
/** Publishers paused on a subscriber are read again once it has at most this much waiting. */
export const LOW_WATER = HIGH_WATER / 2;
/**
 * Whatever else happens, QoS 0 messages to a client with this much waiting are dropped: messages
 * routed outside a read (wills, $SYS, a bridge) pause no one, and many publishers may each add a
 * read's worth before they are paused.
 */
export const MAX_BACKLOG = 64 * 1024 * 1024;

/** A subscriber over the high-water mark. */
export class Congestion {
  /** The connections not read from until it drains. */
  readers: Connection[] = [];
  /** When it became backed up. */
  readonly since: number;
  /** Still backed up after the timeout: it holds no one up, QoS 0 to it is dropped while over the mark. */
  stuck = false;

  constructor(now: number) {
    this.since = now;
  }
}

/** What Backpressure needs from the broker. */
export interface BackpressureHost {
  now(): number;
  log(line: string): void;
}

export class Backpressure {
  /** --backpressure-timeout in ms; 0: no backpressure (QoS 0 dropped only beyond MAX_BACKLOG). */
  readonly timeoutMs: number;
  private readonly host: BackpressureHost;
  private readonly congested = new Set<Connection>();

  constructor(host: BackpressureHost, timeoutMs: number) {
    this.host = host;
    this.timeoutMs = timeoutMs;
  }

  /**
   * A delivery to `c` found `backlog` (> HIGH_WATER) bytes waiting for it: `reader`, the
   * connection being read (undefined outside a read), is paused until `c` drains (never `c`
   * itself: a client reading its own messages must be read to make progress). false when a QoS 0
   * message is to be dropped instead (`c` is stuck, or MAX_BACKLOG).
   */
  backedUp(c: Connection, backlog: number, reader: Connection | undefined): boolean {
    if (backlog > MAX_BACKLOG) return false;
    if (this.timeoutMs === 0) return true;
    let g = c.congestion;
    if (g === undefined) {
      g = new Congestion(this.host.now());
      c.congestion = g;
      this.congested.add(c);
    }
    if (g.stuck) return false;
    const r = reader;
    if (r === undefined || r === c || r.blockedOn === c) return true;
    // (blockedOn: the common case of one reader and one subscriber is found without a search.)
    if (r.blockers > 0 && g.readers.includes(r)) return true;
    g.readers.push(r);
    r.blockedOn = c;
    if (r.blockers++ === 0) r.pauseReading();
    return true;
  }

  /**
   * `c` (congested) wrote out (a flush, a 'drain') or closed: the readers it held are read again
   * once it has drained.
   */
  drained(c: Connection): void {
    const closed = c.state === ConnState.Closed;
    if (closed || c.backlog <= LOW_WATER) this.release(c, !closed);
  }

  private release(c: Connection, log: boolean): void {
    const g = c.congestion;
    if (g === undefined) return;
    c.congestion = undefined;
    this.congested.delete(c);
    this.resumeReaders(c, g);
    if (g.stuck && log)
      this.host.log(`[${c.label}] reading again: QoS 0 messages to it are no longer dropped`);
  }

  /**
   * The periodic check (the broker's sweep): a congested subscriber that drained without an event
   * saying so (WebSocket) is released; one still backed up after the timeout becomes stuck.
   */
  tick(now: number): void {
    for (const c of this.congested) {
      const g = c.congestion!;
      if (c.backlog <= LOW_WATER) {
        this.release(c, true);
        continue;
      }
      if (!g.stuck && now - g.since >= this.timeoutMs) {
        g.stuck = true;
        this.resumeReaders(c, g);
        this.host.log(
          `[${c.label}] not reading: ${Math.round(c.backlog / 1024)} KiB waiting, not caught up within ${this.timeoutMs / 1000} s; the clients paused for it are read again, QoS 0 messages to it are dropped until it catches up (--backpressure-timeout)`,
        );
      }
    }
  }

  private resumeReaders(c: Connection, g: Congestion): void {
    const readers = g.readers;
    g.readers = [];
    for (const r of readers) {
      if (r.blockedOn === c) r.blockedOn = undefined;
      if (--r.blockers === 0) r.resumeReading();
    }
  }
}
