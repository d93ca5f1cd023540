/**
 * Keepalive for one connection [MQTT-3.1.2-20]: a PINGREQ when nothing was sent (or nothing
 * received) for about the keepalive interval, and the connection declared dead when a PINGREQ
 * got no answer and nothing at all arrived for 1.5 x keepalive.
 */
export interface KeepaliveLink {
  /** Date.now() of the last packet sent / received. */
  lastSent: number;
  lastReceived: number;
  /** A PINGREQ went out and nothing has arrived since. */
  pingOutstanding: boolean;
}

export class Keepalive {
  private timer: NodeJS.Timeout | undefined;

  /**
   * Starts checking `link` every quarter interval. `ping` sends a PINGREQ; `dead(silentMs)` is
   * called once when the connection must be dropped. An interval of 0 turns keepalive off.
   */
  start(intervalMs: number, link: KeepaliveLink, ping: () => void, dead: (silentMs: number) => void): void {
    this.stop();
    if (intervalMs <= 0) return;
    const tick = Math.max(50, Math.floor(intervalMs / 4));
    // Ping a tick early, so the broker never sees more than the interval of silence.
    const pingAfter = intervalMs - tick;
    this.timer = setInterval(() => {
      const now = Date.now();
      const silent = now - link.lastReceived;
      if (link.pingOutstanding && silent >= intervalMs * 1.5) {
        this.stop();
        dead(silent);
        return;
      }
      if (!link.pingOutstanding && (now - link.lastSent >= pingAfter || silent >= pingAfter)) {
        link.pingOutstanding = true;
        ping();
      }
    }, tick);
    // Keepalive alone must not keep the process running.
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
