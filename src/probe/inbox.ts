/**
 * A queue of things that arrive (packets, messages) that checks wait on: `take(match, what)`
 * resolves with the first item, present or future, that matches, and rejects when the check's time
 * is up or the source is gone. Nothing waits without a bound: every Inbox hangs off a check's
 * AbortSignal.
 */

/** A wait that ran out of time: `what` says what was awaited. */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/** The source closed (the connection was lost) while something was awaited. */
export class SourceClosed extends Error {
  override name = 'SourceClosed';
}

interface Waiter<T> {
  match: (item: T) => boolean;
  resolve: (item: T) => void;
  reject: (err: Error) => void;
  what: string;
}

export class Inbox<T> {
  /** Everything that arrived, taken or not, in order. */
  readonly all: T[] = [];
  private readonly waiting: T[] = [];
  private readonly waiters: Waiter<T>[] = [];
  private failure: Error | undefined;

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', () => this.rejectAll(), { once: true });
  }

  push(item: T): void {
    this.all.push(item);
    const i = this.waiters.findIndex((w) => w.match(item));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.resolve(item);
      return;
    }
    this.waiting.push(item);
  }

  /** The first item not taken yet that matches (or the next to arrive), taken off the queue. */
  take(match: (item: T) => boolean, what: string): Promise<T> {
    const i = this.waiting.findIndex(match);
    if (i >= 0) return Promise.resolve(this.waiting.splice(i, 1)[0]!);
    if (this.signal.aborted) return Promise.reject(new WaitTimeout(`timed out waiting for ${what}`));
    if (this.failure !== undefined) return Promise.reject(this.closedWhile(what));
    return new Promise<T>((resolve, reject) => this.waiters.push({ match, resolve, reject, what }));
  }

  /** Items not taken yet that match (left in the queue). */
  peek(match: (item: T) => boolean = () => true): T[] {
    return this.waiting.filter(match);
  }

  /** The source is gone: waits now reject with `err` (items already here can still be taken). */
  close(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(this.closedWhile(w.what));
  }

  private closedWhile(what: string): Error {
    return new SourceClosed(`${this.failure?.message ?? 'closed'} while waiting for ${what}`);
  }

  private rejectAll(): void {
    for (const w of this.waiters.splice(0)) w.reject(new WaitTimeout(`timed out waiting for ${w.what}`));
  }
}
