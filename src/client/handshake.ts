/**
 * Connecting: open the transport, send CONNECT, wait for the CONNACK (within the connect timeout),
 * and turn every way this can fail into a ConnectError in plain words: a refusal by name, an old
 * broker answering in 3.1.1, a DISCONNECT or a close instead of an answer. A CONNACK that points to
 * another server rejects with a RedirectSignal, which the client follows once.
 */
import {
  type ConnackPacket,
  type ConnectPacket,
  formatReasonCode,
  type Properties,
  type ProtocolVersion,
} from '../protocol/index.js';
import { Connection, type ConnectionEvents } from './connection.js';
import { checkConnackAuth, type EnhancedAuth } from './enhanced-auth.js';
import { ConnectError, connackRefusal, explainConnectError } from './errors.js';
import type { ClientOptions } from './options.js';
import { describeTarget, errorContext, openTransport, type TransportOptions } from './transport.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** CONNACK reason codes worth retrying after (transient); others end a reconnect loop. */
const TRANSIENT_REFUSALS = new Set([0x88, 0x89, 0x9c, 0x9d, 0x9f]);
const TRANSIENT_REFUSALS_V4 = new Set([3]);

/** Raised inside connect when a CONNACK says "use another server". */
export class RedirectSignal extends Error {
  constructor(
    readonly serverReference: string,
    readonly error: ConnectError,
  ) {
    super(error.message);
  }
}

/**
 * One connection to `target`, up to its CONNACK: resolves with an accepted CONNACK, rejects with
 * ConnectError (or RedirectSignal). The connection reports its packets to `events` from the start.
 */
export async function openConnection(
  target: TransportOptions,
  options: ClientOptions,
  events: ConnectionEvents,
): Promise<{ connack: ConnackPacket; conn: Connection }> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const secs = `${timeoutMs / 1000} s`;
  const abort = new AbortController();
  const timer = setTimeout(
    () =>
      abort.abort(
        new ConnectError(`could not connect to ${describeTarget(target)} within ${secs}`, {
          code: 'ETIMEDOUT',
        }),
      ),
    timeoutMs,
  );
  try {
    const socket = await openTransport(target, abort.signal);
    const conn = new Connection(socket, target, options.version, options.trace, events);
    const connack = new Promise<ConnackPacket>((resolve, reject) => {
      conn.awaitingConnack = { resolve, reject };
    });
    // Enhanced authentication: a new exchange for each connection (handled in enhanced-auth.ts).
    if (options.auth !== undefined && options.version === 5) conn.authConversation = options.auth.start();
    conn.send(connectPacket(options, conn.authConversation?.first()));
    conn.uncork(); // now: the broker's answer is all we wait for
    const onAbort = () => {
      conn.awaitingConnack?.reject(new ConnectError(`no CONNACK within ${secs} from ${conn.where}`));
      conn.socket.destroy();
    };
    abort.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const packet = await connack;
      return { connack: packet, conn };
    } finally {
      abort.signal.removeEventListener('abort', onAbort);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The CONNECT for `o`; `authData`: the first Authentication Data of o.auth's exchange. */
export function connectPacket(o: ClientOptions, authData?: Buffer): ConnectPacket {
  const packet: ConnectPacket = {
    type: 'CONNECT',
    protocolVersion: o.version,
    clean: o.clean,
    keepalive: o.keepalive,
    clientId: o.clientId,
  };
  if (o.bridge === true && o.version !== 5) packet.bridge = true;
  if (o.will) packet.will = o.will;
  if (o.username !== undefined) packet.username = o.username;
  if (o.password !== undefined) packet.password = o.password;
  if (o.version === 5) {
    const props: Properties = { ...o.connectProperties };
    if (o.sessionExpiry !== undefined && o.sessionExpiry > 0) props.sessionExpiryInterval = o.sessionExpiry;
    if (o.auth !== undefined) {
      props.authenticationMethod = o.auth.method;
      if (authData !== undefined) props.authenticationData = authData;
    }
    if (Object.keys(props).length > 0) packet.properties = props;
  }
  return packet;
}

/**
 * A CONNACK arrived: settles the handshake (a second CONNACK breaks the protocol). With enhanced
 * authentication, a success counts only once the broker proved itself (`auth`).
 */
export function settleConnack(
  conn: Connection,
  packet: ConnackPacket,
  version: ProtocolVersion,
  auth?: EnhancedAuth,
): void {
  const waiting = conn.awaitingConnack;
  if (conn.connected || waiting === undefined) {
    conn.fail(0x82, 'the broker sent a second CONNACK');
    return;
  }
  conn.awaitingConnack = undefined;
  if (packet.reasonCode === 0) {
    const distrust = checkConnackAuth(conn, auth, packet.properties);
    if (distrust !== undefined) {
      waiting.reject(new ConnectError(`refusing ${conn.where}: ${distrust.message}`));
      conn.socket.destroy();
      return;
    }
    waiting.resolve(packet);
    return;
  }
  const ref = packet.properties?.serverReference;
  const refusal = connackRefusal(packet.reasonCode, version, conn.where, packet.properties?.reasonString);
  if ((packet.reasonCode === 0x9c || packet.reasonCode === 0x9d) && ref !== undefined && version === 5) {
    refusal.message += ` (it points to ${ref})`;
    waiting.reject(new RedirectSignal(ref, refusal));
  } else {
    waiting.reject(refusal);
  }
  conn.socket.destroy();
}

/** The connection closed before its CONNACK: the handshake fails, saying what came instead. */
export function closedBeforeConnack(conn: Connection, version: ProtocolVersion): void {
  const waiting = conn.awaitingConnack;
  if (waiting === undefined) return;
  conn.awaitingConnack = undefined;
  const where = conn.where;
  if (conn.disconnect) {
    const rc = conn.disconnect.reasonCode ?? 0;
    waiting.reject(
      new ConnectError(`${where} sent DISCONNECT ${formatReasonCode(rc, 'DISCONNECT')} instead of CONNACK`),
    );
  } else if (conn.error) {
    waiting.reject(explainConnectError(conn.error, errorContext(conn.target)));
  } else if (version === 5) {
    waiting.reject(
      new ConnectError(
        `${where} closed the connection without answering CONNECT: the broker may not speak MQTT 5; try -V 3.1.1`,
      ),
    );
  } else {
    waiting.reject(new ConnectError(`${where} closed the connection without answering CONNECT`));
  }
}

/** CONNACK refusals that no retry will fix (bad credentials, not authorized, wrong version...). */
export function isFatalRefusal(err: Error, version: ProtocolVersion): boolean {
  if (!(err instanceof ConnectError) || err.reasonCode === undefined) return false;
  return version === 5 ? !TRANSIENT_REFUSALS.has(err.reasonCode) : !TRANSIENT_REFUSALS_V4.has(err.reasonCode);
}
