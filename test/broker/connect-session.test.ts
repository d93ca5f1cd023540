/** CONNECT, client ids, takeover, keepalive, session expiry and persistent sessions. */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, sharedBroker, client, subscribe, pub } = brokerHarness();
const b = sharedBroker({ connectTimeoutMs: 400 });
/** Polls `check` every 20 ms until it is true; fails after timeoutMs. */
async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('CONNECT', () => {
  test.each([3, 4, 5] as const)('accepts protocol level %i', async (version) => {
    const c = await client(b.port, { version, clientId: `level-${version}` });
    expect(c.connack?.reasonCode).toBe(0);
    c.send({ type: 'PINGREQ' });
    await c.nextPacket('PINGRESP');
  });

  test('unsupported protocol level gets return code 1 and the connection closes [MQTT-3.1.2-2]', async () => {
    const c = await client(b.port, { connect: false });
    // CONNECT, protocol name MQTT, level 9, clean, keepalive 60, client id "x"
    c.sendRaw('10 0d 0004 4d515454 09 02 003c 0001 78');
    const ack = await c.nextPacket('CONNACK');
    expect(ack.reasonCode).toBe(1);
    await c.closed();
  });

  test('a malformed v5 CONNECT gets a CONNACK with the reason code, then the close', async () => {
    const c = await client(b.port, { connect: false, version: 5 });
    // CONNECT v5 with a Topic Alias property (not allowed in CONNECT), client id "x"
    c.sendRaw('10 11 0004 4d515454 05 02 003c 03 230001 0001 78');
    const ack = await c.nextPacket('CONNACK');
    expect(ack.reasonCode).toBeGreaterThanOrEqual(0x80);
    await c.closed();
    await b.waitForLog(/malformed packet: CONNECT/);
  });

  test('the first packet must be CONNECT [MQTT-3.1.0-1]', async () => {
    const c = await client(b.port, { connect: false });
    c.send({ type: 'PINGREQ' });
    await c.closed();
    expect(c.received).toEqual([]);
  });

  test('a second CONNECT is a protocol error (v5 DISCONNECT 0x82) [MQTT-3.1.0-2]', async () => {
    const c = await client(b.port, { version: 5 });
    c.send({ type: 'CONNECT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'again' });
    const d = await c.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x82);
    await c.closed();
  });

  test('a connection that sends no CONNECT is closed (--connect timeout)', async () => {
    const c = await client(b.port, { connect: false });
    await c.closed(3000);
    await b.waitForLog(/no CONNECT within/);
  });

  test('v5 CONNACK advertises the Topic Alias Maximum', async () => {
    const c = await client(b.port, { version: 5 });
    expect(c.connack?.properties?.topicAliasMaximum).toBe(10);
  });
});

describe('client identifiers', () => {
  test('3.1.1 empty id with clean session gets an id assigned', async () => {
    const c = await client(b.port, { version: 4, clientId: '', clean: true });
    expect(c.connack?.reasonCode).toBe(0);
  });

  test('3.1.1 empty id without clean session is refused with return code 2 [MQTT-3.1.3-8]', async () => {
    const c = await client(b.port, { version: 4, clientId: '', clean: false, expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(2);
    await c.closed();
  });

  test('3.1 empty id is refused with return code 2', async () => {
    const c = await client(b.port, { version: 3, clientId: '', expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(2);
  });

  test('v5 empty id gets an Assigned Client Identifier', async () => {
    const c = await client(b.port, { version: 5, clientId: '' });
    const assigned = c.connack?.properties?.assignedClientIdentifier;
    expect(assigned).toMatch(/^mq-[0-9a-f]{16}$/);
    expect(brokerCore(b.broker).sessions.has(assigned!)).toBe(true);
  });
});

describe('session takeover', () => {
  test('v5: the old connection gets DISCONNECT 0x8E and is closed [MQTT-3.1.4-3]', async () => {
    const old = await client(b.port, { version: 5, clientId: 'take-5' });
    const fresh = await client(b.port, { version: 5, clientId: 'take-5' });
    const d = await old.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x8e);
    await old.closed();
    fresh.send({ type: 'PINGREQ' });
    await fresh.nextPacket('PINGRESP');
  });

  test('3.1.1: the old connection is closed, the new one keeps the session', async () => {
    const old = await client(b.port, { version: 4, clientId: 'take-4', clean: false });
    await subscribe(old, 'take/4', 1);
    const fresh = await client(b.port, { version: 4, clientId: 'take-4', clean: false });
    expect(fresh.connack?.sessionPresent).toBe(true);
    await old.closed();
    const publisher = await client(b.port, { version: 4 });
    publisher.send(pub('take/4', 'x'));
    const m = await fresh.nextPacket('PUBLISH');
    expect(m.topic).toBe('take/4');
  });
});

describe('keepalive', () => {
  test('a silent client is disconnected after 1.5 x keepalive (v5 0x8D) [MQTT-3.1.2-22]', async () => {
    const start = Date.now();
    const c = await client(b.port, { version: 5, keepalive: 1 });
    const d = await c.nextPacket('DISCONNECT', 5000);
    expect(d.reasonCode).toBe(0x8d);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(4500);
  });

  test('PINGREQ keeps the connection alive', async () => {
    // The broker's clock moves 500 ms a round (3 s in all, twice 1.5 x keepalive); a PINGREQ in
    // each round is all the client sends. The sweep runs after each PINGRESP.
    const own = await broker();
    const core = brokerCore(own.broker);
    let offset = 0;
    core.clock = () => Date.now() + offset;
    const c = await client(own.port, { version: 4, keepalive: 1 });
    for (let i = 0; i < 6; i++) {
      offset += 500;
      c.send({ type: 'PINGREQ' });
      await c.nextPacket('PINGRESP');
      core.sweep();
    }
    expect(c.closedNow).toBe(false);
  });
});

describe('--max-keepalive', () => {
  const mb = sharedBroker({ maxKeepalive: 30 });

  test('v5 keepalive 0 or above the maximum gets Server Keep Alive', async () => {
    for (const keepalive of [0, 100]) {
      const c = await client(mb.port, { version: 5, keepalive });
      expect(c.connack?.properties?.serverKeepAlive).toBe(30);
    }
    const ok = await client(mb.port, { version: 5, keepalive: 10 });
    expect(ok.connack?.properties?.serverKeepAlive).toBeUndefined();
  });

  test('3.1.1 keepalive above the maximum is refused (like Mosquitto)', async () => {
    const c = await client(mb.port, { version: 4, keepalive: 100, expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(2);
  });
});

describe('sessions', () => {
  test('v5 Session Expiry: the session survives a disconnect for its interval, then ends', async () => {
    const props = { sessionExpiryInterval: 1 };
    const c = await client(b.port, { version: 5, clientId: 'exp-1', clean: true, properties: props });
    await subscribe(c, 'exp/1', 1);
    await c.disconnect();
    const back = await client(b.port, { version: 5, clientId: 'exp-1', clean: false, properties: props });
    expect(back.connack?.sessionPresent).toBe(true);
    await back.disconnect();
    await until(() => !brokerCore(b.broker).sessions.has('exp-1'), 3000, 'the session to expire');
    const later = await client(b.port, { version: 5, clientId: 'exp-1', clean: false, properties: props });
    expect(later.connack?.sessionPresent).toBe(false);
  });

  test('v5 Session Expiry 0 (default): the session ends with the connection', async () => {
    const c = await client(b.port, { version: 5, clientId: 'exp-0' });
    await c.disconnect();
    const back = await client(b.port, { version: 5, clientId: 'exp-0', clean: false });
    expect(back.connack?.sessionPresent).toBe(false);
  });

  test('DISCONNECT may change the Session Expiry Interval; 0 -> non-zero is a protocol error [MQTT-3.14.2-2]', async () => {
    const c = await client(b.port, { version: 5, clientId: 'exp-bad' });
    c.send({ type: 'DISCONNECT', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    const d = await c.nextPacket('DISCONNECT');
    expect(d.reasonCode).toBe(0x82);
  });

  test('3.1.1 clean session 0: subscriptions and QoS 1 messages survive while offline', async () => {
    const c = await client(b.port, { version: 4, clientId: 'p311', clean: false });
    await subscribe(c, 'p311/#', 1);
    await c.disconnect();
    const publisher = await client(b.port, { version: 4 });
    for (let i = 0; i < 3; i++) {
      publisher.send(pub('p311/x', `m${i}`, 1, { packetId: i + 1 }));
      await publisher.nextPacket('PUBACK');
    }
    publisher.send(pub('p311/x', 'q0'));
    const back = await client(b.port, { version: 4, clientId: 'p311', clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await back.nextPacket('PUBLISH');
      got.push(m.payload.toString());
      back.send({ type: 'PUBACK', packetId: m.packetId! });
    }
    expect(got).toEqual(['m0', 'm1', 'm2']);
    // QoS 0 is not queued for offline clients.
    expect(await back.nothing('PUBLISH', 200)).toBe(true);
  });

  test('clean session discards the stored session', async () => {
    const c = await client(b.port, { version: 4, clientId: 'p311-clean', clean: false });
    await c.disconnect();
    const back = await client(b.port, { version: 4, clientId: 'p311-clean', clean: true });
    expect(back.connack?.sessionPresent).toBe(false);
  });
});
