/**
 * The broker as a library user sees it: `new Broker(options)`, `listen()`, `close()`, `stats`.
 * What it runs on lives beside it: core.ts (the state the connections share), listeners.ts,
 * connection.ts (one socket), handlers/ (one module per packet type), routing.ts, session-end.ts,
 * sys.ts ($SYS), trace.ts, persist.ts.
 */
import { ReasonCode } from '../protocol/index.js';
import { Bridge } from './bridge/bridge.js';
import { ConnState } from './connection.js';
import { BrokerCore } from './core.js';
import { Listeners } from './listeners.js';
import type { BrokerAddresses, BrokerOptions, BrokerStats, CloseOptions } from './options.js';
import { Persistence } from './persist.js';
import { shutdownWills } from './session-end.js';
import { SysTopics } from './sys.js';
import type { TraceFormatter } from './trace.js';

const SWEEP_MS = 250;

const cores = new WeakMap<Broker, BrokerCore>();

export class Broker {
  private readonly core: BrokerCore;
  private readonly listeners: Listeners;
  private readonly sys: SysTopics;
  private readonly bridges: Bridge[];
  private startedAt = Date.now();
  private sweepTimer: NodeJS.Timeout | undefined = undefined;
  private sysTimer: NodeJS.Timeout | undefined = undefined;

  constructor(options: BrokerOptions = {}) {
    const core = new BrokerCore(options);
    this.core = core;
    this.listeners = new Listeners(
      (transport, listener) => core.accept(transport, listener),
      (line) => core.log(line),
    );
    this.sys = new SysTopics(core);
    this.bridges = (options.bridges ?? []).map((b) => new Bridge(core, b));
    cores.set(this, core);
  }

  /** Counters behind $SYS/broker/...: clients, messages, bytes, drops, retained, subscriptions. */
  get stats(): BrokerStats {
    const core = this.core;
    const st = core.counters;
    st.clientsTotal = core.sessions.size;
    st.retainedCount = core.retained.size;
    st.subscriptionCount = core.trie.count;
    return { ...st };
  }

  /** Uses `format` for --trace lines (mq's CLI passes the same rendering as `mq decode`). */
  setTraceFormatter(format: TraceFormatter): void {
    this.core.tracer.format = format;
  }

  /** Loads --persist state, opens every configured listener; resolves with the bound addresses. */
  async listen(): Promise<BrokerAddresses> {
    const o = this.core.opts;
    const core = this.core;
    this.startedAt = Date.now();
    if (o.aclFile !== undefined && !core.auth.enabled) {
      core.log(
        'warning: --acl without --auth or --passwd: user names are not checked, so a client may claim any user the ACL grants rights to',
      );
    }
    if (o.persistFile !== undefined) {
      core.restore(
        new Persistence(o.persistFile, {
          log: (line) => core.log(line),
          pending: () => core.scheduleTick(),
        }),
      );
    }
    let addresses: BrokerAddresses;
    try {
      if (o.recordFile !== undefined) core.tracer.openRecord(o.recordFile, (line) => core.log(line));
      // Before the listeners: nothing a client publishes for a bridge's out topics is missed.
      for (const bridge of this.bridges) bridge.start();
      addresses = await this.listeners.open(o);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.sweepTimer = setInterval(() => core.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    const sys = o.sysInterval ?? 10;
    if (sys > 0) {
      this.publishSys();
      this.sysTimer = setInterval(() => this.publishSys(), sys * 1000);
      this.sysTimer.unref();
    }
    return addresses;
  }

  /**
   * Graceful stop: no new connections; the wills of connected clients, and those waiting out a
   * Will Delay Interval, are published (as Mosquitto does as it exits) before any connection is
   * closed, so that the clients still connected receive them; then v5 clients get DISCONNECT 0x8B
   * (after those wills: nothing may follow a DISCONNECT [MQTT-3.14.4-1]), every connection is
   * flushed and closed, --persist is written last. Under --persist a delayed will whose session
   * survives the restart (a Session Expiry Interval) is kept with its deadline instead
   * (session-end.ts shutdownWills). `publishWills: false` publishes none: connected clients' wills
   * are dropped (a test harness that wants a silent stop).
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const core = this.core;
    if (core.closing) return;
    core.closing = true;
    // The bridges first: their remote sessions end with DISCONNECT, their local ones are kept.
    // (Wills published below reach a bridge's local session, not its remote broker.)
    await Promise.all(this.bridges.map((b) => b.stop()));
    clearInterval(this.sweepTimer);
    clearInterval(this.sysTimer);
    const closed = this.listeners.stopAccepting();
    this.takeWills(options.publishWills !== false);
    for (const conn of [...core.connections]) {
      if (conn.state === ConnState.Connected) conn.disconnect(ReasonCode.ServerShuttingDown);
      else conn.closeNow();
    }
    this.listeners.closeWebSockets();
    for (const session of core.sessions.values()) {
      clearTimeout(session.expiryTimer);
      clearTimeout(session.willTimer);
    }
    await this.waitForConnections(2000);
    for (const conn of core.connections) conn.transport.destroy();
    await closed;
    core.persist?.close(core.sessions, core.retained);
    await core.tracer.close();
  }

  /** The wills, as close() begins: published (logged with a count), or dropped (`publish` false). */
  private takeWills(publish: boolean): void {
    const core = this.core;
    if (!publish) {
      for (const conn of core.connections) conn.will = undefined;
      return;
    }
    const { published, kept } = shutdownWills(core);
    if (published > 0 || kept > 0) {
      const keptNote = kept > 0 ? `; ${kept} delayed will(s) kept in --persist for after the restart` : '';
      core.log(`stopping: ${published} will(s) published${keptNote}`);
    }
  }

  private waitForConnections(ms: number): Promise<void> {
    const connections = this.core.connections;
    if (connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = Date.now() + ms;
      const check = () => {
        if (connections.size === 0 || Date.now() >= deadline) resolve();
        else setTimeout(check, 10);
      };
      check();
    });
  }

  /** A timer's: a failure is logged, never thrown (it would end the process). */
  private publishSys(): void {
    try {
      this.sys.publish(this.stats, Math.floor((Date.now() - this.startedAt) / 1000));
    } catch (err) {
      this.core.internalError(undefined, '', 'publishing $SYS', err);
    }
  }
}

/** The state behind `broker` (tests; not part of the package's API). */
export function brokerCore(broker: Broker): BrokerCore {
  const core = cores.get(broker);
  if (core === undefined) throw new Error('not a Broker');
  return core;
}
