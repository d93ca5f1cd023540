/**
 * Signals and deadlines, one way for every command: Ctrl-C (SIGINT), SIGTERM where a command takes
 * it, and a -W style deadline all end up as one AbortSignal, so a command (or the library it calls:
 * bench, probe, proxy) waits on one thing and asks one question: stopped, and why?
 *
 *   const stop = stopWhen({ signals: ['SIGINT'], deadlineMs, onStop: (why) => ... });
 *   try { ...work, racing stop.stopped or checking stop.signal.aborted... } finally { stop.dispose(); }
 *
 * While it is armed, a signal does not end the process: the command decides what to do (print,
 * clean up, exit 130 or 0). After dispose(), a signal acts as Node's default again (a second Ctrl-C
 * during a long shutdown then ends the process at once).
 */

/** Why a command was stopped early: the signal that arrived, or its deadline. */
export type StopReason = NodeJS.Signals | 'deadline';

export interface StopOptions {
  /** The signals that stop the command (default: SIGINT, i.e. Ctrl-C). */
  signals?: readonly NodeJS.Signals[];
  /** Stop this many milliseconds from now; undefined: no deadline. */
  deadlineMs?: number;
  /** Called at once (synchronously) when the first signal or the deadline comes. */
  onStop?: (reason: StopReason) => void;
}

export interface Stop {
  /** Aborted when the command is stopped; its `reason` is the StopReason. */
  readonly signal: AbortSignal;
  /** Resolves with the StopReason when the command is stopped; never rejects. */
  readonly stopped: Promise<StopReason>;
  /** The StopReason once stopped, else undefined. */
  readonly reason: StopReason | undefined;
  /** Removes the signal handlers and the deadline timer. Safe to call more than once. */
  dispose(): void;
}

/** Arms the signal handlers (and the deadline) at once: see the module comment. */
export function stopWhen(options: StopOptions = {}): Stop {
  const signals = options.signals ?? ['SIGINT'];
  const controller = new AbortController();
  let resolveStopped: (reason: StopReason) => void = () => {};
  const stopped = new Promise<StopReason>((resolve) => {
    resolveStopped = resolve;
  });
  const stop = (reason: StopReason): void => {
    if (controller.signal.aborted) return;
    controller.abort(reason);
    resolveStopped(reason);
    options.onStop?.(reason);
  };
  const handlers = signals.map((signal) => {
    const handler = () => stop(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  const timer =
    options.deadlineMs !== undefined ? setTimeout(() => stop('deadline'), options.deadlineMs) : undefined;
  return {
    signal: controller.signal,
    stopped,
    get reason() {
      return controller.signal.aborted ? (controller.signal.reason as StopReason) : undefined;
    },
    dispose() {
      clearTimeout(timer);
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}
