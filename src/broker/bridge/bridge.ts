/**
 * A bridge: the local broker joined to a remote one, topics mirrored in the directions given, with
 * prefixes remapped (Mosquitto's `topic` syntax, topics.ts).
 *
 * Two sessions carry it. Locally, an in-process link (link.ts) subscribed to the out/both topics:
 * a message for the remote broker is acknowledged to the local broker only once the remote broker
 * acknowledged it, so while the remote is away the local broker keeps the messages (in flight, then
 * queued up to --max-queued, persisted with --persist). Remotely, an MqttClient with a persistent
 * session (3.1.1: clean session off; 5.0: a Session Expiry Interval) subscribed to the in/both
 * topics, reconnecting with backoff and resubscribing when the remote lost the session. A message
 * from the remote broker is routed locally before the client acknowledges it.
 *
 * Loops: locally, the link's subscriptions are No Local (what came in is not sent back out); on the
 * remote broker, v5 subscriptions are No Local, and in 3.1/3.1.1 the CONNECT carries Mosquitto's
 * bridge flag (try_private), with which Mosquitto (and mq) send a bridge none of its own messages.
 * Retained flags travel as published (Retain As Published both ways).
 *
 * State: log lines (connecting, connected, lost, cannot connect) and the retained local topic
 * $SYS/broker/connection/<remote client id>/state, 1 while connected and 0 otherwise (Mosquitto's
 * notifications).
 */
import { isUtf8 } from 'node:buffer';
import { type BackoffRange, backoffDelay } from '../../client/backoff.js';
import { MqttClient } from '../../client/client.js';
import { ClientClosedError, DisconnectError, PublishRefusedError } from '../../client/errors.js';
import type { ClientOptions } from '../../client/options.js';
import { describeTarget } from '../../client/transport.js';
import type { Properties, PublishPacket, QoS, Subscription } from '../../protocol/index.js';
import { inspectPacket, mayHoldSecret } from '../../protocol/inspect.js';
import { quoteTopic } from '../../protocol/topic.js';
import type { BrokerCore } from '../core.js';
import { BridgeLink } from './link.js';
import { BridgeSubscriptions, type BridgeTopic, parseBridgeTopic, toLocal, toRemote } from './topics.js';

/** One --bridge: where, as whom, and which topics. */
export interface BridgeOptions {
  /**
   * The remote broker and the client session on it (transport, host, port, TLS, version, client
   * id, credentials, keepalive, clean, sessionExpiry, bridge flag). `reconnect` is the bridge's.
   */
  remote: ClientOptions;
  /** Mosquitto `topic` lines: `PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`. */
  topics: (string | BridgeTopic)[];
  /** Name in log lines (default: the remote's address). */
  name?: string;
  /** Client id of the local session (default `local.` + the remote client id, as Mosquitto). */
  localClientId?: string;
  /** Reconnect backoff (default 1 to 30 s, with jitter). */
  reconnect?: BackoffRange;
}

const DEFAULT_RECONNECT: BackoffRange = { minMs: 1000, maxMs: 30_000 };
/** QoS 0 bytes handed to the remote client and not yet written: above this, QoS 0 is dropped. */
const QOS0_BACKLOG_BYTES = 16 * 1024 * 1024;

/** A local QoS 1/2 message on its way to the remote broker. */
interface Forward {
  seq: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: Properties | undefined;
  /** Acknowledges it to the local broker. */
  done: () => void;
}

export class Bridge {
  readonly name: string;
  readonly stateTopic: string;
  private readonly core: BrokerCore;
  private readonly remote: ClientOptions;
  private readonly topics: BridgeTopic[];
  /** The local subscriptions (out/both) and the remote ones (in/both). */
  private readonly outSubs: BridgeSubscriptions;
  private readonly inSubs: BridgeSubscriptions;
  private readonly reconnect: BackoffRange;
  private link: BridgeLink;
  private readonly localClientId: string;
  private client: MqttClient | undefined = undefined;
  /** Local messages waiting for a remote client (none yet, or the last one finished). */
  private waiting: Forward[] = [];
  private nextSeq = 1;
  private qos0Backlog = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined = undefined;
  private wakeRetry: (() => void) | undefined = undefined;
  /** The last failure logged (the same one is not logged again until the link was up). */
  private lastFailure = '';
  private readonly lines = new RateLimit();

