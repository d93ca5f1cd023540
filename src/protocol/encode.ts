import type { Packet, ProtocolVersion } from './types.js';

/** Encodes `packet` for `version`; throws EncodeError when it cannot be (e.g. QoS 1 without packetId). */
export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  void packet;
  void version;
  throw new Error('encode: not implemented yet');
}

/** Encodes into `target` at `offset`; returns the number of bytes written (packetSize()). */
export function encodeInto(packet: Packet, version: ProtocolVersion, target: Buffer, offset: number): number {
  void packet;
  void version;
  void target;
  void offset;
  throw new Error('encodeInto: not implemented yet');
}

/** The encoded length of `packet` in bytes, fixed header included. */
export function packetSize(packet: Packet, version: ProtocolVersion): number {
  void packet;
  void version;
  throw new Error('packetSize: not implemented yet');
}
