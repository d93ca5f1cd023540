/**
 * Hostile clients against mq's broker: garbage, a huge announced remaining length then silence,
 * a connection that never sends CONNECT, malformed packets, and 1,000 connections opened and
 * dropped. In every case the offending connection is closed, the broker stays up, and a
 * well-behaved client next to it keeps receiving its messages.
 */
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { Broker } from '../../src/broker/index.js';
import { killAll, type MqBroker, rssKiB, startMqBroker } from '../helpers/spawn.js';

// --- hand-built packets (explicit bytes: these tests must not depend on a codec) ---

function str(s: string): number[] {
  const b = Buffer.from(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** CONNECT, clean session, for protocol level 4 (3.1.1) or 5; v5 with an optional Maximum Packet Size. */
function connectBytes(version: 4 | 5, clientId: string, keepalive = 60): Buffer {
  const props = version === 5 ? [0] : [];
  const body = [...str('MQTT'), version, 0x02, keepalive >> 8, keepalive & 0xff, ...props, ...str(clientId)];
  return Buffer.from([0x10, body.length, ...body]);
}

/** The fixed header of a PUBLISH announcing 268,435,455 bytes (256 MB, the protocol maximum). */
const HUGE_PUBLISH_HEADER = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);

/** A raw TCP connection that records everything it receives and when it closed. */
class RawConn {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  closedAt: number | undefined;
  readonly openedAt = Date.now();
  private listeners = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.notify();
    });
    socket.on('error', () => {
      // ECONNRESET when the broker drops us: the close event below records it.
    });
    socket.on('close', () => {
      this.closedAt = Date.now();
      this.notify();
    });
  }

  static open(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.setNoDelay(true);
      s.once('connect', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  send(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** Resolves once `pred(received)` holds; rejects after timeoutMs or on close without it. */
  waitFor(what: string, pred: (b: Buffer) => boolean, timeoutMs = 3000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this.received)) {
          done();
          resolve();
        } else if (this.closedAt !== undefined) {
          done();
          reject(new Error(`closed before ${what}; received ${this.received.toString('hex')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms; received ${this.received.toString('hex')}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves with ms from open to close; rejects if still open after timeoutMs. */
  waitClosed(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.closedAt !== undefined) {
          done();
          resolve(this.closedAt - this.openedAt);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`connection still open after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A connection that completed CONNECT/CONNACK (accepted) at `version`. */
async function connected(port: number, version: 4 | 5, keepalive = 60): Promise<RawConn> {
  const c = await RawConn.open(port);
  c.send(connectBytes(version, `raw-${version}-${Math.random().toString(16).slice(2, 8)}`, keepalive));
  await c.waitFor('CONNACK', (b) => b.length >= 4 && b[0] === 0x20);
  expect(c.received[3], 'CONNACK reason / return code').toBe(0);
  c.received = Buffer.alloc(0);
  return c;
}

/** The reason code of a v5 DISCONNECT found in `b` (0 when it has no reason byte), or undefined. */
function disconnectReason(b: Buffer): number | undefined {
  if (b[0] !== 0xe0) return undefined;
  return b[1] === 0 ? 0 : b[2];
}

// --- a well-behaved pair of clients next to the hostile ones ---

interface Watch {
  sub: MqttClient;
  pub: MqttClient;
  /** Publishes one QoS 1 message and resolves when the subscriber has it. */
  alive(): Promise<void>;
  end(): Promise<void>;
}

async function watch(port: number, topic: string): Promise<Watch> {
  const opts = { reconnectPeriod: 0, connectTimeout: 5000 };
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    ...opts,
    clientId: `watch-sub-${topic}`,
  });
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    ...opts,
    clientId: `watch-pub-${topic}`,
  });
  await sub.subscribeAsync(topic, { qos: 1 });
  let n = 0;
  return {
    sub,
    pub,
    alive: async () => {
      const payload = `ping ${++n}`;
      const got = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`watcher did not receive '${payload}'`)), 5000);
        const on = (_t: string, p: Buffer) => {
          if (p.toString() === payload) {
            clearTimeout(timer);
            sub.off('message', on);
            resolve();
          }
        };
        sub.on('message', on);
      });
      await pub.publishAsync(topic, payload, { qos: 1 });
      await got;
      expect(sub.connected && pub.connected).toBe(true);
    },
    end: async () => {
      await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
    },
  };
}

