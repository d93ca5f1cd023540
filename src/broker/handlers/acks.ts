/**
 * PUBACK, PUBREC, PUBREL, PUBCOMP: the QoS 1 and 2 flows. Acknowledgements of the broker's own
 * PUBLISHes complete (or release) the session's in-flight copies; PUBREL releases a QoS 2 packet
 * id the client sent.
 */
import {
  type PubackPacket,
  type PubcompPacket,
  type PubrecPacket,
  type PubrelPacket,
  ReasonCode,
} from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { complete } from '../routing.js';

export function handleAck(
  core: BrokerCore,
  c: Connection,
  p: PubackPacket | PubrecPacket | PubrelPacket | PubcompPacket,
): void {
  const s = c.session!;
  switch (p.type) {
    case 'PUBACK': {
      // QoS 1 delivered.
      const o = s.inflight.get(p.packetId);
      if (o !== undefined && o.qos === 1) complete(core, s, o);
      return;
    }
    case 'PUBREC': {
      // QoS 2 received: PUBREL, or the copy is done when the client refused it (>= 0x80).
      const o = s.inflight.get(p.packetId);
      if (o === undefined) {
        // An id the broker does not know (any more): PUBREL lets the client end its side (v5: 0x92).
        c.writeAck(0x62, p.packetId, c.version === 5 ? ReasonCode.PacketIdentifierNotFound : 0);
        return;
      }
      // A PUBREC for a QoS 1 message is ignored, as Mosquitto ignores a 3.1.1 client's unexpected
      // acknowledgements (as PUBACK for QoS 2 and PUBCOMP before PUBREL are below): the message
      // still waits for its PUBACK, and a PUBREL would release an id the client holds as QoS 1.
      if (o.qos !== 2) return;
      if ((p.reasonCode ?? 0) >= 0x80) {
        complete(core, s, o);
        return;
      }
      if (o.state !== 'rel') {
        o.state = 'rel';
        core.persist?.released(s, o);
      }
      c.writeAck(0x62, p.packetId, 0);
      return;
    }
    case 'PUBREL': {
      // QoS 2 from the client released: its packet id may be used again.
      const known = s.incomingQos2?.delete(p.packetId) ?? false;
      if (known) core.persist?.incomingReleased(s, p.packetId);
      c.writeAck(0x70, p.packetId, known || c.version !== 5 ? 0 : ReasonCode.PacketIdentifierNotFound);
      return;
    }
    case 'PUBCOMP': {
      // QoS 2 delivered.
      const o = s.inflight.get(p.packetId);
      if (o !== undefined && o.state === 'rel') complete(core, s, o);
      return;
    }
    default: {
      const unreachable: never = p;
      void unreachable;
    }
  }
}
