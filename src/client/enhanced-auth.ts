/**
 * Enhanced authentication on the client (MQTT 5.0 section 4.12): the exchange of a CONNECT (AUTH
 * 0x18 both ways until the CONNACK) and re-authentication (AUTH 0x19, then 0x18 until AUTH 0x00).
 * What the Authentication Data means is an AuthConversation's business; scramAuth() is SCRAM's.
 * A server that does not prove itself at the end (SCRAM: its signature) is refused.
 */
import { SCRAM_METHODS, ScramClient, ScramError, type ScramMethod } from '../auth/scram.js';
import type { AuthPacket } from '../protocol/index.js';
import type { Connection } from './connection.js';

/** One exchange, seen from the client. */
export interface AuthConversation {
  /** The Authentication Data of the CONNECT (or of AUTH 0x19), if the method starts with some. */
  first(): Buffer | undefined;
  /** The server's challenge (AUTH 0x18) -> the client's answer (AUTH 0x18). Rejects to give up. */
  answer(challenge: Buffer | undefined): Promise<Buffer>;
  /** The Authentication Data of the successful CONNACK or AUTH 0x00: throws unless the server proved itself. */
  finish(data: Buffer | undefined): void;
}

/** ClientOptions.auth: the Authentication Method, and a new conversation for each exchange. */
export interface EnhancedAuth {
  method: string;
  start(): AuthConversation;
}

/** SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802/7677) as `username` with `password`. */
export function scramAuth(method: ScramMethod, username: string, password: string): EnhancedAuth {
  return {
    method,
    start(): AuthConversation {
      const scram = new ScramClient(method, username, password);
      let finalSent = false;
      return {
        first: () => Buffer.from(scram.clientFirst()),
        async answer(challenge) {
          if (finalSent) throw new ScramError('the broker asked for more than SCRAM has to say');
          finalSent = true;
          return Buffer.from(await scram.clientFinal(challenge?.toString('utf8') ?? ''));
        },
        finish(data) {
          if (!finalSent || data === undefined) {
            throw new ScramError(
              'the broker accepted without proving it knows the password (no server signature)',
            );
          }
          scram.verifyServerFinal(data.toString('utf8'));
        },
      };
    },
  };
}

/** `SCRAM-SHA-256` in any case; undefined when it is none of the three. */
export function scramMethod(name: string): ScramMethod | undefined {
  const upper = name.trim().toUpperCase();
  return SCRAM_METHODS.find((m) => m === upper);
}

/** DISCONNECT reason when the client gives an exchange up (0x87 is the server's). */
const GAVE_UP = 0x80;

/** An AUTH from the broker: the next step of the exchange in progress on `conn`. */
export function handleAuthPacket(conn: Connection, packet: AuthPacket, auth: EnhancedAuth | undefined): void {
  const conversation = conn.authConversation;
  if (auth === undefined || conversation === undefined) {
    // [MQTT-4.12.0-6] no AUTH unless the CONNECT named a method.
    conn.fail(0x82, 'the broker sent AUTH, but no authentication exchange is in progress');
    return;
  }
  const method = packet.properties?.authenticationMethod;
  if (method !== auth.method) {
    conn.fail(
      0x82,
      `the broker sent AUTH for method ${JSON.stringify(method ?? null)}, not ${auth.method} [MQTT-4.12.0-5]`,
    );
    return;
  }
  const rc = packet.reasonCode ?? 0;
  if (rc === 0x18) {
    conversation.answer(packet.properties?.authenticationData).then(
      (data) => {
        if (conn.done || conn.authConversation !== conversation) return;
        conn.send({
          type: 'AUTH',
          reasonCode: 0x18,
          properties: { authenticationMethod: auth.method, authenticationData: data },
        });
      },
      (err: unknown) => giveUp(conn, auth.method, err),
    );
    return;
  }
  if (rc === 0x00 && conn.connected && conn.reauth !== undefined) {
    const waiting = conn.reauth;
    conn.authConversation = undefined;
    conn.reauth = undefined;
    try {
      conversation.finish(packet.properties?.authenticationData);
    } catch (err) {
      giveUp(conn, auth.method, err, waiting.reject);
      return;
    }
    waiting.resolve();
    return;
  }
  conn.fail(0x82, `the broker sent AUTH with reason 0x${rc.toString(16).padStart(2, '0')} out of turn`);
}

/**
 * Checks the end of the CONNECT's exchange (the successful CONNACK's method and data): an Error
 * saying why the broker is not trusted, or undefined.
 */
export function checkConnackAuth(
  conn: Connection,
  auth: EnhancedAuth | undefined,
  properties: { authenticationMethod?: string; authenticationData?: Buffer } | undefined,
): Error | undefined {
  const conversation = conn.authConversation;
  if (auth === undefined || conversation === undefined) return undefined;
  conn.authConversation = undefined;
  if (properties?.authenticationMethod !== auth.method) {
    return new Error(
      `the broker accepted without ${auth.method} (CONNACK names no such Authentication Method) [MQTT-4.12.0-5]`,
    );
  }
  try {
    conversation.finish(properties.authenticationData);
    return undefined;
  } catch (err) {
    return new Error(`${auth.method}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Starts a re-authentication on a connected `conn` (AUTH 0x19); resolves on AUTH 0x00. */
export function reauthenticate(conn: Connection, auth: EnhancedAuth): Promise<void> {
  return new Promise((resolve, reject) => {
    if (conn.reauth !== undefined) {
      reject(new Error('a re-authentication is already in progress'));
      return;
    }
    const conversation = auth.start();
    conn.authConversation = conversation;
    conn.reauth = { resolve, reject };
    const data = conversation.first();
    conn.send({
      type: 'AUTH',
      reasonCode: 0x19,
      properties: {
        authenticationMethod: auth.method,
        ...(data !== undefined ? { authenticationData: data } : {}),
      },
    });
  });
}

/** The client gives the exchange up (the broker's data made no sense, or it did not prove itself). */
function giveUp(conn: Connection, method: string, err: unknown, reject?: (err: Error) => void): void {
  const message = `${method}: ${err instanceof Error ? err.message : String(err)}`;
  const waiting = reject ?? conn.reauth?.reject;
  conn.reauth = undefined;
  conn.authConversation = undefined;
  conn.fail(GAVE_UP, message);
  waiting?.(new Error(message));
}
