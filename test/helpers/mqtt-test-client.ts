/**
 * A tiny raw-socket MQTT client for tests, built on mq's codec: it sends exactly the packets it is
 * given and hands back every packet it receives, so tests can check what a broker does on the wire.
 *
 *   const c = await TestClient.connect(port, { version: 5, clientId: 'a' });   // CONNECT + CONNACK
 *   c.send({ type: 'SUBSCRIBE', packetId: 1, subscriptions: [{ topicFilter: 'a/#', qos: 1 }] });
 *   const suback = await c.nextPacket('SUBACK', 2000);
 *   await c.closed(2000);              // resolves when the broker closes the connection
 *   c.destroy();
 *
 * connect(..., { connect: false }) opens the socket only (send your own CONNECT, or garbage with
 * sendRaw()).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import {
  type ConnackPacket,
  type ConnectPacket,
  encode,
  Framer,
  type Packet,
  type PacketOf,
  type PacketTypeName,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  type QoS,
  type SubscribePacket,
  type Subscription,
  type Will,
} from '../../src/protocol/index.js';

export interface TestConnectOptions {
  version?: ProtocolVersion;
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  username?: string;
  password?: string;
  will?: Will;
  properties?: Properties;
  host?: string;
  /** false: open the socket, send nothing. */
  connect?: boolean;
  /** Reject unless CONNACK reason is 0 (default true). */
  expectSuccess?: boolean;
  timeoutMs?: number;
}

