/**
 * The packet handlers, one module per packet type as Mosquitto's handle_*.c and aedes'
 * lib/handlers/: handlePacket is where a decoded packet from a client goes.
 */
import type { Packet } from '../../protocol/index.js';
import { type Connection, ConnState } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { handleAck } from './acks.js';
import { handleAuth, handleWhileAuthenticating } from './auth.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

/** One packet from `c` (`raw`: its bytes, as framed). */
export function handlePacket(core: BrokerCore, c: Connection, packet: Packet, raw: Buffer): void {
  if (c.state === ConnState.AwaitingConnect) {
    if (c.authExchange !== undefined) {
      handleWhileAuthenticating(core, c, packet);
      return;
    }
    if (packet.type !== 'CONNECT') {
      // [MQTT-3.1.0-1] the first packet must be CONNECT.
      core.log(`[${c.label}] first packet was ${packet.type}, not CONNECT: closing`);
      c.closeNow();
      return;
    }
    c.version = packet.protocolVersion;
    handleConnect(core, c, packet, raw);
    return;
  }
  switch (packet.type) {
    case 'PUBLISH':
      handlePublish(core, c, packet, raw);
      return;
    case 'PUBACK':
    case 'PUBREC':
    case 'PUBREL':
    case 'PUBCOMP':
      handleAck(core, c, packet);
      return;
    case 'PINGREQ':
      c.writePacket({ type: 'PINGRESP' });
      return;
    case 'SUBSCRIBE':
      handleSubscribe(core, c, packet);
      return;
    case 'DISCONNECT':
      handleDisconnect(c, packet);
      return;
    case 'UNSUBSCRIBE':
      handleUnsubscribe(core, c, packet);
      return;
    case 'CONNECT':
      // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
      c.protocolError('a second CONNECT on the same connection [MQTT-3.1.0-2]');
      return;
    case 'AUTH':
      handleAuth(core, c, packet);
      return;
    case 'CONNACK':
    case 'SUBACK':
    case 'UNSUBACK':
    case 'PINGRESP':
      c.protocolError(`${packet.type} is only sent by a server`);
      return;
    default: {
      const unreachable: never = packet;
      void unreachable;
    }
  }
}