  constructor(core: BrokerCore, options: BridgeOptions) {
    this.core = core;
    this.remote = options.remote;
    this.topics = options.topics.map((t) => (typeof t === 'string' ? parseBridgeTopic(t) : t));
    if (this.topics.length === 0) throw new Error('a bridge needs at least one topic');
    this.outSubs = new BridgeSubscriptions(this.topics, 'out');
    this.inSubs = new BridgeSubscriptions(this.topics, 'in');
    this.reconnect = options.reconnect ?? DEFAULT_RECONNECT;
    this.name = options.name ?? describeTarget(options.remote);
    this.stateTopic = `$SYS/broker/connection/${options.remote.clientId}/state`;
    this.localClientId = options.localClientId ?? `local.${options.remote.clientId}`;
    this.link = this.newLink();
  }

  private newLink(): BridgeLink {
    return new BridgeLink(this.core, this.localClientId, {
      message: (packet, done) => this.guard('a local message', () => this.forwardOut(packet, done)),
      log: (line) => this.log(line),
      closed: () => this.guard('the local link ending', () => this.linkClosed()),
    });
  }

  /**
   * The broker ended the local link while running (an internal error): a new one resumes the
   * session, whose messages in flight come again (the remote may get some twice).
   */
  private linkClosed(): void {
    if (this.stopped || this.core.closing) return;
    this.log('the local link ended: starting it again in 1 s');
    // Not at once: whatever ended it must not make a loop of it.
    setTimeout(() => {
      if (this.stopped || this.core.closing) return;
      this.link = this.newLink();
      this.link.start(this.outSubs.list);
      if (this.client?.connected === true) this.link.resendRetained();
    }, 1000).unref();
  }

  /** Subscribes locally, then connects to the remote broker (and keeps doing so until stop()). */
  start(): void {
    this.link.start(this.outSubs.list);
    this.setState('0');
    const v = this.remote.version === 5 ? 'MQTT 5.0' : this.remote.version === 4 ? 'MQTT 3.1.1' : 'MQTT 3.1';
    const session = this.remote.clean ? 'clean session' : 'persistent session';
    this.log(
      `connecting to ${this.url()} as ${this.remote.clientId} (${v}, ${session}); topics: ${this.topics.map((t) => t.spec).join(', ')}`,
    );
    void this.connectLoop();
  }

  /** Ends the remote session (DISCONNECT: a persistent one stays) and the local link. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await client.end().catch(() => {});
    this.link.close();
  }

  // ---- the remote client ----------------------------------------------------------------------

  /**
   * Connects a new client, retrying with backoff, until one is up or the bridge stops. `patient`:
   * wait the longest backoff first (the session was taken over: not at once back and forth).
   */
  private async connectLoop(patient = false): Promise<void> {
    if (patient) await this.pause(this.reconnect.maxMs);
    for (let attempt = 1; !this.stopped; attempt++) {
      let client: MqttClient;
      try {
        client = await MqttClient.connect({
          ...this.remote,
          reconnect: this.reconnect,
          trace: this.tracer(),
        });
      } catch (err) {
        if (this.stopped) return;
        this.failed('cannot connect', err, `retrying in up to ${this.reconnect.maxMs / 1000} s`);
        await this.pause(backoffDelay(attempt, this.reconnect));
        continue;
      }
      if (this.stopped) {
        client.destroy();
        return;
      }
      this.guard('a new connection', () => this.attach(client));
      return;
    }
  }

  private attach(client: MqttClient): void {
    this.client = client;
    client.on('message', (packet) => this.guard('a remote message', () => this.forwardIn(packet)));
    client.on('connect', (_connack, resumed) => this.guard('a reconnection', () => this.up(client, resumed)));
    client.on('offline', (error) => this.guard('a lost connection', () => this.down(error)));
    client.on('reconnect', (_attempt, _delay, lastError) => {
      if (lastError !== undefined) this.failed('cannot reconnect', lastError, 'retrying');
    });
    client.on('close', (error) =>
      this.guard('a closed client', () => {
        if (this.client !== client || this.stopped) return;
        this.client = undefined;
        this.setState('0');
        const takenOver = error instanceof DisconnectError && error.reasonCode === 0x8e;
        const next = takenOver ? `connecting again in ${this.reconnect.maxMs / 1000} s` : 'connecting again';
        this.failed('the connection ended', error ?? new Error('closed'), next);
        void this.connectLoop(takenOver);
      }),
    );
    this.up(client, client.connack.sessionPresent);
    this.subscribeRemote(client);
  }

  /** Connected (first time or again): state 1, retained local messages out again, waiting ones sent. */
  private up(client: MqttClient, resumed: boolean): void {
    this.lastFailure = '';
    this.log(`connected to ${this.url()} (${resumed ? 'session resumed' : 'new session'})`);
    this.setState('1');
    // As Mosquitto: the local retained messages of the out topics go to the remote on every connect.
    this.link.resendRetained();
    const waiting = this.waiting.sort((a, b) => a.seq - b.seq);
    this.waiting = [];
    for (const f of waiting) this.send(client, f);
  }

