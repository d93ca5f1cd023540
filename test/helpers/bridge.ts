/**
 * Bridges in tests: BridgeOptions for a remote broker on 127.0.0.1, a local mq broker (in-process)
 * bridged to it, and a link that can be taken down and brought back (a TCP proxy that cuts every
 * connection while it is "down").
 *
 *   const remote = await startBroker();
 *   const local = await startBridged(bridgeTo(remote.port, ['a/# both 1']));
 *   await local.waitForLog(/connected to/);
 *   ...
 *   const link = await startLink(remote.port);              // bridgeTo(link.port, ...) instead
 *   link.down(); ... link.up();
 *
 * bridgedWith(cleanups) is startBridged with the broker closed after the test; range() and
 * publishAll() make and send numbered messages.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { BridgeOptions, BrokerOptions } from '../../src/broker/index.js';
import type { ClientOptions, MqttClient } from '../../src/client/index.js';
import type { Packet, ProtocolVersion, PublishPacket, QoS } from '../../src/protocol/index.js';
import { startProxy } from './fake-broker.js';
import { type StartedBroker, startBroker } from './mqtt-test-client.js';

let n = 0;

/** A bridge to 127.0.0.1:`port` with `topics` (MQTT 5, persistent session, fast reconnects). */
export function bridgeTo(
  port: number,
  topics: string[],
  remote: Partial<ClientOptions> = {},
  extra: Partial<BridgeOptions> = {},
): BridgeOptions {
  const version = remote.version ?? 5;
  return {
    remote: {
      transport: 'mqtt',
      host: '127.0.0.1',
      port,
      version,
      clientId: `bridge-${process.pid}-${n++}`,
      keepalive: 60,
      clean: false,
      ...(version === 5 ? { sessionExpiry: 3600 } : { bridge: true }),
      connectTimeoutMs: 3000,
      ...remote,
    },
    topics,
    reconnect: { minMs: 50, maxMs: 300 },
    ...extra,
  };
}

/** bridgeTo over TLS (mqtts) to localhost:`port`, the broker's certificate checked against `caFile`. */
export function tlsBridgeTo(port: number, topics: string[], caFile: string): BridgeOptions {
  return bridgeTo(port, topics, { transport: 'mqtts', host: 'localhost', tls: { ca: readFileSync(caFile) } });
}

/** An in-process mq broker with these bridges (and logs captured: waitForLog). */
export function startBridged(
  bridges: BridgeOptions | BridgeOptions[],
  options: BrokerOptions = {},
): Promise<StartedBroker> {
  return startBroker({ ...options, bridges: Array.isArray(bridges) ? bridges : [bridges] });
}

/** startBridged, the broker closed by one of `cleanups` (clientHarness's) after the test. */
export function bridgedWith(cleanups: { push(cleanup: () => Promise<void>): unknown }) {
  return async (...args: Parameters<typeof startBridged>): Promise<StartedBroker> => {
    const b = await startBridged(...args);
    cleanups.push(() => b.broker.close());
    return b;
  };
}

/** `${prefix}${from}` ... `${prefix}${to - 1}`. */
export const range = (from: number, to: number, prefix: string): string[] =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

/** Publishes each payload in turn, each acknowledged before the next. */
export async function publishAll(
  c: MqttClient,
  topic: string,
  payloads: string[],
  qos: QoS = 1,
): Promise<void> {
  for (const p of payloads) await c.publish(topic, p, { qos });
}

