/**
 * A publisher of the load generator. Its PUBLISH is encoded once (encode(), mq's codec); batch
 * buffers hold copies of it, and sending a message patches its header in place (sequence, times,
 * flags, packet id) before one write per batch. QoS 1/2 messages are tracked by packet id in flat
 * arrays (scheduled time, recorded or not) until their PUBACK / PUBCOMP.
 */
import { encode, readFixedHeader } from '../protocol/index.js';
import type { BenchConnection } from './connection.js';
import { C_ACKED_REC, C_INFLIGHT, C_SENT, C_SENT_REC } from './counters.js';
import type { Recorder } from './histogram.js';
import { headerPayload, stampHeader } from './payload.js';
import type { OpenLoopSchedule } from './schedule.js';
import type { ResolvedSettings } from './settings.js';

/** What a publisher sends in the current phase. */
export interface Phase {
  active: boolean;
  record: boolean;
  /** Sending stops at this time (ms), or never (count). */
  endMs: number;
  /** Messages per publisher in this phase, or Infinity. */
  count: number;
  /** Open loop: when each message is due; null: closed loop. */
  schedule: OpenLoopSchedule | null;
}

/** What publishers share within a worker. */
export interface PublisherContext {
  settings: ResolvedSettings;
  counters: Float64Array;
  sentAll: Float64Array;
  sentRec: Float64Array;
  /** Closed-loop QoS 0 window: messages received per (subscriber, publisher), or null. */
  received: Int32Array | null;
  sendLag: Recorder;
  ack: Recorder;
  /** Messages sent in recorded phases this second (the worker's tick). */
  tick: { sent: number };
  /** Counts a failure under `reason` (and in the error counter). */
  error(reason: string): void;
}

/** Closed-loop QoS 0: most batches written per pump before yielding to the event loop. */
const BATCHES_PER_PUMP = 16;
/** A window stalled this long without progress writes its outstanding messages off as lost. */
const WINDOW_STALL_MS = 1000;

export class Publisher {
  /** Next sequence number (counts every phase). */
  seq = 0;
  /** Messages sent in the current phase (k of the open-loop schedule). */
  sentInPhase = 0;
  /** Not acknowledged yet (QoS 1/2). */
  inflight = 0;
  /** Could not send all it wanted (socket, window or in-flight ids): pump again after the next read. */
  waiting = false;
  /** Stopped only to yield to the event loop: pump again in the next turn whatever happens. */
  again = false;
  private readonly template: Buffer;
  private readonly packetLength: number;
  private readonly headerAt: number;
  private readonly pidAt: number;
  private readonly batchCap: number;
  private pool: Buffer[] = [];
  private busy: Buffer[] = [];
  private readonly qos: number;
  private readonly inflightLimit: number;
  private readonly freeIds: Uint16Array;
  private freeCount = 0;
  /** Scheduled send time per packet id in flight (0: not in flight). */
  private readonly sentAt: Float64Array;
  private readonly recordedId: Uint8Array;
  /** Window: messages written off as lost after a stall, and when the stall began. */
  private writtenOff = 0;
  private stallSince = 0;
  private stallFloor = -1;

  constructor(
    readonly index: number,
    readonly conn: BenchConnection,
    topic: string,
    /** Subscribers this publisher's messages reach (the window waits for the slowest). */
    readonly receivers: readonly number[],
    private readonly ctx: PublisherContext,
  ) {
    const s = ctx.settings;
    this.qos = s.qos;
    this.template = encode(
      {
        type: 'PUBLISH',
        dup: false,
        qos: s.qos,
        retain: s.retain,
        topic,
        ...(s.qos > 0 ? { packetId: 1 } : {}),
        payload: headerPayload(s.size, s.runId, index),
      },
      s.version,
    );
    this.packetLength = this.template.length;
    this.headerAt = this.packetLength - s.size;
    const fixed = readFixedHeader(this.template, 0);
    this.pidAt = s.qos > 0 ? (fixed?.headerLength ?? 2) + 2 + Buffer.byteLength(topic) : -1;
    if (this.pidAt >= 0 && this.template.readUInt16BE(this.pidAt) !== 1)
      throw new Error('PUBLISH layout not understood');
    if (this.packetLength > conn.maximumPacketSize) {
      throw new Error(
        `a ${this.packetLength}-byte PUBLISH exceeds the broker's Maximum Packet Size (${conn.maximumPacketSize})`,
      );
    }
    // A batch buffer of about 64 KiB (at least one message); closed-loop QoS 0 writes `batch`
    // messages at a time, so its buffers hold exactly that (written whole: no view per write).
    const perBuffer = s.qos > 0 ? 65_535 : s.rate === null ? Math.max(s.batch, 1) : Math.max(s.batch, 1) * 4;
    this.batchCap = Math.max(1, Math.min(perBuffer, Math.floor(65_536 / this.packetLength)));
    this.inflightLimit = Math.max(1, Math.min(s.inflight, conn.receiveMaximum));
    const ids = s.qos > 0 ? this.inflightLimit : 0;
    this.freeIds = new Uint16Array(ids);
    for (let id = ids; id >= 1; id--) this.freeIds[this.freeCount++] = id;
    this.sentAt = new Float64Array(s.qos > 0 ? 65_536 : 0);
    this.recordedId = new Uint8Array(s.qos > 0 ? 65_536 : 0);
  }