  private down(error: Error): void {
    this.setState('0');
    // Taken over: the client ends rather than reconnect ('close' says so).
    if (error instanceof DisconnectError && error.reasonCode === 0x8e) return;
    this.lastFailure = this.explain(error);
    this.log(
      `connection to ${this.url()} lost: ${this.lastFailure}; reconnecting (QoS 1 and 2 messages for it wait, QoS 0 ones are dropped)`,
    );
  }

  /** Logs a failure unless it is the one logged last (a remote refusing us is one line, not one a retry). */
  private failed(what: string, err: unknown, next: string): void {
    const message = this.explain(err);
    if (message === this.lastFailure) return;
    this.lastFailure = message;
    this.log(`${what}: ${message}; ${next}`);
  }

  /** The client's message, its hints naming mq broker's --bridge-* flags instead of pub/sub's. */
  private explain(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return text
      .replace(/--(servername|insecure|cafile)\b/g, '--bridge-$1')
      .replace(/-V (3\.1\.1|3\.1|5)\b/g, '--bridge-protocol-version $1')
      .replace('same client id (-i)', 'same client id (--bridge-client-id)')
      .replace(
        '-u/-P (or MQ_USERNAME/MQ_PASSWORD, or the profile)',
        '--bridge-username/--bridge-password (or MQ_BRIDGE_PASSWORD)',
      );
  }

  /** Waits `ms` (or less when the bridge stops). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeRetry = resolve;
      this.retryTimer = setTimeout(resolve, ms);
    });
  }

  /**
   * One SUBSCRIBE per in/both filter (MQTT 5: with its Subscription Identifier, when the remote
   * broker has them, so that one copy of a message matching several is forwarded; No Local;
   * Retain As Published; retained messages sent). The client subscribes again to a lost session.
   */
  private subscribeRemote(client: MqttClient): void {
    const v5 = this.remote.version === 5;
    const ids = v5 && client.connack.properties?.subscriptionIdentifierAvailable !== 0;
    for (const s of this.inSubs.list) {
      const sub: Subscription = v5
        ? { topicFilter: s.filter, qos: s.qos, noLocal: true, retainAsPublished: true, retainHandling: 0 }
        : { topicFilter: s.filter, qos: s.qos };
      client.subscribe([sub], ids ? { subscriptionIdentifiers: [s.id] } : undefined).then(
        (suback) => {
          const code = suback.reasonCodes[0] ?? 0;
          if (code >= 0x80)
            this.log(
              `the remote broker refused the subscription to ${quoteTopic(s.filter)} (reason 0x${code.toString(16)})`,
            );
        },
        () => {},
      );
    }
  }

  // ---- messages -------------------------------------------------------------------------------

  /** A message from the remote broker: published locally under its local topic, before it is acknowledged. */
  private forwardIn(packet: PublishPacket): void {
    if (!this.theCopy(this.inSubs, packet)) return;
    if (packet.properties?.payloadFormatIndicator === 1 && !isUtf8(packet.payload)) {
      // The local broker refuses these from any client [MQTT-3.3.2-4] (at QoS 0 by DISCONNECT).
      const why = 'says UTF-8 (Payload Format Indicator 1) but is not: dropped';
      this.lines.log(this, 'not-utf8', `a message from the remote on ${quoteTopic(packet.topic)} ${why}`);
      return;
    }
    const topic = toLocal(this.topics, packet.topic);
    if (topic === undefined) {
      this.lines.log(
        this,
        'unmapped-in',
        `a message from the remote on ${quoteTopic(packet.topic)} matches no in/both topic (a subscription an earlier run left in the remote session?): dropped`,
      );
      return;
    }
    this.link.publish(
      topic,
      packet.payload,
      packet.qos,
      packet.retain,
      forwardedProperties(packet.properties),
    );
  }

  /** A local message for the remote broker: QoS 0 now or never, QoS 1/2 acknowledged locally once delivered. */
  private forwardOut(packet: PublishPacket, done: () => void): void {
    const topic = this.theCopy(this.outSubs, packet) ? toRemote(this.topics, packet.topic) : undefined;
    if (topic === undefined) {
      done();
      return;
    }
    const properties = forwardedProperties(packet.properties);
    const client = this.client;
    if (packet.qos === 0) {
      const size = packet.payload.length;
      if (client?.connected !== true || this.qos0Backlog + size > QOS0_BACKLOG_BYTES) {
        this.dropped(
          client?.connected === true
            ? 'QoS 0 while the remote link is backed up'
            : 'QoS 0 while the remote link is down',
        );
        return;
      }
      this.qos0Backlog += size;
      const settled = () => {
        this.qos0Backlog -= size;
      };
      client.publishWith(
        topic,
        packet.payload,
        options(packet.qos, packet.retain, properties),
        settled,
        settled,
      );
      return;
    }
    const f: Forward = {
      seq: this.nextSeq++,
      topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      properties,
      done,
    };
    if (client === undefined) this.waiting.push(f);
    else this.send(client, f);
  }

