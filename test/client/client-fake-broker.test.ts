/**
 * MqttClient against a scripted fake broker: the MQTT 5 behaviours a real broker will not show on
 * demand (redirects, topic aliases it sends, Receive Maximum, refusals, resends after a cut).
 */

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import {
  type ClientOptions,
  ConnectError,
  DisconnectError,
  MqttClient,
  PublishRefusedError,
} from '../../src/client/index.js';
import type { PublishPacket } from '../../src/protocol/index.js';
import { clientHarness } from '../helpers/client-harness.js';
import { type FakeBroker, once, startFakeBroker } from '../helpers/fake-broker.js';

const { cleanups, opts, connect } = clientHarness({ version: 5, clientId: 'fake-test' });

async function fake(...args: Parameters<typeof startFakeBroker>): Promise<FakeBroker> {
  const b = await startFakeBroker(...args);
  cleanups.push(() => b.stop());
  return b;
}

/** A broker that keeps sessions: every CONNACK after the first says Session Present. */
const sessionPresentAfterFirst = (n: number) => ({ sessionPresent: n > 1 });
/** A client that keeps its session (60 s) and reconnects at once. */
const persistent = (port: number) =>
  opts(port, { clean: false, sessionExpiry: 60, reconnect: { minMs: 10, maxMs: 50 } });

describe('connect refusals, in plain words', () => {
  test('v5 refused with 0x84: says the broker does not speak MQTT 5 and suggests -V 3.1.1', async () => {
    const b = await fake(undefined, { connack: { reasonCode: 0x84 } });
    const err = await MqttClient.connect(opts(b.port)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).reasonCode).toBe(0x84);
    expect((err as Error).message).toMatch(/0x84 Unsupported Protocol Version/);
    expect((err as Error).message).toMatch(/-V 3\.1\.1/);
  });

  test('an old broker answering a v5 CONNECT with a 3.1.1 CONNACK (return code 1): suggests -V 3.1.1', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'CONNECT') s.socket.write(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      },
      { autoConnack: false },
    );
    const err = (await MqttClient.connect(opts(b.port)).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(/unacceptable protocol version/);
    expect(err.message).toMatch(/try -V 3\.1\.1/);
  });

  test('a broker closing the socket right after a v5 CONNECT: suggests -V 3.1.1', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'CONNECT') s.close();
      },
      { autoConnack: false },
    );
    const err = (await MqttClient.connect(opts(b.port)).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(/closed the connection without answering CONNECT.*-V 3\.1\.1/);
  });

  test("bad credentials: the reason by name, with the broker's reason string", async () => {
    const b = await fake(undefined, {
      connack: { reasonCode: 0x86, properties: { reasonString: 'unknown user' } },
    });
    const err = (await MqttClient.connect(opts(b.port)).catch((e: unknown) => e)) as ConnectError;
    expect(err.message).toMatch(
      /^connection refused by 127\.0\.0\.1:\d+: 0x86 Bad User Name or Password \(unknown user\): check -u\/-P/,
    );
  });

  test('an empty client id: the id the broker assigns is reported', async () => {
    const b = await fake(undefined, { connack: { properties: { assignedClientIdentifier: 'auto-42' } } });
    const c = await connect(opts(b.port, { clientId: '' }));
    expect(c.clientId).toBe('auto-42');
    expect(b.sessions[0]!.received[0]).toMatchObject({ type: 'CONNECT', clientId: '' });
  });

  test('no CONNACK in time: "no CONNACK within N s from host:port"', async () => {
    const b = await fake(() => {}, { autoConnack: false });
    const err = (await MqttClient.connect(opts(b.port, { connectTimeoutMs: 300 })).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toBe(`no CONNACK within 0.3 s from 127.0.0.1:${b.port}`);
  });

  test('nothing listening: "connection refused (is a broker running there?)"', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = (await MqttClient.connect(opts(port)).catch((e: unknown) => e)) as ConnectError;
    expect(err.message).toBe(
      `could not connect to 127.0.0.1:${port}: connection refused (is a broker running there?)`,
    );
    expect(err.code).toBe('ECONNREFUSED');
  });
});

