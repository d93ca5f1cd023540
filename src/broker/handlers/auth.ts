/**
 * AUTH (MQTT 5.0 section 4.12): the enhanced authentication exchange of a CONNECT, and
 * re-authentication once connected. The exchange itself (SCRAM) is enhanced-auth.ts; this module
 * sends and checks the packets:
 *
 *   CONNECT (method, client-first)  ->  AUTH 0x18 (server-first)
 *   AUTH 0x18 (client-final)        ->  CONNACK 0x00 (server-final)   or CONNACK 0x86 and close
 *   AUTH 0x19 (client-first)        ->  AUTH 0x18 (server-first)       re-authentication
 *   AUTH 0x18 (client-final)        ->  AUTH 0x00 (server-final)       or DISCONNECT 0x87 and close
 */
import { type AuthPacket, type Packet, ReasonCode } from '../../protocol/index.js';
import { quoteTopic } from '../../protocol/topic.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { AuthExchange, type AuthFailure } from '../enhanced-auth.js';
import { type Refusal, refuse } from './connect.js';

/**
 * Starts the exchange `method` names with the client's first `data` and sends AUTH 0x18 with the
 * server's challenge: undefined, or the refusal when it cannot start.
 */
export function beginAuthentication(
  core: BrokerCore,
  c: Connection,
  method: string,
  data: Buffer | undefined,
  user: string | undefined,
): Refusal | undefined {
  const started = AuthExchange.start(core.scramUsers, method, data, user);
  if (!('exchange' in started)) return started;
  c.authExchange = started.exchange;
  // [MQTT-4.12.0-2] [MQTT-4.12.0-5] Continue authentication, with the same method.
  c.writePacket(
    authPacket(ReasonCode.ContinueAuthentication, started.exchange.method, started.step.data),
    true,
  );
  return undefined;
}

/** A packet that arrived while a CONNECT waits for its exchange to end. */
export function handleWhileAuthenticating(core: BrokerCore, c: Connection, packet: Packet): void {
  if (packet.type === 'DISCONNECT') {
    core.log(`[${c.label}] disconnected during enhanced authentication`);
    c.closeNow();
    return;
  }
  if (packet.type !== 'AUTH') {
    // [MQTT-3.1.2-30] nothing but AUTH or DISCONNECT before the CONNACK.
    refuse(core, c, {
      code: ReasonCode.ProtocolError,
      why: `${packet.type} during enhanced authentication [MQTT-3.1.2-30]`,
    });
    return;
  }
  const exchange = c.authExchange!;
  const problem = wrongAuth(packet, exchange.method, ReasonCode.ContinueAuthentication);
  if (problem !== undefined) {
    refuse(core, c, { code: ReasonCode.ProtocolError, why: problem });
    return;
  }
  const result = exchange.finish(packet.properties?.authenticationData);
  c.authExchange = undefined;
  if ('code' in result) {
    refuse(core, c, result);
    return;
  }
  exchange.resume?.(result);
}

/** AUTH on a connected connection: a re-authentication [MQTT-4.12.1-1]. */
export function handleAuth(core: BrokerCore, c: Connection, packet: AuthPacket): void {
  const method = c.authMethod;
  if (method === undefined) {
    c.protocolError('AUTH, but the CONNECT named no Authentication Method [MQTT-4.12.0-7]');
    return;
  }
  const asked = packet.properties?.authenticationMethod;
  if (asked !== method) {
    const why = `re-authentication with ${asked === undefined ? 'no method' : quoteTopic(asked)}, not ${method} [MQTT-4.12.1-1]`;
    core.log(`[${c.label}] ${why}`);
    c.disconnect(ReasonCode.BadAuthenticationMethod, why);
    return;
  }
  const rc = packet.reasonCode ?? ReasonCode.Success;
  const exchange = c.authExchange;
  if (exchange === undefined && rc === ReasonCode.ReAuthenticate) {
    const refusal = beginAuthentication(core, c, method, packet.properties?.authenticationData, c.username);
    if (refusal !== undefined) reauthenticationFailed(core, c, refusal);
    return;
  }
  if (exchange === undefined || rc !== ReasonCode.ContinueAuthentication) {
    c.protocolError(
      `AUTH ${rc === ReasonCode.ReAuthenticate ? 'Re-authenticate during a re-authentication' : `with reason 0x${rc.toString(16)} out of turn`}`,
    );
    return;
  }
  c.authExchange = undefined;
  const result = exchange.finish(packet.properties?.authenticationData);
  if ('code' in result) {
    reauthenticationFailed(core, c, result);
    return;
  }
  core.log(`[${c.label}] re-authenticated with ${method} (user ${result.username})`);
  c.writePacket(authPacket(ReasonCode.Success, method, result.data), true);
}

/** [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT (0x86 is a CONNACK code: 0x87 here) and close. */
function reauthenticationFailed(core: BrokerCore, c: Connection, f: AuthFailure): void {
  const code = f.code === ReasonCode.BadUserNameOrPassword ? ReasonCode.NotAuthorized : f.code;
  core.log(`[${c.label}] re-authentication failed: ${f.why}`);
  c.disconnect(code, 're-authentication failed');
}

/** Why an AUTH does not continue this exchange (its method, its reason code), or undefined. */
function wrongAuth(packet: AuthPacket, method: string, want: number): string | undefined {
  const asked = packet.properties?.authenticationMethod;
  // [MQTT-4.12.0-5] every AUTH carries the CONNECT's method.
  if (asked !== method) {
    return `AUTH with method ${asked === undefined ? '(none)' : quoteTopic(asked)}, not ${method} [MQTT-4.12.0-5]`;
  }
  const rc = packet.reasonCode ?? ReasonCode.Success;
  if (rc !== want)
    return `AUTH with reason 0x${rc.toString(16).padStart(2, '0')} where 0x18 Continue authentication belongs`;
  return undefined;
}

function authPacket(reasonCode: number, method: string, data: Buffer): AuthPacket {
  return { type: 'AUTH', reasonCode, properties: { authenticationMethod: method, authenticationData: data } };
}
