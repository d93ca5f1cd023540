/**
 * mq as a library: the codec (also at 'mq/protocol'), the embeddable broker and the client.
 *
 *   import { Broker, decode, encode, Framer } from 'mq';
 */
export * from './protocol/index.js';