describe('server redirect (0x9C / 0x9D with Server Reference)', () => {
  test('CONNACK 0x9D is followed once to the referenced server', async () => {
    const target = await fake();
    const mover = await fake(undefined, {
      connack: { reasonCode: 0x9d, properties: { serverReference: `127.0.0.1:${target.port}` } },
    });
    const c = await connect(opts(mover.port));
    expect(c.connected).toBe(true);
    expect(target.sessions).toHaveLength(1);
    expect(target.sessions[0]?.received[0]?.type).toBe('CONNECT');
  });

  test('a second redirect is not followed: ConnectError naming the reason', async () => {
    let other = 0;
    const redirect = () => ({ reasonCode: 0x9c, properties: { serverReference: `127.0.0.1:${other}` } });
    const a = await fake(undefined, { connack: redirect });
    const b = await fake(undefined, { connack: redirect });
    other = b.port;
    const err = (await MqttClient.connect(opts(a.port)).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.message).toMatch(/0x9c Use another server/);
    expect(b.sessions).toHaveLength(1);
  });

  test('DISCONNECT 0x9C with Server Reference mid-session: the client moves there', async () => {
    const target = await fake();
    const first = await fake();
    const c = await connect(opts(first.port));
    const reconnected = once(c, 'connect');
    first.sessions[0]?.send({
      type: 'DISCONNECT',
      reasonCode: 0x9c,
      properties: { serverReference: `127.0.0.1:${target.port}` },
    });
    await reconnected;
    expect(target.sessions).toHaveLength(1);
  });
});

describe('topic aliases (v5)', () => {
  test('outgoing: alias used when the broker allows it; repeats carry only the alias', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'PUBLISH' && p.qos === 1) s.send({ type: 'PUBACK', packetId: p.packetId ?? 0 });
      },
      { connack: { properties: { topicAliasMaximum: 2 } } },
    );
    const c = await connect(opts(b.port));
    for (const t of ['a/1', 'a/1', 'a/1', 'a/2', 'a/3', 'a/3', 'a/3', 'a/2', 'a/2']) {
      await c.publish(t, 'x', { qos: 1 });
    }
    const pubs = b.sessions[0]!.received.filter((p): p is PublishPacket => p.type === 'PUBLISH');
    expect(pubs.map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
      ['a/1', undefined], // a one-off gains nothing from an alias
      ['a/1', 1],
      ['', 1],
      ['a/2', undefined],
      ['a/3', undefined],
      ['a/3', 2],
      ['', 2],
      ['a/2', undefined], // maximum 2 reached: sent in full
      ['a/2', undefined],
    ]);
  });

  test('outgoing: no aliases when the broker allows none', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH' && p.qos === 1) s.send({ type: 'PUBACK', packetId: p.packetId ?? 0 });
    });
    const c = await connect(opts(b.port));
    await c.publish('a/1', 'x', { qos: 1 });
    await c.publish('a/1', 'x', { qos: 1 });
    const pubs = b.sessions[0]!.received.filter((p): p is PublishPacket => p.type === 'PUBLISH');
    expect(pubs.map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
      ['a/1', undefined],
      ['a/1', undefined],
    ]);
    await expect(c.publish('a/1', 'x', { properties: { topicAlias: 1 } })).rejects.toThrow(
      /no topic aliases/,
    );
  });

  test('incoming: aliases resolved to the topic they were set for', async () => {
    const b = await fake();
    const c = await connect(opts(b.port, { connectProperties: { topicAliasMaximum: 5 } }));
    const s = b.sessions[0]!;
    const got: string[] = [];
    c.on('message', (p) => got.push(`${p.topic}=${p.payload.toString()}`));
    const pub = (topic: string, alias: number, payload: string): PublishPacket => ({
      type: 'PUBLISH',
      dup: false,
      qos: 0,
      retain: false,
      topic,
      payload: Buffer.from(payload),
      properties: { topicAlias: alias },
    });
    s.send(pub('x/y', 3, '1'));
    s.send(pub('', 3, '2'));
    s.send(pub('x/z', 3, '3'));
    s.send(pub('', 3, '4'));
    await expect.poll(() => got.length).toBe(4);
    expect(got).toEqual(['x/y=1', 'x/y=2', 'x/z=3', 'x/z=4']);
  });

  test('incoming: an unknown alias -> DISCONNECT 0x94 Topic Alias invalid, connection lost', async () => {
    const b = await fake();
    const c = await connect(opts(b.port, { connectProperties: { topicAliasMaximum: 5 } }));
    const offline = once<[Error]>(c, 'offline');
    b.sessions[0]!.send({
      type: 'PUBLISH',
      dup: false,
      qos: 0,
      retain: false,
      topic: '',
      payload: Buffer.from('?'),
      properties: { topicAlias: 4 },
    });
    const { packet } = await b.waitFor('DISCONNECT');
    expect(packet).toMatchObject({ type: 'DISCONNECT', reasonCode: 0x94 });
    const [err] = await offline;
    expect(err).toBeInstanceOf(DisconnectError);
    expect(err.message).toMatch(/topic alias 4 was never set/);
  });
});

