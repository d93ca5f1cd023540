/**
 * mq's MQTT proxy as a library (`mq proxy` renders its events): listeners, forwarding with
 * backpressure, packet observation with secrets masked, faults per direction, NDJSON recording.
 */

export { Recorder } from '../cli/record.js';
export { type Inspection, inspectPacket, MASK_BYTE, maskPacket } from '../protocol/inspect.js';
export {
  type ConnectionFaults,
  type ConnectionInfo,
  type Direction,
  type DirectionFaults,
  NO_FAULTS,
  type PacketEvent,
  type ProxyEvents,
} from './connection.js';
export type { LaneFaults } from './lane.js';
export { MqttProxy, type ProxyAddress, type ProxyAddresses, type ProxyOptions } from './proxy.js';
export { type FrameHead, Splitter, type SplitterHooks, type SplitterOptions } from './splitter.js';
