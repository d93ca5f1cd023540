/** MQTT 5 features: properties forwarded, Message Expiry, topic aliases, Maximum Packet Size. */
import mqtt from 'mqtt';
import { describe, expect, test } from 'vitest';
import type { Properties, PublishPacket } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, sharedBroker, client, subscribe, pub } = brokerHarness();
const b = sharedBroker();

describe('properties', () => {
  const props: Properties = {
    payloadFormatIndicator: 1,
    contentType: 'application/json',
    responseTopic: 'reply/here',
    correlationData: Buffer.from([1, 2, 3, 250]),
    userProperties: [
      ['a', '1'],
      ['a', '2'],
      ['b', 'x'],
    ],
  };

  test.each([0, 1, 2] as const)('QoS %i: forwarded unchanged, in order', async (qos) => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, `props/${qos}`, qos);
    const p = await client(b.port, { version: 5 });
    p.send(pub(`props/${qos}`, '{"x":1}', qos, { properties: props }));
    const m = await s.nextPacket('PUBLISH');
    expect(m.properties).toEqual(props);
    expect(m.payload.toString()).toBe('{"x":1}');
  });

  test('v5 publisher to 3.1.1 subscriber and back: payload and topic intact', async () => {
    const s4 = await client(b.port, { version: 4 });
    const s5 = await client(b.port, { version: 5 });
    await subscribe(s4, 'mix/#', 1);
    await subscribe(s5, 'mix/#', 1);
    const p5 = await client(b.port, { version: 5 });
    const p4 = await client(b.port, { version: 4 });
    p5.send(pub('mix/from5', 'five', 2, { properties: { contentType: 'x' } }));
    p4.send(pub('mix/from4', 'four', 0));
    const a = [await s4.nextPacket('PUBLISH'), await s4.nextPacket('PUBLISH')];
    const c = [await s5.nextPacket('PUBLISH'), await s5.nextPacket('PUBLISH')];
    const view = (m: PublishPacket) => [m.topic, m.payload.toString(), m.qos];
    expect(a.map(view).sort()).toEqual([
      ['mix/from4', 'four', 0],
      ['mix/from5', 'five', 1],
    ]);
    expect(c.map(view).sort()).toEqual([
      ['mix/from4', 'four', 0],
      ['mix/from5', 'five', 1],
    ]);
    expect(c.find((m) => m.topic === 'mix/from5')?.properties?.contentType).toBe('x');
    expect(a.find((m) => m.topic === 'mix/from5')?.properties).toBeUndefined();
  });

  test('mqtt.js request/response: response topic and correlation data round-trip', async () => {
    const url = `mqtt://127.0.0.1:${b.port}`;
    const responder = await mqtt.connectAsync(url, { protocolVersion: 5 });
    const requester = await mqtt.connectAsync(url, { protocolVersion: 5 });
    try {
      await responder.subscribeAsync('svc/req', { qos: 1 });
      responder.on('message', (_t, payload, packet) => {
        const rt = packet.properties?.responseTopic;
        if (rt === undefined) return;
        void responder.publishAsync(rt, `re:${payload}`, {
          qos: 1,
          properties: { correlationData: packet.properties?.correlationData },
        });
      });
      await requester.subscribeAsync('svc/res', { qos: 1 });
      const reply = new Promise<[string, string]>((resolve) =>
        requester.on('message', (_t, payload, packet) =>
          resolve([payload.toString(), String(packet.properties?.correlationData)]),
        ),
      );
      await requester.publishAsync('svc/req', 'ping', {
        qos: 1,
        properties: { responseTopic: 'svc/res', correlationData: Buffer.from('c-42') },
      });
      expect(await reply).toEqual(['re:ping', 'c-42']);
    } finally {
      await responder.endAsync();
      await requester.endAsync();
    }
  });
});

