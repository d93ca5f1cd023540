/**
 * mq's MQTT client core: transports, sessions, QoS flows, reconnect. Used by pub, sub, req and bench.
 *
 *   const client = await MqttClient.connect(options);   // rejects with ConnectError
 *   client.on('message', (packet) => ...);
 *   await client.subscribe([{ topicFilter: 'a/#', qos: 1 }]);
 *   await client.publish('a/b', 'hello', { qos: 1 });
 *   await client.end();
 */

export { type BackoffRange, backoffDelay } from './backoff.js';
export { MqttClient } from './client.js';
export { type AuthConversation, type EnhancedAuth, scramAuth, scramMethod } from './enhanced-auth.js';
export {
  ClientClosedError,
  ConnectError,
  connackRefusal,
  DisconnectError,
  explainConnectError,
  PublishRefusedError,
} from './errors.js';
export { OutgoingPublishes, type PublishResult } from './inflight.js';
export { Keepalive } from './keepalive.js';
export type { ClientOptions, EndOptions, PublishOptions } from './options.js';
export { Fifo, IncomingQos2, PacketIdAllocator } from './session.js';
export { IncomingAliases, OutgoingAliases } from './topic-alias.js';
export {
  describeTarget,
  openTransport,
  redirectTarget,
  type TlsOptions,
  type TransportKind,
  type TransportOptions,
} from './transport.js';
