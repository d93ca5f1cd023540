/**
 * mq as a library: the codec (also at 'mq/protocol'), the embeddable broker and the client.
 *
 *   import { Broker, decode, encode, Framer } from 'mq';
 */

export {
  type BridgeOptions,
  Broker,
  type BrokerAddresses,
  type BrokerOptions,
  type BrokerStats,
  type CloseOptions,
  makePasswdLine,
  type TraceFormatter,
} from './broker/index.js';
export * from './protocol/index.js';