describe('Payload Format Indicator [MQTT-3.3.2.3.2]', () => {
  test('PFI 1 with a payload that is not UTF-8: PUBACK/PUBREC 0x99, QoS 0 DISCONNECT 0x99, not delivered', async () => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'pfi/#', 2);
    const p = await client(b.port, { version: 5, clientId: 'pfi-pub' });
    const bad = Buffer.from([0x61, 0xff, 0xfe]);
    p.send(pub('pfi/1', bad, 1, { properties: { payloadFormatIndicator: 1 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode).toBe(0x99);
    p.send(pub('pfi/2', bad, 2, { properties: { payloadFormatIndicator: 1 } }));
    expect((await p.nextPacket('PUBREC')).reasonCode).toBe(0x99);
    // Valid UTF-8 with PFI 1, and any bytes with PFI 0, go through.
    p.send(pub('pfi/ok', 'héllo', 1, { properties: { payloadFormatIndicator: 1 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    p.send(pub('pfi/bin', bad, 1, { properties: { payloadFormatIndicator: 0 } }));
    expect((await p.nextPacket('PUBACK')).reasonCode ?? 0).toBe(0);
    const first = await s.nextPacket('PUBLISH');
    expect(first.topic).toBe('pfi/ok');
    expect(first.properties?.payloadFormatIndicator).toBe(1);
    expect((await s.nextPacket('PUBLISH')).topic).toBe('pfi/bin');
    p.send(pub('pfi/0', bad, 0, { properties: { payloadFormatIndicator: 1 } }));
    expect((await p.nextPacket('DISCONNECT')).reasonCode).toBe(0x99);
    await b.waitForLog(
      /\[pfi-pub\] PUBLISH to 'pfi\/1' has Payload Format Indicator 1 but its payload is not UTF-8/,
    );
    expect(await s.nothing('PUBLISH', 100)).toBe(true);
  });

  test('a will with PFI 1 and a payload that is not UTF-8: CONNACK 0x99', async () => {
    const c = await client(b.port, {
      version: 5,
      will: {
        topic: 'w',
        payload: Buffer.from([0xc3]),
        qos: 0,
        retain: false,
        properties: { payloadFormatIndicator: 1 },
      },
      expectSuccess: false,
    });
    expect(c.connack?.reasonCode).toBe(0x99);
  });
});

describe('Message Expiry Interval', () => {
  test('a queued message expires; a live one is forwarded with the time left', async () => {
    const sessionProps = { sessionExpiryInterval: 60 };
    const s = await client(b.port, { version: 5, clientId: 'exp-sub', properties: sessionProps });
    await subscribe(s, 'mexp/#', 1);
    const p = await client(b.port, { version: 5 });
    p.send(pub('mexp/live', 'x', 1, { properties: { messageExpiryInterval: 100 } }));
    const live = await s.nextPacket('PUBLISH');
    expect(live.properties?.messageExpiryInterval).toBe(100);
    s.send({ type: 'PUBACK', packetId: live.packetId! });
    await s.disconnect();
    p.send(pub('mexp/short', 'short', 1, { properties: { messageExpiryInterval: 1 } }));
    p.send(pub('mexp/long', 'long', 1, { properties: { messageExpiryInterval: 100 } }));
    await p.nextPacket('PUBACK');
    await p.nextPacket('PUBACK');
    // The behaviour under test is the passing of time, in real time (the one Message Expiry test):
    // the broker took both in before their PUBACKs, so 1 s from here 'short' has expired.
    await new Promise((r) => setTimeout(r, 1050));
    const back = await client(b.port, {
      version: 5,
      clientId: 'exp-sub',
      clean: false,
      properties: sessionProps,
    });
    const m = await back.nextPacket('PUBLISH');
    expect(m.payload.toString()).toBe('long');
    const left = m.properties?.messageExpiryInterval ?? 0;
    expect(left).toBeGreaterThanOrEqual(90);
    expect(left).toBeLessThanOrEqual(99);
    expect(await back.nothing('PUBLISH', 150)).toBe(true);
    await back.disconnect();
  });
});

describe('topic aliases', () => {
  test('incoming: an alias set with a topic is used by later PUBLISHes with an empty topic', async () => {
    const s = await client(b.port, { version: 4 });
    await subscribe(s, 'alias/t');
    const p = await client(b.port, { version: 5 });
    p.send(pub('alias/t', 'one', 0, { properties: { topicAlias: 3 } }));
    p.send(pub('', 'two', 0, { properties: { topicAlias: 3 } }));
    const got = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')];
    expect(got.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['alias/t', 'one'],
      ['alias/t', 'two'],
    ]);
  });

  test('the alias is not forwarded to v5 subscribers', async () => {
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'alias/f');
    const p = await client(b.port, { version: 5 });
    p.send(pub('alias/f', 'x', 0, { properties: { topicAlias: 1, contentType: 'c' } }));
    const m = await s.nextPacket('PUBLISH');
    expect(m.properties).toEqual({ contentType: 'c' });
  });

  test('an alias above the Topic Alias Maximum: DISCONNECT 0x94', async () => {
    const tb = await broker({ topicAliasMax: 2 });
    const p = await client(tb.port, { version: 5 });
    expect(p.connack?.properties?.topicAliasMaximum).toBe(2);
    p.send(pub('x', 'x', 0, { properties: { topicAlias: 3 } }));
    expect((await p.nextPacket('DISCONNECT')).reasonCode).toBe(0x94);
  });

  test('an unknown alias with an empty topic: protocol error 0x82', async () => {
    const p = await client(b.port, { version: 5 });
    p.send(pub('', 'x', 0, { properties: { topicAlias: 9 } }));
    expect((await p.nextPacket('DISCONNECT')).reasonCode).toBe(0x82);
  });

  test('--topic-alias-out: the broker assigns aliases for clients that accept them', async () => {
    const tb = await broker({ topicAliasOut: true });
    const s = await client(tb.port, { version: 5, properties: { topicAliasMaximum: 1 } });
    await subscribe(s, 'out/+');
    const p = await client(tb.port, { version: 5 });
    p.send(pub('out/a', '1'));
    p.send(pub('out/a', '2'));
    p.send(pub('out/b', '3'));
    const got = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')];
    expect(got.map((m) => [m.topic, m.properties?.topicAlias, m.payload.toString()])).toEqual([
      ['out/a', 1, '1'],
      ['', 1, '2'],
      ['out/b', undefined, '3'],
    ]);
  });
});

describe('Maximum Packet Size', () => {
  test("messages larger than the client's Maximum Packet Size are not sent to it [MQTT-3.1.2-25]", async () => {
    const s = await client(b.port, { version: 5, properties: { maximumPacketSize: 64 } });
    await subscribe(s, 'big/+', 1);
    const p = await client(b.port, { version: 5 });
    p.send(pub('big/1', Buffer.alloc(100, 'x'), 1));
    p.send(pub('big/2', 'small', 1));
    const m = await s.nextPacket('PUBLISH');
    expect(m.topic).toBe('big/2');
    expect(b.broker.stats.messagesDropped).toBeGreaterThanOrEqual(1);
  });

  test('--max-packet-size: advertised; a larger packet gets DISCONNECT 0x95 (v5), a close (3.1.1)', async () => {
    const tb = await broker({ maxPacketSize: 100 });
    const p5 = await client(tb.port, { version: 5 });
    expect(p5.connack?.properties?.maximumPacketSize).toBe(100);
    p5.send(pub('t', Buffer.alloc(200)));
    expect((await p5.nextPacket('DISCONNECT')).reasonCode).toBe(0x95);
    const p4 = await client(tb.port, { version: 4 });
    p4.send(pub('t', Buffer.alloc(200)));
    await p4.closed();
    expect(p4.received.map((x) => x.type)).toEqual(['CONNACK']);
    await tb.waitForLog(/exceeds the maximum packet size 100/);
  });
});

describe('Request Response Information [MQTT-3.1.2-28]', () => {
  const ask = { requestResponseInformation: 1 };

  test('asked for: CONNACK Response Information resp/<client id>/, a prefix a requester can subscribe and be answered on', async () => {
    const requester = await client(b.port, { version: 5, clientId: 'rr-alice', properties: ask });
    const info = requester.connack?.properties?.responseInformation;
    expect(info).toBe('resp/rr-alice/');
    const responseTopic = `${info}job-1`;
    await subscribe(requester, responseTopic, 1);
    const responder = await client(b.port, { version: 5 });
    responder.send(pub(responseTopic, 'done', 1));
    const m = await requester.nextPacket('PUBLISH');
    expect([m.topic, m.payload.toString()]).toEqual(['resp/rr-alice/job-1', 'done']);
  });

  test('not asked for (or 0): no Response Information', async () => {
    for (const properties of [undefined, { requestResponseInformation: 0 }]) {
      const c = await client(b.port, { version: 5, ...(properties ? { properties } : {}) });
      expect(c.connack?.properties?.responseInformation).toBeUndefined();
    }
  });

  test('the client id is escaped: one level, no wildcard, no $ topic, no two clients share a prefix', async () => {
    const cases: [string, string][] = [
      ['a/b', 'resp/a%2Fb/'],
      ['a%2Fb', 'resp/a%252Fb/'],
      ['+', 'resp/%2B/'],
      ['#', 'resp/%23/'],
      ['ünï €', 'resp/ünï €/'],
    ];
    for (const [clientId, expected] of cases) {
      const c = await client(b.port, { version: 5, clientId, properties: ask });
      expect(c.connack?.properties?.responseInformation, clientId).toBe(expected);
    }
    const own = await broker({ responseInformation: '%c/replies' });
    const dollar = await client(own.port, { version: 5, clientId: '$SYS', properties: ask });
    expect(dollar.connack?.properties?.responseInformation).toBe('%24SYS/replies');
  });

  test('an assigned client id gets its own prefix; responseInformation false sends none', async () => {
    const anonymous = await client(b.port, { version: 5, clientId: '', properties: ask });
    const assigned = anonymous.connack?.properties?.assignedClientIdentifier;
    expect(anonymous.connack?.properties?.responseInformation).toBe(`resp/${assigned}/`);
    const off = await broker({ responseInformation: false });
    const c = await client(off.port, { version: 5, properties: ask });
    expect(c.connack?.properties?.responseInformation).toBeUndefined();
  });

  test("dropped rather than exceed the client's Maximum Packet Size [MQTT-3.1.2-24]", async () => {
    const clientId = 'x'.repeat(200);
    const c = await client(b.port, { version: 5, clientId, properties: { ...ask, maximumPacketSize: 100 } });
    expect(c.connack?.reasonCode).toBe(0);
    expect(c.connack?.properties?.responseInformation).toBeUndefined();
  });
});