  /**
   * False for a copy of a message that another subscription of the same side delivers too (its
   * Subscription Identifiers do not include the one copyFor() picks): the bridge forwards one.
   * Copies without identifiers (3.1.1, a broker without them) all pass.
   */
  private theCopy(subs: BridgeSubscriptions, packet: PublishPacket): boolean {
    const ids = packet.properties?.subscriptionIdentifiers;
    if (ids === undefined) return true;
    const id = subs.copyFor(packet.topic);
    return id !== undefined && ids.includes(id);
  }

  /** Hands a QoS 1/2 message to `client` (which queues it while reconnecting). */
  private send(client: MqttClient, f: Forward): void {
    const limits = client.connack.properties;
    // Within what the remote announced: its Maximum QoS, Retain Available.
    const qos = Math.min(f.qos, limits?.maximumQoS ?? 2) as QoS;
    const retain = f.retain && limits?.retainAvailable !== 0;
    client.publish(f.topic, f.payload, options(qos, retain, f.properties)).then(
      () => this.guard('an acknowledgement', f.done),
      (err: unknown) =>
        this.guard('a failed publish', () => {
          if (err instanceof PublishRefusedError) {
            // Refused for good (not authorized, too large...): nothing to retry.
            this.lines.log(
              this,
              'refused',
              `the remote broker refused a message on ${quoteTopic(f.topic)}: ${err.message}`,
            );
            f.done();
          } else if (!(err instanceof ClientClosedError) || !this.stopped) {
            // The client finished (a refusal on reconnect...): the next client sends it.
            if (this.client === undefined) this.waiting.push(f);
            else this.send(this.client, f);
          }
        }),
    );
  }

  private dropped(why: string): void {
    const session = this.core.sessions.get(this.link.clientId);
    if (session !== undefined) this.core.drops.dropped(session, `${why} (bridge ${this.name})`);
    else this.core.counters.messagesDropped++;
  }

  // ---- state, log, trace ----------------------------------------------------------------------

  private setState(value: '0' | '1'): void {
    this.link.publish(this.stateTopic, Buffer.from(value), 1, true);
  }

  log(line: string): void {
    this.core.log(`bridge ${this.name}: ${line}`);
  }

  private url(): string {
    const r = this.remote;
    return r.transport === 'ws' || r.transport === 'wss'
      ? describeTarget(r)
      : `${r.transport}://${describeTarget(r)}`;
  }

  /** --trace: the remote link's packets too, as `[bridge NAME] >> PACKET` (sent) and `<<` (received). */
  private tracer(): ClientOptions['trace'] {
    const mode = this.core.opts.trace;
    if (mode === undefined) return undefined;
    const write = this.core.opts.traceOut ?? ((line: string) => this.core.log(line));
    const version = this.remote.version;
    return (direction, packet, raw) => {
      // Masked as the broker's own trace masks (a password, Authentication Data).
      const shown = mayHoldSecret(raw[0] ?? 0) ? (inspectPacket(raw, version).packet ?? packet) : packet;
      write(
        `[bridge ${this.name}] ${direction === 'out' ? '>>' : '<<'} ${this.core.tracer.format(shown, version, mode)}`,
      );
    };
  }

  /** Runs an event-loop callback; a failure is logged, never thrown (it would end the process). */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log(`internal error handling ${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function options(qos: QoS, retain: boolean, properties: Properties | undefined) {
  return properties === undefined ? { qos, retain } : { qos, retain, properties };
}

/** A message's properties as they travel on: without the hop's own (Topic Alias, Subscription Identifiers). */
function forwardedProperties(props: Properties | undefined): Properties | undefined {
  if (props === undefined) return undefined;
  if (props.topicAlias === undefined && props.subscriptionIdentifiers === undefined) return props;
  const out: Properties = { ...props };
  delete out.topicAlias;
  delete out.subscriptionIdentifiers;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** At most one line a second per kind, with a count of those left out. */
class RateLimit {
  private readonly last = new Map<string, { at: number; skipped: number }>();

  log(bridge: Bridge, kind: string, line: string): void {
    const now = Date.now();
    const l = this.last.get(kind);
    if (l !== undefined && now - l.at < 1000) {
      l.skipped++;
      return;
    }
    const more = l !== undefined && l.skipped > 0 ? ` (and ${l.skipped} more like it)` : '';
    this.last.set(kind, { at: now, skipped: 0 });
    bridge.log(line + more);
  }
}
