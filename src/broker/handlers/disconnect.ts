/** DISCONNECT from the client: a last Session Expiry Interval, and whether its will is published. */
import { type DisconnectPacket, ReasonCode } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

export function handleDisconnect(c: Connection, p: DisconnectPacket): void {
  const s = c.session!;
  const expiry = p.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    // [MQTT-3.14.2-2] a session that expired on close cannot be revived by DISCONNECT.
    if (s.expiryInterval === 0 && expiry !== 0) {
      c.protocolError('DISCONNECT sets a Session Expiry Interval after CONNECT set 0 [MQTT-3.14.2-2]');
      return;
    }
    s.expiryInterval = expiry;
  }
  // [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 asks for it to be published.
  if ((p.reasonCode ?? 0) !== ReasonCode.DisconnectWithWill) c.will = undefined;
  c.graceful = true;
  c.closeNow();
}
