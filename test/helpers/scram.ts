/**
 * The packets of MQTT 5 enhanced authentication (section 4.12), sent over a raw TestClient:
 *
 *   sendAuthConnect(c, { clientId: 'x', method: 'SCRAM-SHA-256', data: scram.clientFirst() });
 *   const challenge = await c.nextPacket('AUTH');
 *   sendAuth(c, 0x18, 'SCRAM-SHA-256', await scram.clientFinal(...));
 */
import type { TestClient } from './mqtt-test-client.js';

/** CONNECT (MQTT 5, clean, keepalive 60) with Authentication Method and Data. */
export function sendAuthConnect(
  c: TestClient,
  o: { clientId: string; method: string; data: string; username?: string | undefined },
): void {
  c.send({
    type: 'CONNECT',
    protocolVersion: 5,
    clean: true,
    keepalive: 60,
    clientId: o.clientId,
    ...(o.username !== undefined ? { username: o.username } : {}),
    properties: { authenticationMethod: o.method, authenticationData: Buffer.from(o.data) },
  });
}

/** AUTH with `reasonCode` (0x18 Continue, 0x19 Re-authenticate), Authentication Method and Data. */
export function sendAuth(c: TestClient, reasonCode: 0x18 | 0x19, method: string, data: string): void {
  c.send({
    type: 'AUTH',
    reasonCode,
    properties: { authenticationMethod: method, authenticationData: Buffer.from(data) },
  });
}