  /** Open loop: messages this publisher sends in the phase (see OpenLoopSchedule.countWithin). */
  private phaseCap = Number.POSITIVE_INFINITY;

  /** A new phase begins: the open-loop schedule counts from 0 again; `cap` bounds the open loop. */
  startPhase(cap: number): void {
    this.sentInPhase = 0;
    this.waiting = false;
    this.phaseCap = cap;
  }

  /** Sends what the phase allows now; sets `waiting` when something held it back. */
  pump(now: number, phase: Phase): void {
    this.waiting = false;
    this.again = false;
    if (!phase.active || !this.conn.open) return;
    if (this.busy.length > 0 && this.conn.flushed) this.release();
    if (phase.schedule !== null) this.pumpOpen(now, phase, phase.schedule);
    else if (this.qos > 0) this.pumpWindowed(now, phase, this.freeCount);
    else this.pumpQos0(now, phase);
  }

  /** Closed loop, QoS 0: batches until the socket or the window says stop (or the budget runs out). */
  private pumpQos0(now: number, phase: Phase): void {
    const batch = this.ctx.settings.batch;
    for (let b = 0; b < BATCHES_PER_PUMP; b++) {
      if (this.conn.blocked) {
        this.waiting = true;
        return;
      }
      let n = Math.min(batch, phase.count - this.sentInPhase);
      if (n <= 0) return;
      if (this.ctx.received !== null) {
        const room = this.windowRoom(now);
        if (room < n) {
          // Wait for room for a whole batch (or the last ones), not one message at a time.
          if (room < Math.min(batch, phase.count - this.sentInPhase)) {
            this.waiting = true;
            return;
          }
          n = room;
        }
      }
      this.send(n, now, phase);
    }
    // Budget spent with the socket still willing: more in the next turn.
    this.waiting = true;
    this.again = true;
  }

  /** Closed loop, QoS 1/2: as many as there are free packet ids. */
  private pumpWindowed(now: number, phase: Phase, room: number): void {
    const n = Math.min(room, phase.count - this.sentInPhase);
    if (n > 0 && !this.conn.blocked) this.send(n, now, phase);
    if (this.conn.blocked || this.freeCount === 0) this.waiting = this.sentInPhase < phase.count;
  }

  /** Open loop: every message due by now (and before the phase ends), with its scheduled time. */
  private pumpOpen(now: number, phase: Phase, schedule: OpenLoopSchedule): void {
    const limit = Math.min(phase.count, this.phaseCap);
    const owed = Math.min(schedule.dueBy(this.index, now), limit) - this.sentInPhase;
    if (owed <= 0) return;
    const n = this.qos > 0 ? Math.min(owed, this.freeCount) : owed;
    if (n > 0 && !this.conn.blocked) this.send(n, now, phase);
    if (Math.min(schedule.dueBy(this.index, now), limit) > this.sentInPhase) this.waiting = true;
  }

  /** Open loop: when the next message is due (Infinity when waiting on acks or the socket). */
  nextDueMs(phase: Phase): number {
    const done = this.sentInPhase >= phase.count || this.sentInPhase >= this.phaseCap;
    if (phase.schedule === null || done) return Number.POSITIVE_INFINITY;
    if (this.waiting) return Number.POSITIVE_INFINITY;
    return phase.schedule.timeOf(this.index, this.sentInPhase);
  }

  /** Done with the phase: its count is sent (and acknowledged, at QoS 1/2). */
  finished(phase: Phase): boolean {
    return this.sentInPhase >= phase.count && this.inflight === 0;
  }

