/**
 * --persist FILE: a write-ahead log of NDJSON records (persist-records.ts), fsynced once per tick
 * before the broker writes the acknowledgements of that tick (so a kill -9 loses nothing
 * acknowledged), compacted into a snapshot on start, on close and when it grows. It knows records,
 * sessions and messages, not the broker: restore() returns what the log held, compact() is given
 * the live sessions and retained messages. Only sessions with a non-zero Session Expiry Interval
 * are written; wills are written for every client that has one (a clean session's too: a crash
 * ends its connection, and its will is published at the next start).
 */
import {
  closeSync,
  existsSync,
  fchmodSync,
  fdatasyncSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import type { Will } from '../protocol/index.js';
import type { Message, Outgoing } from './message.js';
import {
  type LogRecord,
  messageRecord,
  queueRecord,
  type Replayed,
  replay,
  sessionRecord,
  willRecord,
} from './persist-records.js';
import type { Session } from './session.js';

const COMPACT_AFTER_RECORDS = 200_000;

export interface PersistenceHooks {
  /** Log lines (skipped records, what was restored). */
  log(line: string): void;
  /** The first record of a tick is pending: sync() must run at the end of the tick. */
  pending(): void;
}

export class Persistence {
  private readonly file: string;
  private readonly hooks: PersistenceHooks;
  private fd = -1;
  private pendingLines: string[] = [];
  private records = 0;
  private generation = 1;
  /** A write failed part way: the log may end inside a line, which the next write must close. */
  private torn = false;
  /** Client ids whose will the log holds (W written, no V or D since). */
  private readonly wills = new Set<string>();

  constructor(file: string, hooks: PersistenceHooks) {
    this.file = file;
    this.hooks = hooks;
  }

  // ---- records --------------------------------------------------------------------------------

  private push(rec: LogRecord): void {
    if (this.pendingLines.length === 0 && this.fd >= 0) this.hooks.pending();
    this.pendingLines.push(JSON.stringify(rec), '\n');
  }

  private body(m: Message): void {
    if (m.persistedIn === this.generation) return;
    m.persistedIn = this.generation;
    this.push(messageRecord(m));
  }

  session(s: Session): void {
    if (s.expiryInterval === 0) {
      // A persisted session resumed with expiry 0 no longer survives a restart.
      if (s.persisted) this.sessionDeleted(s);
      return;
    }
    s.persisted = true;
    this.push(sessionRecord(s));
  }

  sessionDeleted(s: Session): void {
    if (!s.persisted) return;
    s.persisted = false;
    this.wills.delete(s.clientId);
    this.push({ o: 'D', c: s.clientId });
  }

  /** The will of `s`'s client: `dueAt` once its connection ended (a Will Delay Interval), else connected. */
  will(s: Session, will: Will, dueAt?: number): void {
    this.wills.add(s.clientId);
    this.push(willRecord(s.clientId, will, dueAt));
  }

  /** The will of `s`'s client is gone: published, cancelled or discarded (nothing when none was written). */
  willGone(s: Session): void {
    if (this.wills.delete(s.clientId)) this.push({ o: 'V', c: s.clientId });
  }

  queued(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.body(out.msg);
    this.push(queueRecord(s, out));
  }

  sent(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'P', c: s.clientId, k: out.seq, p: out.packetId });
  }

  released(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'L', c: s.clientId, k: out.seq });
  }

  completed(s: Session, out: Outgoing): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'A', c: s.clientId, k: out.seq });
  }

  incomingPending(s: Session, packetId: number): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'I', c: s.clientId, p: packetId });
  }

  incomingReleased(s: Session, packetId: number): void {
    if (s.expiryInterval === 0) return;
    this.push({ o: 'J', c: s.clientId, p: packetId });
  }

  retained(topic: string, m: Message | undefined): void {
    if (m === undefined) {
      this.push({ o: 'X', t: topic });
      return;
    }
    this.body(m);
    this.push({ o: 'R', t: topic, m: m.id });
  }

  /**
   * Writes and fsyncs what this tick produced (called before the tick's acknowledgements go out).
   * Throws when the log cannot take it all (disk full, a file size limit): the caller must then not
   * send what these records back. The records are dropped; the next write starts on a new line.
   */
  sync(): void {
    if (this.pendingLines.length === 0 || this.fd < 0) return;
    const lines = this.pendingLines;
    this.records += lines.length / 2;
    this.pendingLines = [];
    if (this.torn) lines.unshift('\n');
    this.torn = true;
    const text = lines.join('');
    const written = writeSync(this.fd, text);
    if (written !== Buffer.byteLength(text)) throw new Error(`short write: ${written} bytes written`);
    fdatasyncSync(this.fd);
    this.torn = false;
  }

  /** The log has grown enough since the last snapshot that compact() should run. */
  get compactionDue(): boolean {
    return this.records > COMPACT_AFTER_RECORDS;
  }

  /** Syncs, writes a last snapshot of `sessions` and `retained`, closes the file. */
  close(sessions: ReadonlyMap<string, Session>, retained: ReadonlyMap<string, Message>): void {
    if (this.fd < 0) return;
    this.sync();
    this.compact(sessions, retained);
    closeSync(this.fd);
    this.fd = -1;
  }

  // ---- restore and compaction -----------------------------------------------------------------

  /**
   * What the log holds: sessions (offline, queues filled) and retained messages. The caller makes
   * them live, then calls compact() (which opens the log for appending).
   */
  restore(): Replayed {
    if (!existsSync(this.file))
      return { sessions: new Map(), retained: new Map(), wills: new Map(), queued: 0 };
    const text = readFileSync(this.file, 'utf8');
    const state = replay(text, (line, err, torn) =>
      this.hooks.log(
        torn
          ? `--persist ${this.file}: line ${line} is incomplete (a write cut short, as kill -9 leaves it): dropped (${err})`
          : `--persist ${this.file}: skipping line ${line}: ${err}`,
      ),
    );
    if (state.sessions.size > 0 || state.retained.size > 0 || state.wills.size > 0) {
      this.hooks.log(
        `--persist ${this.file}: restored ${state.sessions.size} session(s), ${state.queued} queued message(s), ${state.retained.size} retained message(s), ${state.wills.size} will(s)`,
      );
    }
    return state;
  }

  /** Rewrites the log as a snapshot of `sessions` and `retained` (temp file, fsync, rename). */
  compact(sessions: ReadonlyMap<string, Session>, retained: ReadonlyMap<string, Message>): void {
    this.generation++;
    this.pendingLines = [];
    this.wills.clear();
    for (const [topic, m] of retained) {
      if (topic.startsWith('$SYS/')) continue;
      this.body(m);
      this.push({ o: 'R', t: topic, m: m.id });
    }
    for (const s of sessions.values()) {
      const connectedWill = s.conn?.will;
      if (connectedWill !== undefined) this.will(s, connectedWill);
      else if (s.pendingWill !== undefined) this.will(s, s.pendingWill.will, s.pendingWill.dueAt);
      if (s.expiryInterval === 0) continue;
      s.persisted = true;
      this.push(sessionRecord(s));
      for (const out of s.inflight.values()) {
        this.body(out.msg);
        this.push(queueRecord(s, out));
        this.push({ o: 'P', c: s.clientId, k: out.seq, p: out.packetId });
        if (out.state === 'rel') this.push({ o: 'L', c: s.clientId, k: out.seq });
      }
      for (const out of s.queue) {
        this.body(out.msg);
        this.push(queueRecord(s, out));
      }
      if (s.incomingQos2 !== undefined)
        for (const p of s.incomingQos2) this.push({ o: 'I', c: s.clientId, p });
    }
    const tmp = `${this.file}.tmp`;
    // 0600: the log holds sessions, user names and message payloads (a tmp file left by a crash
    // may have another mode: set it too).
    const fd = openSync(tmp, 'w', 0o600);
    fchmodSync(fd, 0o600);
    writeSync(fd, this.pendingLines.join(''));
    fsyncSync(fd);
    closeSync(fd);
    this.pendingLines = [];
    renameSync(tmp, this.file);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(this.file, 'a');
    this.records = 0;
    this.torn = false;
  }

  /** Size of the log in bytes (tests, diagnostics). */
  size(): number {
    return existsSync(this.file) ? statSync(this.file).size : 0;
  }
}