describe('in-flight limits', () => {
  /** A broker that acks only once `limit` QoS 1 messages are outstanding; records the peak. */
  async function batchingBroker(receiveMaximum: number, batch: number) {
    let outstanding: number[] = [];
    let peak = 0;
    const b = await fake(
      (p, s) => {
        if (p.type === 'PUBLISH') {
          outstanding.push(p.packetId ?? 0);
          peak = Math.max(peak, outstanding.length);
          if (outstanding.length === batch) {
            // Ack a moment later, so any extra message the client sent meanwhile is counted too.
            setImmediate(() => {
              for (const id of outstanding) s.send({ type: 'PUBACK', packetId: id });
              outstanding = [];
            });
          }
        }
      },
      { connack: { properties: { receiveMaximum } } },
    );
    return { b, peak: () => peak };
  }

  test("the broker's Receive Maximum caps concurrent un-acked QoS 1 messages", async () => {
    const { b, peak } = await batchingBroker(3, 3);
    const c = await connect(opts(b.port));
    const results = await Promise.all(
      Array.from({ length: 9 }, (_, i) => c.publish(`t/${i}`, 'x', { qos: 1 })),
    );
    expect(results).toHaveLength(9);
    expect(peak()).toBe(3);
  });

  test('-M (maxInflight) below the Receive Maximum wins', async () => {
    const { b, peak } = await batchingBroker(10, 2);
    const c = await connect(opts(b.port, { maxInflight: 2 }));
    await Promise.all(Array.from({ length: 8 }, (_, i) => c.publish(`t/${i}`, 'x', { qos: 1 })));
    expect(peak()).toBe(2);
  });

  test('packet ids are never reused while in flight', async () => {
    const ids: number[] = [];
    let held: number[] = [];
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH') {
        ids.push(p.packetId ?? 0);
        held.push(p.packetId ?? 0);
        // Ack every id but the first one: it stays in flight while the others cycle.
        if (held.length === 50) {
          for (const id of held.slice(1)) s.send({ type: 'PUBACK', packetId: id });
          held = held.slice(0, 1);
        }
      }
    });
    const c = await connect(opts(b.port, { maxInflight: 50 }));
    const first = c.publish('t', 'first', { qos: 1 });
    // Enough messages for the ids to wrap past 65,535 back to 1 while the first one is held.
    const rest = Array.from({ length: 49 * 1340 }, () => c.publish('t', 'x', { qos: 1 }));
    await Promise.all(rest);
    const firstId = ids[0]!;
    expect(Math.max(...ids)).toBe(65535);
    expect(ids.slice(1)).not.toContain(firstId);
    expect(new Set(ids.slice(0, 50)).size).toBe(50);
    b.sessions[0]!.send({ type: 'PUBACK', packetId: firstId });
    await expect(first).resolves.toMatchObject({ packetId: firstId, reasonCode: 0 });
  });
});