  /** Room the closed-loop QoS 0 window leaves: messages not yet seen by the slowest subscriber. */
  private windowRoom(now: number): number {
    const recv = this.ctx.received!;
    const pubs = this.ctx.settings.pubs;
    let floor = Number.POSITIVE_INFINITY;
    for (const s of this.receivers) {
      const r = recv[s * pubs + this.index]!;
      if (r < floor) floor = r;
    }
    if (floor === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
    const room = this.ctx.settings.window - (this.seq - this.writtenOff - floor);
    if (room > 0) {
      this.stallSince = 0;
      return room;
    }
    // QoS 0 messages the broker dropped never arrive: after a stall with no progress, stop waiting
    // for them (the loss is still counted exactly by the receivers).
    if (this.stallSince === 0 || floor !== this.stallFloor) {
      this.stallSince = now;
      this.stallFloor = floor;
    } else if (now - this.stallSince > WINDOW_STALL_MS) {
      this.writtenOff = this.seq - floor;
      this.stallSince = 0;
      return this.ctx.settings.window;
    }
    return room;
  }

  /** Writes `n` messages (n <= free ids at QoS 1/2), in batches of at most batchCap. */
  private send(n: number, now: number, phase: Phase): void {
    const ctx = this.ctx;
    const len = this.packetLength;
    const record = phase.record;
    const schedule = phase.schedule;
    while (n > 0 && this.conn.open) {
      const m = Math.min(n, this.batchCap);
      const buf = this.take();
      for (let k = 0; k < m; k++) {
        const off = k * len;
        const scheduled = schedule === null ? now : schedule.timeOf(this.index, this.sentInPhase);
        const lagMicros = (now - scheduled) * 1000;
        if (this.pidAt >= 0) {
          const id = this.freeIds[--this.freeCount]!;
          buf[off + this.pidAt] = id >> 8;
          buf[off + this.pidAt + 1] = id & 0xff;
          this.sentAt[id] = scheduled;
          this.recordedId[id] = record ? 1 : 0;
        }
        stampHeader(buf, off + this.headerAt, this.seq, scheduled, lagMicros, record);
        if (record && schedule !== null) ctx.sendLag.record(lagMicros);
        this.seq++;
        this.sentInPhase++;
      }
      if (this.pidAt >= 0) {
        this.inflight += m;
        ctx.counters[C_INFLIGHT]! += m;
      }
      ctx.counters[C_SENT]! += m;
      ctx.sentAll[this.index]! += m;
      if (record) {
        ctx.counters[C_SENT_REC]! += m;
        ctx.sentRec[this.index]! += m;
        ctx.tick.sent += m;
      }
      this.conn.write(m === this.batchCap ? buf : buf.subarray(0, m * len));
      if (this.conn.flushed) this.pool.push(buf);
      else this.busy.push(buf);
      n -= m;
      if (this.conn.blocked) return;
    }
  }

  /** A batch buffer filled with copies of the template. */
  private take(): Buffer {
    const free = this.pool.pop();
    if (free !== undefined) return free;
    const buf = Buffer.allocUnsafe(this.batchCap * this.packetLength);
    for (let k = 0; k < this.batchCap; k++) this.template.copy(buf, k * this.packetLength);
    return buf;
  }

  /** The socket wrote everything out: the buffers it held are free again. */
  release(): void {
    if (this.busy.length === 0) return;
    for (const b of this.busy) this.pool.push(b);
    this.busy = [];
  }

  /** PUBACK (QoS 1) / PUBREC + PUBCOMP (QoS 2) for this publisher's packet id. */
  onAck(type: number, id: number, reasonCode: number, now: number, pubrel: Buffer): void {
    if (this.qos === 2 && type === 5) {
      // PUBREC: answer PUBREL unless the broker refused the message.
      if (reasonCode >= 0x80) this.complete(id, reasonCode, now, 'PUBREC');
      else if (this.sentAt[id] === 0 || id >= this.sentAt.length) this.unexpected('PUBREC', id);
      else this.conn.queueAck(pubrel, id);
      return;
    }
    if ((this.qos === 1 && type === 4) || (this.qos === 2 && type === 7)) {
      this.complete(id, reasonCode, now, type === 4 ? 'PUBACK' : 'PUBCOMP');
      return;
    }
    this.unexpected(type === 4 ? 'PUBACK' : type === 5 ? 'PUBREC' : type === 6 ? 'PUBREL' : 'PUBCOMP', id);
  }

  private complete(id: number, reasonCode: number, now: number, what: string): void {
    const at = id < this.sentAt.length ? this.sentAt[id]! : 0;
    if (at === 0) {
      this.unexpected(what, id);
      return;
    }
    this.sentAt[id] = 0;
    this.freeIds[this.freeCount++] = id;
    this.inflight--;
    this.ctx.counters[C_INFLIGHT]!--;
    if (reasonCode >= 0x80) {
      this.ctx.error(`${what} 0x${reasonCode.toString(16).padStart(2, '0')}`);
      return;
    }
    if (this.recordedId[id] === 1) {
      this.ctx.counters[C_ACKED_REC]!++;
      this.ctx.ack.record((now - at) * 1000);
    }
    this.waiting = true;
  }

  private unexpected(what: string, id: number): void {
    this.ctx.error(`unexpected ${what} (packet id ${id} not in flight)`);
  }

  /** The connection is gone: its messages in flight will never be acknowledged. */
  lost(): number {
    const n = this.inflight;
    this.ctx.counters[C_INFLIGHT]! -= n;
    this.inflight = 0;
    return n;
  }
}
