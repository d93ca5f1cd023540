/**
 * The setup the MqttClient test files share: a cleanup list run after each test (clients, proxies,
 * brokers, in reverse order), ClientOptions for a broker on 127.0.0.1, and a collector of received
 * messages. Call once at the top level of a test file:
 * `const { cleanups, opts, connect, collect, subscriber } = clientHarness({ version: 5, idPrefix: 'mqb' });`
 */
import { afterEach } from 'vitest';
import { type ClientOptions, MqttClient } from '../../src/client/index.js';
import type { ProtocolVersion, PublishPacket, QoS } from '../../src/protocol/index.js';

export interface ClientHarnessDefaults {
  version: ProtocolVersion;
  /** Client ids are `${idPrefix}-${pid}-${n}`, one per opts() call... */
  idPrefix?: string;
  /** ...or this one id for every client. */
  clientId?: string;
}

export function clientHarness(defaults: ClientHarnessDefaults) {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  let seq = 0;
  const connect = async (o: ClientOptions): Promise<MqttClient> => {
    const c = await MqttClient.connect(o);
    cleanups.push(() => c.destroy());
    return c;
  };
  return {
    /** Run after the test, last added first. */
    cleanups,
    /** Options for a client of `port` on 127.0.0.1 (keepalive 60, clean, 3 s connect timeout). */
    opts(port: number, extra: Partial<ClientOptions> = {}): ClientOptions {
      return {
        transport: 'mqtt',
        host: '127.0.0.1',
        port,
        version: defaults.version,
        clientId: defaults.clientId ?? `${defaults.idPrefix ?? 'test'}-${process.pid}-${seq++}`,
        keepalive: 60,
        clean: true,
        connectTimeoutMs: 3000,
        ...extra,
      };
    },
    /** A connected client, destroyed after the test. */
    connect,
    /** Every message `c` receives from now on (payloads copied). */
    collect,
    /** A connected client (destroyed after the test) subscribed to `topicFilter`, and what it receives. */
    async subscriber(
      o: ClientOptions,
      topicFilter: string,
      qos: QoS = 1,
    ): Promise<{ client: MqttClient; got: PublishPacket[] }> {
      const client = await connect(o);
      const got = collect(client);
      await client.subscribe([{ topicFilter, qos }]);
      return { client, got };
    },
  };
}

/** Every message `c` receives from now on (payloads copied). */
function collect(c: MqttClient): PublishPacket[] {
  const got: PublishPacket[] = [];
  c.on('message', (p) => got.push({ ...p, payload: Buffer.from(p.payload) }));
  return got;
}