describe('QoS flows', () => {
  test('a v5 PUBACK reason >= 0x80 rejects with PublishRefusedError naming it', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH') s.send({ type: 'PUBACK', packetId: p.packetId ?? 0, reasonCode: 0x87 });
    });
    const c = await connect(opts(b.port));
    const err = (await c.publish('secret', 'x', { qos: 1 }).catch((e: unknown) => e)) as PublishRefusedError;
    expect(err).toBeInstanceOf(PublishRefusedError);
    expect(err.reasonCode).toBe(0x87);
    expect(err.message).toMatch(/0x87 Not authorized/);
  });

  test('a PUBREC >= 0x80 ends the QoS 2 flow without PUBREL', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH') s.send({ type: 'PUBREC', packetId: p.packetId ?? 0, reasonCode: 0x97 });
    });
    const c = await connect(opts(b.port));
    await expect(c.publish('t', 'x', { qos: 2 })).rejects.toThrow(/0x97 Quota exceeded/);
    await c.end();
    expect(b.sessions[0]!.received.map((p) => p.type)).toEqual(['CONNECT', 'PUBLISH', 'DISCONNECT']);
  });

  test('outgoing QoS 2 cut after PUBREC: PUBREL resent on reconnect, resolved once', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'PUBLISH') {
          s.send({ type: 'PUBREC', packetId: p.packetId ?? 0 });
          // The PUBREL that follows never arrives: cut now.
          setImmediate(() => s.close());
        }
        if (p.type === 'PUBREL' && s.index > 0) s.send({ type: 'PUBCOMP', packetId: p.packetId });
      },
      { connack: sessionPresentAfterFirst },
    );
    const c = await connect(persistent(b.port));
    const result = await c.publish('q2', 'once', { qos: 2 });
    expect(result.reasonCode).toBe(0);
    const second = b.sessions[1]!.received.map((p) => p.type);
    expect(second).toEqual(['CONNECT', 'PUBREL']);
    expect(b.sessions.flatMap((s) => s.received).filter((p) => p.type === 'PUBLISH')).toHaveLength(1);
  });

  test('outgoing QoS 1 cut before PUBACK: resent with DUP=1 and the same packet id', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'PUBLISH') {
          if (s.index === 0) s.close();
          else s.send({ type: 'PUBACK', packetId: p.packetId ?? 0 });
        }
      },
      { connack: sessionPresentAfterFirst },
    );
    const c = await connect(persistent(b.port));
    await c.publish('q1', 'again', { qos: 1 });
    const pubs = b.sessions
      .flatMap((s) => s.received)
      .filter((p): p is PublishPacket => p.type === 'PUBLISH');
    expect(pubs.map((p) => p.dup)).toEqual([false, true]);
    expect(pubs[1]!.packetId).toBe(pubs[0]!.packetId);
  });

  test('incoming QoS 2 resent after a cut (DUP, same id, session present): delivered exactly once', async () => {
    const msg: PublishPacket = {
      type: 'PUBLISH',
      dup: false,
      qos: 2,
      retain: false,
      topic: 'in/q2',
      packetId: 7,
      payload: Buffer.from('exactly once'),
    };
    const b = await fake(
      (p, s) => {
        if (p.type === 'CONNECT' && s.index === 1) s.send({ ...msg, dup: true });
        if (p.type === 'PUBREC') {
          if (s.index === 0) s.close();
          else s.send({ type: 'PUBREL', packetId: 7 });
        }
      },
      { connack: sessionPresentAfterFirst },
    );
    const c = await connect(persistent(b.port));
    const got: string[] = [];
    c.on('message', (p) => got.push(p.payload.toString()));
    b.sessions[0]!.send(msg);
    const { packet } = await b.waitFor('PUBCOMP');
    expect(packet).toMatchObject({ packetId: 7 });
    expect(got).toEqual(['exactly once']);
    expect(b.sessions).toHaveLength(2);
  });
});

/**
 * Keepalive on a fake clock (Date and setInterval; sockets and every other timer stay real): time
 * moves only when a test says, so each test runs in milliseconds and knows exactly when a PINGREQ
 * is due. The real-time test of the same timer is in client-aedes.test.ts (a path that swallows
 * PINGRESP).
 */