interface Waiter {
  type: PacketTypeName | undefined;
  resolve: (p: Packet) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class TestClient {
  readonly socket: Socket;
  readonly framer: Framer;
  version: ProtocolVersion;
  /** Every packet received, in order (also those handed out by nextPacket). */
  readonly received: Packet[] = [];
  /** Received and not yet taken by nextPacket. */
  private readonly inbox: Packet[] = [];
  private readonly waiters: Waiter[] = [];
  private isClosed = false;
  private closeWaiters: (() => void)[] = [];
  connack: ConnackPacket | undefined = undefined;
  error: Error | undefined = undefined;

  private constructor(socket: Socket, version: ProtocolVersion) {
    this.socket = socket;
    this.version = version;
    this.framer = new Framer(version);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.framer.push(chunk, (packet) => {
          // Payloads are views into the read buffer: keep copies.
          if (packet.type === 'PUBLISH') packet.payload = Buffer.from(packet.payload);
          this.received.push(packet);
          const i = this.waiters.findIndex((w) => w.type === undefined || w.type === packet.type);
          if (i >= 0) {
            const [w] = this.waiters.splice(i, 1);
            clearTimeout(w!.timer);
            w!.resolve(packet);
          } else this.inbox.push(packet);
        });
      } catch (err) {
        this.error = err instanceof Error ? err : new Error(String(err));
        socket.destroy();
      }
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.isClosed = true;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed while waiting for ${w.type ?? 'a packet'}`));
      }
      for (const f of this.closeWaiters.splice(0)) f();
    });
  }

  static async connect(port: number, options: TestConnectOptions = {}): Promise<TestClient> {
    const version = options.version ?? 4;
    const socket = netConnect({ port, host: options.host ?? '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const client = new TestClient(socket, version);
    if (options.connect === false) return client;
    const packet: ConnectPacket = {
      type: 'CONNECT',
      protocolVersion: version,
      clean: options.clean ?? true,
      keepalive: options.keepalive ?? 60,
      clientId: options.clientId ?? `test-${Math.random().toString(16).slice(2, 10)}`,
    };
    if (options.username !== undefined) packet.username = options.username;
    if (options.password !== undefined) packet.password = Buffer.from(options.password);
    if (options.will !== undefined) packet.will = options.will;
    if (options.properties !== undefined) packet.properties = options.properties;
    client.send(packet);
    const connack = await client.nextPacket('CONNACK', options.timeoutMs ?? 5000);
    client.connack = connack;
    if ((options.expectSuccess ?? true) && connack.reasonCode !== 0) {
      client.destroy();
      throw new Error(`CONNACK refused: ${connack.reasonCode}`);
    }
    return client;
  }

  send(packet: Packet): void {
    this.socket.write(encode(packet, this.version));
  }

  sendRaw(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes.replace(/\s+/g, ''), 'hex') : bytes);
  }

  /** The next packet of `type` (any type when undefined), already received or arriving within timeoutMs. */
  nextPacket<T extends PacketTypeName>(type: T, timeoutMs?: number): Promise<PacketOf<T>>;
  nextPacket(type?: undefined, timeoutMs?: number): Promise<Packet>;
  nextPacket(type?: PacketTypeName, timeoutMs = 3000): Promise<Packet> {
    const i = this.inbox.findIndex((p) => type === undefined || p.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    if (this.isClosed) return Promise.reject(new Error(`connection closed; no ${type ?? 'packet'} received`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        type,
        resolve,
        reject,
        timer: setTimeout(() => {
          const k = this.waiters.indexOf(w);
          if (k >= 0) this.waiters.splice(k, 1);
          reject(new Error(`no ${type ?? 'packet'} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Resolves true when no packet of `type` arrives within ms (for "must not receive" checks). */
  async nothing(type: PacketTypeName | undefined, ms: number): Promise<boolean> {
    try {
      await this.nextPacket(type as PacketTypeName, ms);
      return false;
    } catch {
      return true;
    }
  }

  /** Packets received and not yet taken. */
  pending(): Packet[] {
    return [...this.inbox];
  }

  get closedNow(): boolean {
    return this.isClosed;
  }

  /** Resolves when the socket closes; rejects after timeoutMs. */
  closed(timeoutMs = 3000): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`connection still open after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends DISCONNECT (reason 0) and ends the socket. */
  async disconnect(reasonCode?: number): Promise<void> {
    if (this.isClosed) return;
    this.send(reasonCode === undefined ? { type: 'DISCONNECT' } : { type: 'DISCONNECT', reasonCode });
    this.socket.end();
    await this.closed().catch(() => this.socket.destroy());
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Log lines a test broker printed (for asserting on log output). */
export interface StartedBroker {
  broker: import('../../src/broker/index.js').Broker;
  port: number;
  logs: string[];
  /** Resolves with the first log line matching `re` (past or future) within timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** An in-process broker on a free port, logs captured. Close it with `broker.close()`. */
export async function startBroker(
  options: import('../../src/broker/index.js').BrokerOptions = {},
): Promise<StartedBroker> {
  const { Broker } = await import('../../src/broker/index.js');
  const logs: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const broker = new Broker({
    port: 0,
    sysInterval: 0,
    ...options,
    log: (line) => {
      logs.push(line);
      for (const l of listeners) l(line);
    },
  });
  const addresses = await broker.listen();
  const waitForLog = (re: RegExp, timeoutMs = 3000): Promise<string> => {
    const found = logs.find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.splice(listeners.indexOf(listener), 1);
        reject(new Error(`no log line matching ${re} within ${timeoutMs} ms; got:\n${logs.join('\n')}`));
      }, timeoutMs);
      const listener = (line: string) => {
        if (!re.test(line)) return;
        clearTimeout(timer);
        listeners.splice(listeners.indexOf(listener), 1);
        resolve(line);
      };
      listeners.push(listener);
    });
  };
  return { broker, port: addresses.tcp?.port ?? 0, logs, waitForLog };
}

/** Extra fields for brokerHarness().pub; a plain boolean there means `retain`. */
export interface PubOptions {
  retain?: boolean;
  dup?: boolean;
  /** This packet id instead of a fresh one (set even for QoS 0). */
  packetId?: number;
  properties?: Properties;
}

/**
 * The brokers and clients of one test file, closed after each test. Call once at the top level:
 * `const { broker, sharedBroker, client, subscribe, pub, track } = brokerHarness();`
 */
export function brokerHarness() {
  const clients: TestClient[] = [];
  const closables: { close(): Promise<unknown> }[] = [];
  let n = 0;
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    for (const b of closables.splice(0)) await b.close();
  });

  /** SUBSCRIBE one filter; resolves with the SUBACK's reason code. */
  function subscribe(c: TestClient, topicFilter: string, qos?: QoS): Promise<number>;
  /**
   * SUBSCRIBE several filters in one packet (a string is that filter at QoS 0), optionally with a
   * Subscription Identifier; checks the SUBACK's packet id, resolves with its reason codes.
   */
  function subscribe(
    c: TestClient,
    filters: (string | Subscription)[],
    subscriptionId?: number,
  ): Promise<number[]>;
  async function subscribe(
    c: TestClient,
    filters: string | (string | Subscription)[],
    qosOrId?: number,
  ): Promise<number | number[]> {
    const packetId = ++n;
    const one = typeof filters === 'string';
    const subscriptions: Subscription[] = one
      ? [{ topicFilter: filters, qos: (qosOrId ?? 0) as QoS }]
      : filters.map((f) => (typeof f === 'string' ? { topicFilter: f, qos: 0 } : f));
    const packet: SubscribePacket = { type: 'SUBSCRIBE', packetId, subscriptions };
    if (!one && qosOrId !== undefined) packet.properties = { subscriptionIdentifiers: [qosOrId] };
    c.send(packet);
    const ack = await c.nextPacket('SUBACK');
    expect(ack.packetId).toBe(packetId);
    return one ? ack.reasonCodes[0]! : ack.reasonCodes;
  }

  return {
    /** An in-process broker (startBroker), closed after the test. */
    async broker(options: Parameters<typeof startBroker>[0] = {}): Promise<StartedBroker> {
      const b = await startBroker(options);
      closables.push(b.broker);
      return b;
    },
    /**
     * One broker for the enclosing describe (or file): started in beforeAll, closed in afterAll.
     * Call it at the top level or in a describe callback; read its fields inside tests.
     */
    sharedBroker(options: Parameters<typeof startBroker>[0] = {}): StartedBroker {
      let started: StartedBroker | undefined;
      beforeAll(async () => {
        started = await startBroker(options);
      });
      afterAll(async () => {
        await started?.broker.close();
        started = undefined;
      });
      const get = (): StartedBroker => {
        if (started === undefined) throw new Error('sharedBroker() is only started inside its suite');
        return started;
      };
      return {
        get broker() {
          return get().broker;
        },
        get port() {
          return get().port;
        },
        get logs() {
          return get().logs;
        },
        waitForLog: (re, timeoutMs) => get().waitForLog(re, timeoutMs),
      };
    },
    /** Closes `b` after the test too (a Broker made by the test itself). */
    track<T extends { close(): Promise<unknown> }>(b: T): T {
      closables.push(b);
      return b;
    },
    async client(port: number, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
      const c = await TestClient.connect(port, options);
      clients.push(c);
      return c;
    },
    subscribe,
    /** A PUBLISH packet, with a fresh packet id when qos > 0 (unless options give one). */
    pub(
      topic: string,
      payload: string | Buffer,
      qos: QoS = 0,
      options: boolean | PubOptions = false,
    ): PublishPacket {
      const o: PubOptions = typeof options === 'boolean' ? { retain: options } : options;
      const p: PublishPacket = {
        type: 'PUBLISH',
        topic,
        qos,
        dup: o.dup ?? false,
        retain: o.retain ?? false,
        payload: Buffer.from(payload),
      };
      if (o.packetId !== undefined) p.packetId = o.packetId;
      else if (qos > 0) p.packetId = ++n;
      if (o.properties !== undefined) p.properties = o.properties;
      return p;
    },
  };
}