describe('hostile clients (in-process broker)', () => {
  let broker: Broker;
  let limited: Broker;
  let port: number;
  let limitedPort: number;
  let w: Watch;

  beforeAll(async () => {
    broker = new Broker({ port: 0, connectTimeoutMs: 300, log: () => {}, sysInterval: 0 });
    port = (await broker.listen()).tcp?.port ?? 0;
    limited = new Broker({
      port: 0,
      connectTimeoutMs: 300,
      maxPacketSize: 1024 * 1024,
      log: () => {},
      sysInterval: 0,
    });
    limitedPort = (await limited.listen()).tcp?.port ?? 0;
    w = await watch(port, 'watch/main');
  });

  afterAll(async () => {
    await w?.end();
    await broker?.close();
    await limited?.close();
  });

  it('closes a connection that sends garbage, and keeps serving the others', async () => {
    const zeros = await RawConn.open(port);
    zeros.send(Buffer.from([0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef])); // packet type 0 is reserved
    const http = await RawConn.open(port);
    http.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const noise = await RawConn.open(port);
    noise.send(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)));
    await zeros.waitClosed(3000);
    await http.waitClosed(3000);
    await noise.waitClosed(3000);
    await w.alive();
  });

  it('[MQTT-3.1.0-1] closes a connection whose first packet is not CONNECT', async () => {
    const c = await RawConn.open(port);
    c.send([0xc0, 0x00]); // PINGREQ
    await c.waitClosed(3000);
    expect(c.received.length).toBe(0);
  });

  it('closes a connection that never sends CONNECT after the connect timeout', async () => {
    const c = await RawConn.open(port);
    const ms = await c.waitClosed(5000);
    expect(ms).toBeGreaterThanOrEqual(250);
    await w.alive();
  });

  it('closes a connection that announces a 256 MB CONNECT and goes silent', async () => {
    const c = await RawConn.open(port);
    c.send([0x10, 0xff, 0xff, 0xff, 0x7f]);
    await c.waitClosed(5000);
    await w.alive();
  });

  it('announcing 256 MB over the max packet size: v5 gets DISCONNECT 0x95, 3.1.1 is closed', async () => {
    const v5 = await connected(limitedPort, 5);
    v5.send(HUGE_PUBLISH_HEADER);
    await v5.waitClosed(3000);
    expect(disconnectReason(v5.received)).toBe(0x95);
    const v4 = await connected(limitedPort, 4);
    v4.send(HUGE_PUBLISH_HEADER);
    await v4.waitClosed(3000);
    expect(v4.received.length).toBe(0);
  });

  it('a 256 MB announcement under no limit buffers nothing, and the keepalive closes the silent client', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const c = await connected(port, 4, 1);
    c.send(HUGE_PUBLISH_HEADER);
    c.send(Buffer.alloc(1000, 0x41)); // a little of the "body", then silence
    await w.alive();
    // A broker that allocated the announced size up front would show 256 MB here.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
    // [MQTT-3.1.2-22] closed once 1.5 x keepalive has passed: on the broker's clock, moved past it
    // rather than waited for (connect-session.test.ts waits for a keepalive in real time).
    expect(c.closedAt).toBeUndefined();
    const core = brokerCore(broker);
    core.sweep(); // notes the client's last bytes: its silence starts now
    core.clock = () => Date.now() + 1600;
    try {
      core.sweep();
      await c.waitClosed(3000);
    } finally {
      core.clock = Date.now;
    }
    await w.alive();
  });

  it('a malformed packet closes only its sender (v5: DISCONNECT 0x81), others keep receiving', async () => {
    // [MQTT-3.3.1-4] a PUBLISH with both QoS bits set is malformed.
    const badQos = [0x36, 0x07, 0x00, 0x01, 0x61, 0x00, 0x01, 0x00, 0x78];
    const v5 = await connected(port, 5);
    const v4 = await connected(port, 4);
    const bystander = await connected(port, 4);
    v5.send(badQos);
    v4.send(badQos);
    await v5.waitClosed(3000);
    await v4.waitClosed(3000);
    expect(disconnectReason(v5.received)).toBe(0x81);
    // The bystander on the same broker still gets answers.
    bystander.send([0xc0, 0x00]);
    await bystander.waitFor('PINGRESP', (b) => b[0] === 0xd0);
    await w.alive();
    bystander.destroy();
  });

  it('a truncated packet inside a valid remaining length is malformed, not a crash', async () => {
    // SUBSCRIBE whose topic length (0x00ff) runs past the remaining length.
    const v5 = await connected(port, 5);
    v5.send([0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0xff, 0x61]);
    await v5.waitClosed(3000);
    const reason = disconnectReason(v5.received);
    expect(reason === undefined || reason === 0x81).toBe(true);
    await w.alive();
  });
});

describe('1,000 connections opened and dropped (spawned mq broker)', () => {
  let broker: MqBroker;
  let w: Watch;

  beforeAll(async () => {
    broker = await startMqBroker([]);
    w = await watch(broker.port, 'watch/churn');
  });

  afterAll(async () => {
    await w?.end();
    await broker?.stop();
    await killAll();
  });

  /** One connection that misbehaves in one of three ways, then disappears. */
  async function churnOne(i: number): Promise<void> {
    const c = await RawConn.open(broker.port);
    switch (i % 3) {
      case 0: // a full CONNECT, then dropped without DISCONNECT
        c.send(connectBytes(4, `churn-${i}`));
        await c.waitFor('CONNACK', (b) => b[0] === 0x20 && b.length >= 4);
        break;
      case 1: // half a CONNECT
        c.send(connectBytes(5, `churn-${i}`).subarray(0, 9));
        break;
      default: // nothing at all
        break;
    }
    c.destroy();
  }

  async function round(count: number, batch: number): Promise<void> {
    for (let start = 0; start < count; start += batch) {
      await Promise.all(Array.from({ length: batch }, (_, k) => churnOne(start + k)));
      await w.alive(); // the established client is served throughout
    }
  }

  it('stays up, keeps serving an established client, and its RSS returns near the baseline', async () => {
    await round(1000, 100); // warm-up: lets the heap reach its working size
    const baseline = rssKiB(broker.pid);
    for (let r = 0; r < 3; r++) await round(1000, 100);
    await w.alive();
    const after = rssKiB(broker.pid);
    // 3,000 more connections: a leak of even 7 KB each would add 21 MB.
    expect(after - baseline, `RSS ${baseline} KiB -> ${after} KiB`).toBeLessThan(20 * 1024);
    expect(broker.proc.exited).toBe(false);
  }, 120_000);
});
