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
 */
import type { BridgeOptions, BrokerOptions } from '../../src/broker/index.js';
import type { ClientOptions } from '../../src/client/index.js';
import type { Packet, ProtocolVersion, PublishPacket } from '../../src/protocol/index.js';
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

/** An in-process mq broker with these bridges (and logs captured: waitForLog). */
export function startBridged(
  bridges: BridgeOptions | BridgeOptions[],
  options: BrokerOptions = {},
): Promise<StartedBroker> {
  return startBroker({ ...options, bridges: Array.isArray(bridges) ? bridges : [bridges] });
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

/** "topic=payload" of each message, in order. */
export function texts(got: PublishPacket[]): string[] {
  return got.map((p) => `${p.topic}=${p.payload.toString()}`);
}

/** The payloads (as text) of the messages on `topic`. */
export function payloadsOn(got: PublishPacket[], topic: string): string[] {
  return got.filter((p) => p.topic === topic).map((p) => p.payload.toString());
}
