/**
 * mq's MQTT codec (3.1, 3.1.1, 5.0): pure, no I/O. The stable API:
 *
 *   decode(bytes, version, options?)  one whole packet -> Packet (throws MalformedPacketError)
 *   encode(packet, version)           Packet -> Buffer
 *   encodeInto(packet, version, buf, offset) -> bytes written (for batched writes)
 *   packetSize(packet, version)       encoded length in bytes, fixed header included
 *   new Framer(version, { maxPacketSize }).push(chunk, (packet, raw) => ...)
 *   readFixedHeader(bytes, offset)    type, flags and remaining length, without decoding
 *   validateTopicName / validateTopicFilter / matches
 *
 * The protocol version is always passed explicitly. A CONNECT decodes under any version (it
 * carries its own level); code that reads a CONNECT then sets the version it found.
 */
export * from './constants.js';
export { type DecodeOptions, decode } from './decode.js';
export { encode, encodeInto, packetSize } from './encode.js';
export * from './errors.js';
export { type FixedHeader, Framer, type FramerOptions, readFixedHeader } from './framer.js';
export {
  PROPERTIES,
  PROPERTY_BY_ID,
  PROPERTY_BY_NAME,
  type PropertyInfo,
  type PropertyType,
} from './properties.js';
export {
  isDollarTopic,
  isWildcard,
  matches,
  parseSharedSubscription,
  type TopicProblem,
  validateTopicFilter,
  validateTopicName,
} from './topic.js';
export type * from './types.js';