describe('keepalive', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A trace that emits every packet the client receives, by type. */
  function received() {
    const events = new EventEmitter();
    const trace: ClientOptions['trace'] = (direction, packet) => {
      if (direction === 'in') events.emit(packet.type, packet);
    };
    return { events, trace };
  }

  test('PINGREQ is sent when the connection is idle', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PINGREQ') s.send({ type: 'PINGRESP' });
    });
    const { events, trace } = received();
    const c = await connect(opts(b.port, { keepalive: 1, trace }));
    // Keepalive 1 s: checked every 250 ms, a PINGREQ one check early (750 ms after the last packet).
    for (let i = 0; i < 2; i++) {
      const pingresp = once(events, 'PINGRESP');
      vi.advanceTimersByTime(750);
      await b.waitFor('PINGREQ');
      await pingresp;
    }
    expect(b.sessions[0]!.received.filter((p) => p.type === 'PINGREQ')).toHaveLength(2);
    expect(c.connected).toBe(true);
  });

  test('no PINGRESP: the connection is declared lost within 1.5 x keepalive', async () => {
    const b = await fake(); // swallows PINGREQ
    const c = await connect(opts(b.port, { keepalive: 1 }));
    let lostAt: number | undefined;
    const offline = once<[Error]>(c, 'offline');
    c.on('offline', () => {
      lostAt ??= Date.now();
    });
    const start = Date.now();
    vi.advanceTimersByTime(1250);
    await b.waitFor('PINGREQ');
    expect(c.connected).toBe(true);
    vi.advanceTimersByTime(250);
    const [err] = await offline;
    expect(lostAt! - start).toBe(1500);
    expect(err).toBeInstanceOf(DisconnectError);
    expect(err.message).toMatch(/no answer from 127\.0\.0\.1:\d+ for 1\.5 s \(keepalive 1 s\)/);
  });

  test("the broker's Server Keep Alive overrides the client's", async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'PINGREQ') s.send({ type: 'PINGRESP' });
      },
      { connack: { properties: { serverKeepAlive: 1 } } },
    );
    await connect(opts(b.port, { keepalive: 600 }));
    vi.advanceTimersByTime(750);
    await b.waitFor('PINGREQ');
  });
});

describe('reconnect', () => {
  test('backoff doubles from min to max, with jitter in the upper half', async () => {
    // A server that accepts and hangs up at once: every attempt fails.
    let accepted = 0;
    const srv = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const b = await fake();
    const c = await connect(opts(b.port, { reconnect: { minMs: 20, maxMs: 80 } }));
    // Point the client at the hang-up server by redirecting it there.
    const delays: number[] = [];
    c.on('reconnect', (attempt: number, delay: number) => {
      delays.push(delay);
      if (attempt === 5) c.destroy();
    });
    const closed = once(c, 'close', 5000);
    b.sessions[0]!.send({
      type: 'DISCONNECT',
      reasonCode: 0x9d,
      properties: { serverReference: `127.0.0.1:${(srv.address() as net.AddressInfo).port}` },
    });
    await closed;
    expect(delays).toHaveLength(5);
    const caps = [20, 40, 80, 80, 80];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(caps[i]! / 2);
      expect(d).toBeLessThanOrEqual(caps[i]!);
    });
    expect(accepted).toBeGreaterThanOrEqual(4);
  });

  test('a refusal no retry can fix (0x87 Not authorized) ends the reconnect loop', async () => {
    let connects = 0;
    const b = await fake(
      (p) => {
        if (p.type === 'CONNECT') connects++;
      },
      { connack: (n) => ({ reasonCode: n === 1 ? 0 : 0x87 }) },
    );
    const c = await connect(opts(b.port, { reconnect: { minMs: 10, maxMs: 20 } }));
    const closed = once<[Error | undefined]>(c, 'close');
    b.sessions[0]!.close();
    const [err] = await closed;
    expect(err?.message).toMatch(/connection refused by .*: 0x87 Not authorized/);
    expect(connects).toBe(2);
  });

  test('messages published while offline wait and go out after the reconnect', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH' && p.qos === 1) s.send({ type: 'PUBACK', packetId: p.packetId ?? 0 });
    });
    const c = await connect(opts(b.port, { reconnect: { minMs: 10, maxMs: 20 } }));
    const offline = once(c, 'offline');
    b.sessions[0]!.close();
    await offline;
    const results = await Promise.all([c.publish('later', '1', { qos: 1 }), c.publish('later', '2')]);
    expect(results.map((r) => r.reasonCode)).toEqual([0, 0]);
    const pubs = b.sessions[1]!.received.filter((p): p is PublishPacket => p.type === 'PUBLISH');
    expect(pubs.map((p) => p.payload.toString())).toEqual(['1', '2']);
  });

  test('session taken over (0x8E): no reconnect fight, the client closes and says why', async () => {
    const b = await fake();
    const c = await connect(opts(b.port, { reconnect: { minMs: 10, maxMs: 20 } }));
    let reconnects = 0;
    c.on('reconnect', () => reconnects++);
    const closed = once<[Error | undefined]>(c, 'close');
    b.sessions[0]!.send({ type: 'DISCONNECT', reasonCode: 0x8e });
    const [err] = await closed;
    expect(err?.message).toMatch(
      /0x8e Session taken over: another client connected with the same client id \(-i\)/,
    );
    expect(reconnects).toBe(0);
  });

  test('without reconnect a lost connection fails pending publishes and closes the client', async () => {
    const b = await fake();
    const c = await connect(opts(b.port));
    const pending = c.publish('t', 'x', { qos: 1 });
    await b.waitFor('PUBLISH');
    const closed = once<[Error | undefined]>(c, 'close');
    b.sessions[0]!.send({ type: 'DISCONNECT', reasonCode: 0x8b, properties: { reasonString: 'bye' } });
    const err = (await pending.catch((e: unknown) => e)) as DisconnectError;
    expect(err).toBeInstanceOf(DisconnectError);
    expect(err.reasonCode).toBe(0x8b);
    expect(err.message).toMatch(/disconnected: 0x8b Server shutting down \(bye\)/);
    const [closeErr] = await closed;
    expect(closeErr).toBe(err);
  });
});