export interface Link {
  port: number;
  /** Cuts every connection through it, and every new one until up(). */
  down(): void;
  up(): void;
  /** Goes down (as down()) when the `n`th PUBLISH from now passes, either way. */
  downAfter(n: number): void;
  /** True while down. */
  readonly isDown: boolean;
  /** Connections made through it so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

/** A link to 127.0.0.1:`targetPort` that can be taken down (see Link). */
export async function startLink(targetPort: number, version: ProtocolVersion = 5): Promise<Link> {
  let isDown = false;
  let countdown = 0;
  const verdict = (p: Packet): 'cut' | 'pass' => {
    if (!isDown && countdown > 0 && p.type === 'PUBLISH' && --countdown === 0) isDown = true;
    return isDown ? 'cut' : 'pass';
  };
  const proxy = await startProxy(targetPort, version, { up: verdict, down: verdict });
  return {
    port: proxy.port,
    down() {
      isDown = true;
      proxy.cutAll();
    },
    up() {
      isDown = false;
    },
    downAfter(n: number) {
      countdown = n;
    },
    get isDown() {
      return isDown;
    },
    get connections() {
      return proxy.links;
    },
    stop: () => proxy.stop(),
  };
}

/**
 * Checks a `both` topic `t` for loops: a message published on each side reaches the other side
 * once and never comes back. A copy coming back would arrive before a sentinel sent after it along
 * the same path, so each sentinel is sent once the message before it arrived. `here` and `there`
 * collect what subscribers to `t/#` on the local and on the remote broker receive.
 */
export async function expectNoLoops(
  t: string,
  c: { local: MqttClient; remote: MqttClient; here: PublishPacket[]; there: PublishPacket[] },
): Promise<void> {
  const wait = (got: PublishPacket[], topic: string, payloads: string[]) =>
    expect.poll(() => payloadsOn(got, topic), { timeout: 5000 }).toEqual(payloads);
  await c.local.publish(`${t}/a`, 'from-local', { qos: 1 });
  await wait(c.there, `${t}/a`, ['from-local']);
  await c.remote.publish(`${t}/s`, 'remote-sentinel', { qos: 1 });
  await wait(c.here, `${t}/s`, ['remote-sentinel']);
  await c.remote.publish(`${t}/b`, 'from-remote', { qos: 1 });
  await wait(c.here, `${t}/b`, ['from-remote']);
  await c.local.publish(`${t}/s`, 'local-sentinel', { qos: 1 });
  await wait(c.there, `${t}/s`, ['remote-sentinel', 'local-sentinel']);
  const order = [
    `${t}/a=from-local`,
    `${t}/s=remote-sentinel`,
    `${t}/b=from-remote`,
    `${t}/s=local-sentinel`,
  ];
  expect(texts(c.here)).toEqual(order);
  expect(texts(c.there)).toEqual(order);
}

/**
 * Both directions at QoS 0, 1, 2, for a bridge with `sensors/# in 2 lab/ PREFIX` and
 * `cmd/# out 2 "" OUT`: for each QoS in turn `publishIn(qos)` publishes `in-q<qos>` to the remote's
 * PREFIX`sensors/t` and `lp` (on the local broker) `out-q<qos>` to cmd/door; `here` (lab/# on the
 * local broker) and `there` (OUT# on the remote) get each message once, in order, at its QoS.
 */
export async function expectMirroredQoS(c: {
  publishIn(qos: QoS): unknown;
  lp: MqttClient;
  out: string;
  here: PublishPacket[];
  there: PublishPacket[];
}): Promise<void> {
  for (const qos of [0, 1, 2] as const) {
    await c.publishIn(qos);
    await c.lp.publish('cmd/door', `out-q${qos}`, { qos });
  }
  await expect
    .poll(() => texts(c.here), { timeout: 5000 })
    .toEqual(['lab/sensors/t=in-q0', 'lab/sensors/t=in-q1', 'lab/sensors/t=in-q2']);
  await expect
    .poll(() => texts(c.there), { timeout: 5000 })
    .toEqual([`${c.out}cmd/door=out-q0`, `${c.out}cmd/door=out-q1`, `${c.out}cmd/door=out-q2`]);
  expect(c.here.map((p) => p.qos)).toEqual([0, 1, 2]);
  expect(c.there.map((p) => p.qos)).toEqual([0, 1, 2]);
}

/** "topic=payload" of each message, in order. */
export function texts(got: PublishPacket[]): string[] {
  return got.map((p) => `${p.topic}=${p.payload.toString()}`);
}

/** The payloads (as text) of the messages on `topic`. */
export function payloadsOn(got: PublishPacket[], topic: string): string[] {
  return got.filter((p) => p.topic === topic).map((p) => p.payload.toString());
}
