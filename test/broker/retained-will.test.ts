/** Retained messages and wills. */
import { describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import type { Packet, QoS, Will } from '../../src/protocol/index.js';
import { brokerHarness, type TestClient } from '../helpers/mqtt-test-client.js';

const { broker, sharedBroker, client, subscribe, pub } = brokerHarness();
const b = sharedBroker();

async function subscriber(topicFilter: string, qos: QoS = 0, version: 4 | 5 = 4): Promise<TestClient> {
  const c = await client(b.port, { version });
  await subscribe(c, topicFilter, qos);
  return c;
}
/** Publishes on a fresh connection and waits until the broker acknowledged (QoS 1). */
async function publishAcked(topic: string, payload: string, retain: boolean): Promise<void> {
  const p = await client(b.port, { version: 4 });
  p.send(pub(topic, payload, 1, retain));
  await p.nextPacket('PUBACK');
}
function will(topic: string, extra: Partial<Will> = {}): Will {
  return { topic, payload: Buffer.from('gone'), qos: 0, retain: false, ...extra };
}

describe('retained messages', () => {
  test('stored, delivered on subscribe with RETAIN set, replaced, deleted by an empty payload', async () => {
    await publishAcked('ret/a', 'first', true);
    await publishAcked('ret/a', 'second', true);
    const s1 = await subscriber('ret/+', 1);
    const m = await s1.nextPacket('PUBLISH');
    expect([m.payload.toString(), m.retain, m.qos]).toEqual(['second', true, 1]);
    expect(await s1.nothing('PUBLISH', 100)).toBe(true);
    await publishAcked('ret/a', '', true);
    const s2 = await subscriber('ret/#');
    expect(await s2.nothing('PUBLISH', 150)).toBe(true);
  });

  test('live delivery of a retained publish to an existing subscription clears RETAIN (3.1.1) [MQTT-3.3.1-9]', async () => {
    const s = await subscriber('ret/live');
    await publishAcked('ret/live', 'x', true);
    const m = await s.nextPacket('PUBLISH');
    expect(m.retain).toBe(false);
    await publishAcked('ret/live', '', true);
  });

  test('retained delivery is downgraded to the subscription QoS', async () => {
    await publishAcked('ret/q', 'x', true);
    const s = await subscriber('ret/q', 0);
    expect((await s.nextPacket('PUBLISH')).qos).toBe(0);
    await publishAcked('ret/q', '', true);
  });
});

describe('wills', () => {
  test('published when the connection drops without DISCONNECT', async () => {
    const s = await subscriber('will/drop');
    const c = await client(b.port, { version: 4, will: will('will/drop') });
    c.destroy();
    const m = await s.nextPacket('PUBLISH');
    expect([m.topic, m.payload.toString()]).toEqual(['will/drop', 'gone']);
  });

  test('not published after DISCONNECT [MQTT-3.14.4-3]', async () => {
    const s = await subscriber('will/clean');
    const c = await client(b.port, { version: 5, will: will('will/clean') });
    await c.disconnect();
    await b.waitForLog(/disconnected/);
    expect(await s.nothing('PUBLISH', 200)).toBe(true);
  });

  test('published on keepalive timeout', async () => {
    const s = await subscriber('will/ka');
    await client(b.port, { version: 4, keepalive: 1, will: will('will/ka') });
    const m = await s.nextPacket('PUBLISH', 4000);
    expect(m.topic).toBe('will/ka');
  });

  test('v5 DISCONNECT 0x04 publishes the will', async () => {
    const s = await subscriber('will/04');
    const c = await client(b.port, { version: 5, will: will('will/04') });
    await c.disconnect(0x04);
    expect((await s.nextPacket('PUBLISH')).topic).toBe('will/04');
  });

  test('a retained will is stored as retained', async () => {
    const c = await client(b.port, { version: 4, will: will('will/ret', { retain: true, qos: 1 }) });
    c.destroy();
    await b.waitForLog(/connection lost/);
    const s = await subscriber('will/ret', 1);
    const m = await s.nextPacket('PUBLISH');
    expect([m.retain, m.qos, m.payload.toString()]).toEqual([true, 1, 'gone']);
    await publishAcked('will/ret', '', true);
  });

  test('v5 will properties are forwarded (Will Delay Interval is not)', async () => {
    const s = await subscriber('will/props', 0, 5);
    const c = await client(b.port, {
      version: 5,
      will: will('will/props', { properties: { contentType: 'text/plain', userProperties: [['k', 'v']] } }),
    });
    c.destroy();
    const m = await s.nextPacket('PUBLISH');
    expect(m.properties?.contentType).toBe('text/plain');
    expect(m.properties?.userProperties).toEqual([['k', 'v']]);
  });

  test('v5 Will Delay Interval: published after the delay', async () => {
    const s = await subscriber('will/delay');
    const c = await client(b.port, {
      version: 5,
      clientId: 'will-delay',
      properties: { sessionExpiryInterval: 30 },
      will: will('will/delay', { properties: { willDelayInterval: 1 } }),
    });
    const start = Date.now();
    c.destroy();
    const m = await s.nextPacket('PUBLISH', 3000);
    expect(m.topic).toBe('will/delay');
    expect(Date.now() - start).toBeGreaterThanOrEqual(900);
  });

  test('v5 Will Delay Interval: reconnecting before the delay cancels the will [MQTT-3.1.3-9]', async () => {
    const s = await subscriber('will/cancel');
    const props = { sessionExpiryInterval: 30 };
    const c = await client(b.port, {
      version: 5,
      clientId: 'will-cancel',
      properties: props,
      will: will('will/cancel', { properties: { willDelayInterval: 1 } }),
    });
    c.destroy();
    await b.waitForLog(/\[will-cancel\] connection lost/);
    await client(b.port, { version: 5, clientId: 'will-cancel', clean: false, properties: props });
    expect(await s.nothing('PUBLISH', 1500)).toBe(true);
  });

  test('a session takeover publishes the old connection’s will [MQTT-3.1.4-3]', async () => {
    const s = await subscriber('will/takeover');
    await client(b.port, { version: 5, clientId: 'will-taken', will: will('will/takeover') });
    await client(b.port, { version: 5, clientId: 'will-taken' });
    expect((await s.nextPacket('PUBLISH')).topic).toBe('will/takeover');
  });

  test('v5 will delay longer than the session: published when the session ends', async () => {
    const s = await subscriber('will/session');
    const c = await client(b.port, {
      version: 5,
      properties: { sessionExpiryInterval: 0 },
      will: will('will/session', { properties: { willDelayInterval: 60 } }),
    });
    c.destroy();
    expect((await s.nextPacket('PUBLISH', 1000)).topic).toBe('will/session');
  });
});

describe('wills when the broker stops', () => {
  /** Every packet `c` received until its connection closed, in order. */
  async function untilClosed(c: TestClient): Promise<Packet[]> {
    await c.closed(5000);
    return c.pending();
  }
  const topics = (packets: Packet[]) =>
    packets.flatMap((p) => (p.type === 'PUBLISH' ? [`${p.topic}=${p.payload.toString()}`] : [])).sort();

  test('close() publishes the wills of connected clients and those waiting out a Will Delay, to the clients still connected, ahead of DISCONNECT 0x8B', async () => {
    const own = await broker();
    const sub5 = await client(own.port, { version: 5 });
    await subscribe(sub5, 'stop/#');
    const sub4 = await client(own.port, { version: 4 });
    await subscribe(sub4, 'stop/#');
    await client(own.port, { version: 5, will: will('stop/v5') });
    await client(own.port, { version: 4, will: will('stop/v4') });
    // Connected, with a Will Delay Interval: the session does not outlive the broker (no --persist).
    await client(own.port, {
      version: 5,
      properties: { sessionExpiryInterval: 60 },
      will: will('stop/delayed', { properties: { willDelayInterval: 30 } }),
    });
    // Gone, its will waiting out a Will Delay Interval.
    const waiting = await client(own.port, {
      version: 5,
      clientId: 'waiting-will',
      properties: { sessionExpiryInterval: 60 },
      will: will('stop/waiting', { properties: { willDelayInterval: 30 } }),
    });
    waiting.destroy();
    await own.waitForLog(/\[waiting-will\] connection lost/);
    const retainedWill = await client(own.port, {
      version: 4,
      will: will('stop/retained', { retain: true }),
    });

    await own.broker.close();
    const expected = [
      'stop/delayed=gone',
      'stop/retained=gone',
      'stop/v4=gone',
      'stop/v5=gone',
      'stop/waiting=gone',
    ];
    const got5 = await untilClosed(sub5);
    expect(topics(got5)).toEqual(expected);
    // [MQTT-3.14.4-1] nothing after the DISCONNECT: the wills came first.
    expect(got5.at(-1)).toMatchObject({ type: 'DISCONNECT', reasonCode: 0x8b });
    expect(topics(await untilClosed(sub4))).toEqual(expected);
    await retainedWill.closed();
    expect(brokerCore(own.broker).retained.get('stop/retained')?.payload.toString()).toBe('gone');
    expect(own.logs).toContain('stopping: 5 will(s) published');
  });

  test('close({ publishWills: false }) publishes none', async () => {
    const own = await broker();
    const sub = await client(own.port, { version: 5 });
    await subscribe(sub, 'quiet/#');
    await client(own.port, { version: 5, will: will('quiet/now', { retain: true }) });
    await own.broker.close({ publishWills: false });
    const got = await untilClosed(sub);
    expect(got.map((p) => p.type)).toEqual(['DISCONNECT']);
    expect(brokerCore(own.broker).retained.has('quiet/now')).toBe(false);
  });
});
