/**
 * mq's embeddable MQTT 3.1 / 3.1.1 / 5.0 broker.
 *
 *   const broker = new Broker({ port: 0 });
 *   const { tcp } = await broker.listen();   // tcp.port is the port picked
 *   ...
 *   await broker.close();   // wills of connected clients published first (publishWills: false: not)
 */
export { makePasswdLine } from './auth.js';
export type { BridgeOptions } from './bridge/bridge.js';
export { type BridgeTopic, BridgeTopicError, parseBridgeTopic } from './bridge/topics.js';
export { Broker } from './broker.js';
export { makeScramPasswdLine } from './enhanced-auth.js';
export type { BrokerAddresses, BrokerOptions, BrokerStats, CloseOptions } from './options.js';
export type { TraceFormatter } from './trace.js';
