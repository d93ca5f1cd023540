/**
 * A Mosquitto bridge connecting to mq broker: MQTT 3.1.1 with the bridge flag (protocol level
 * 0x84, try_private) gets what Mosquitto gives bridges: No Local and Retain As Published on every
 * subscription, so a bridge with `topic # both` sees neither its own messages come back nor live
 * retained flags cleared.
 */
import { describe, expect, test } from 'vitest';
import { MqttClient } from '../../src/client/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { client, subscribe, pub, sharedBroker } = brokerHarness();
const b = sharedBroker();

describe('3.1.1 bridges (CONNECT level 0x84)', () => {
  test('no copy of its own messages; retain flag as published; an ordinary 3.1.1 client differs', async () => {
    const bridge = await client(b.port, { connect: false, version: 4 });
    bridge.send({
      type: 'CONNECT',
      protocolVersion: 4,
      bridge: true,
      clean: true,
      keepalive: 60,
      clientId: 'br',
    });
    expect((await bridge.nextPacket('CONNACK')).reasonCode).toBe(0);
    const plain = await client(b.port, { version: 4 });
    await subscribe(bridge, 'br/#', 1);
    await subscribe(plain, 'br/#', 1);

    bridge.send(pub('br/own', 'mine', 1));
    await bridge.nextPacket('PUBACK');
    const other = await client(b.port, { version: 4 });
    other.send(pub('br/kept', 'state', 1, true));
    await other.nextPacket('PUBACK');

    const toBridge = await bridge.nextPacket('PUBLISH');
    expect([toBridge.topic, toBridge.retain]).toEqual(['br/kept', true]);
    const toPlain = [await plain.nextPacket('PUBLISH'), await plain.nextPacket('PUBLISH')];
    expect(toPlain.map((p) => [p.topic, p.retain])).toEqual([
      ['br/own', false],
      ['br/kept', false],
    ]);
    // The bridge's own message would have come before br/kept.
    expect(
      bridge.received.filter((p) => p.type === 'PUBLISH').map((p) => p.type === 'PUBLISH' && p.topic),
    ).toEqual(['br/kept']);
  });

  test('MqttClient with bridge: true sends level 0x84 (3.1.1) and is treated as a bridge', async () => {
    const c = await MqttClient.connect({
      transport: 'mqtt',
      host: '127.0.0.1',
      port: b.port,
      version: 4,
      clientId: 'br-client',
      keepalive: 60,
      clean: true,
      bridge: true,
    });
    try {
      await c.subscribe([{ topicFilter: 'brc/#', qos: 1 }]);
      const got: string[] = [];
      c.on('message', (p) => got.push(p.payload.toString()));
      await c.publish('brc/a', 'own', { qos: 1 });
      const other = await client(b.port, { version: 4 });
      other.send(pub('brc/b', 'other', 1));
      await other.nextPacket('PUBACK');
      await expect.poll(() => got, { timeout: 3000 }).toEqual(['other']);
    } finally {
      await c.end();
    }
  });
});