describe('publish checks and delivery', () => {
  test('a message that arrives together with the CONNACK reaches a listener attached after connect()', async () => {
    const b = await fake(
      (p, s) => {
        if (p.type === 'CONNECT') {
          s.send({
            type: 'PUBLISH',
            dup: false,
            qos: 0,
            retain: false,
            topic: 'early',
            payload: Buffer.from('bird'),
          });
        }
      },
      { connack: { sessionPresent: true } },
    );
    const c = await connect(opts(b.port));
    const [msg] = await once<[PublishPacket]>(c, 'message');
    expect(msg.topic).toBe('early');
    expect(msg.payload.toString()).toBe('bird');
  });

  test('invalid topics and oversize messages are refused before sending, in plain words', async () => {
    const b = await fake(undefined, { connack: { properties: { maximumPacketSize: 100 } } });
    const c = await connect(opts(b.port));
    await expect(c.publish('a/#', 'x')).rejects.toThrow(
      /cannot publish: topic name 'a\/#' contains the wildcard '#'/,
    );
    await expect(c.publish('', 'x')).rejects.toThrow(/topic name is empty/);
    const err = (await c.publish('big', Buffer.alloc(200)).catch((e: unknown) => e)) as PublishRefusedError;
    expect(err).toBeInstanceOf(PublishRefusedError);
    expect(err.reasonCode).toBe(0x95);
    expect(err.message).toMatch(/exceeds the broker's Maximum Packet Size of 100 bytes/);
    await c.publish('ok', 'small');
    await b.waitFor('PUBLISH');
  });

  test('a message the codec cannot encode fails alone; the next one goes through', async () => {
    const b = await fake((p, s) => {
      if (p.type === 'PUBLISH' && p.qos === 1) s.send({ type: 'PUBACK', packetId: p.packetId ?? 0 });
    });
    const c = await connect(opts(b.port));
    const bad = c.publish('t', 'x', { qos: 1, properties: { contentType: 'x'.repeat(70_000) } });
    const good = c.publish('t', 'y', { qos: 1 });
    await expect(bad).rejects.toThrow();
    await expect(good).resolves.toMatchObject({ reasonCode: 0 });
    expect(c.inflight).toBe(0);
  });

  test('end(0x04) sends DISCONNECT with "with will" and resolves once the socket is closed', async () => {
    const b = await fake();
    const c = await MqttClient.connect(opts(b.port));
    const closed = once<[Error | undefined]>(c, 'close');
    await c.end(0x04);
    const [err] = await closed;
    expect(err).toBeUndefined();
    const { packet } = await b.waitFor('DISCONNECT');
    expect(packet).toMatchObject({ reasonCode: 0x04 });
    await expect(c.publish('t', 'x')).rejects.toThrow(/closed/);
  });
});
