/**
 * `--broker builtin`: mq's own broker, in this process, on a free loopback port: a baseline with
 * no setup. Quiet (no log lines), no $SYS updates.
 */

import type { BrokerOptions } from '../broker/index.js';
import { Broker } from '../broker/index.js';

export interface BuiltinBroker {
  /** mqtt://127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  broker: Broker;
  close(): Promise<void>;
}

/** Starts mq's broker on 127.0.0.1, port 0 (the OS picks); `options` may add limits or listeners. */
export async function startBuiltinBroker(options: BrokerOptions = {}): Promise<BuiltinBroker> {
  const broker = new Broker({ host: '127.0.0.1', port: 0, sysInterval: 0, log: () => {}, ...options });
  const addresses = await broker.listen();
  const tcp = addresses.tcp;
  if (tcp === undefined) {
    await broker.close();
    throw new Error('the builtin broker has no TCP listener');
  }
  return {
    url: `mqtt://${tcp.host}:${tcp.port}`,
    host: tcp.host,
    port: tcp.port,
    broker,
    close: () => broker.close(),
  };
}
