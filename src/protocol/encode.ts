import { EncodeError } from './errors.js';
import { ackRemainingLength, writeAck } from './packets/ack.js';
import { connackRemainingLength, writeConnack } from './packets/connack.js';
import { connectRemainingLength, writeConnect } from './packets/connect.js';
import { disconnectRemainingLength, pingWrite, writeDisconnect } from './packets/disconnect.js';
import { publishRemainingLength, writePublish } from './packets/publish.js';
import { subackRemainingLength, writeSuback } from './packets/suback.js';
import { subscribeRemainingLength, unsubscribeRemainingLength, writeSubscribe } from './packets/subscribe.js';
import type { Packet, ProtocolVersion } from './types.js';
import { checkRemainingLength, varintSize } from './writer.js';

// remainingLength and write dispatch on the packet type as decodeBody does (decode.ts): the
// same case lists, deliberately, one exhaustive switch per step on the hot path.

/** The remaining length of `packet`; throws EncodeError for a value it cannot encode. */
function remainingLength(packet: Packet, v: ProtocolVersion): number {
  switch (packet.type) {
    case 'PUBLISH':
      return publishRemainingLength(packet, v);
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return ackRemainingLength(packet, v);
    case 'CONNECT':
      return connectRemainingLength(packet);
    case 'CONNACK':
      return connackRemainingLength(packet, v);
    case 'SUBSCRIBE':
      return subscribeRemainingLength(packet, v);
    case 'SUBACK':
    case 'UNSUBACK':
      return subackRemainingLength(packet, v);
    case 'UNSUBSCRIBE':
      return unsubscribeRemainingLength(packet, v);
    case 'PINGREQ':
    case 'PINGRESP':
      return 0;
    case 'DISCONNECT':
      return disconnectRemainingLength(packet, v);
    case 'AUTH':
      if (v !== 5) throw new EncodeError('AUTH exists only in MQTT 5.0');
      return disconnectRemainingLength(packet, v);
    default: {
      const never: never = packet;
      throw new EncodeError(`unknown packet type ${String((never as { type: unknown }).type)}`);
    }
  }
}

function write(packet: Packet, v: ProtocolVersion, buf: Buffer, pos: number, rl: number): number {
  switch (packet.type) {
    case 'PUBLISH':
      return writePublish(packet, v, buf, pos, rl);
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      return writeAck(packet, v, buf, pos, rl);
    case 'CONNECT':
      return writeConnect(packet, buf, pos, rl);
    case 'CONNACK':
      return writeConnack(packet, v, buf, pos, rl);
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE':
      return writeSubscribe(packet, v, buf, pos, rl);
    case 'SUBACK':
    case 'UNSUBACK':
      return writeSuback(packet, v, buf, pos, rl);
    case 'PINGREQ':
    case 'PINGRESP':
      return pingWrite(packet, buf, pos);
    case 'DISCONNECT':
    case 'AUTH':
      return writeDisconnect(packet, buf, pos, rl);
    default: {
      const never: never = packet;
      return never;
    }
  }
}

/** Encodes `packet` for `version`; throws EncodeError when it cannot be (e.g. QoS 1 without packetId). */
export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  const rl = remainingLength(packet, version);
  checkRemainingLength(rl, packet.type);
  const buf = Buffer.allocUnsafe(1 + varintSize(rl) + rl);
  write(packet, version, buf, 0, rl);
  return buf;
}

/** Encodes into `target` at `offset`; returns the number of bytes written (packetSize()). */
export function encodeInto(packet: Packet, version: ProtocolVersion, target: Buffer, offset: number): number {
  const rl = remainingLength(packet, version);
  checkRemainingLength(rl, packet.type);
  const size = 1 + varintSize(rl) + rl;
  if (offset + size > target.length) {
    throw new EncodeError(
      `${packet.type} needs ${size} bytes at offset ${offset}; the buffer has ${target.length}`,
    );
  }
  return write(packet, version, target, offset, rl) - offset;
}

/** The encoded length of `packet` in bytes, fixed header included. */
export function packetSize(packet: Packet, version: ProtocolVersion): number {
  const rl = remainingLength(packet, version);
  return 1 + varintSize(rl) + rl;
}
