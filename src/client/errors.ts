/**
 * The client's failures, each with a message a user can act on. Commands map ConnectError and
 * DisconnectError to exit code 2, PublishRefusedError to exit code 5.
 */
import { formatReasonCode, type ProtocolVersion } from '../protocol/index.js';

/** Could not connect: socket, TLS, WebSocket upgrade, CONNACK refusal, or no CONNACK in time. */
export class ConnectError extends Error {
  override name = 'ConnectError';
  /** The CONNACK reason code (v5) or return code (3.1/3.1.1) when the broker refused. */
  reasonCode?: number;
  /** The system error code behind it ('ECONNREFUSED', 'CERT_HAS_EXPIRED', ...), when there was one. */
  code?: string;
  constructor(message: string, init: { reasonCode?: number; code?: string; cause?: unknown } = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    if (init.reasonCode !== undefined) this.reasonCode = init.reasonCode;
    if (init.code !== undefined) this.code = init.code;
  }
}

/**
 * The connection ended without the client asking: the broker sent DISCONNECT (reasonCode set, v5),
 * closed the socket, or stopped answering (reasonCode undefined).
 */
export class DisconnectError extends Error {
  override name = 'DisconnectError';
  reasonCode: number | undefined;
  constructor(message: string, reasonCode?: number) {
    super(message);
    this.reasonCode = reasonCode;
  }
}

/** The broker refused a PUBLISH (v5 PUBACK/PUBREC reason >= 0x80), or the client could not send it. */
export class PublishRefusedError extends Error {
  override name = 'PublishRefusedError';
  reasonCode: number;
  constructor(message: string, reasonCode: number) {
    super(message);
    this.reasonCode = reasonCode;
  }
}

/** The client was closed (end()/destroy()) while an operation was still waiting. */
export class ClientClosedError extends Error {
  override name = 'ClientClosedError';
}

const UNKNOWN_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

export interface ErrorContext {
  /** 'localhost:1883', 'unix socket /tmp/x.sock', 'wss://h:443/mqtt' */
  target: string;
  host: string;
  tls?: { caFile?: string; servername?: string; insecure?: boolean } | undefined;
  /** TLS transport (mqtts, wss). */
  secure?: boolean;
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Turns a socket, TLS or WebSocket error raised while connecting into a ConnectError in plain words. */
export function explainConnectError(err: unknown, ctx: ErrorContext): ConnectError {
  if (err instanceof ConnectError) return err;
  const code = errorCode(err);
  const raw = err instanceof Error ? err.message : String(err);
  const make = (message: string) =>
    new ConnectError(message, code === undefined ? { cause: err } : { code, cause: err });
  const where = `could not connect to ${ctx.target}`;
  // A plain MQTT listener hangs up on a TLS ClientHello.
  if (code === 'ECONNRESET' && (ctx.secure === true || /before secure TLS connection/.test(raw))) {
    return make(
      `${where}: TLS handshake failed: the server did not answer in TLS (is ${ctx.target} a TLS port? plain MQTT is usually 1883, TLS 8883)`,
    );
  }
  switch (code) {
    case 'ECONNREFUSED':
      return make(`${where}: connection refused (is a broker running there?)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return make(`${where}: unknown host ${ctx.host}`);
    case 'ETIMEDOUT':
      return make(`${where}: timed out (is the host reachable, and the port open?)`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return make(`${where}: host unreachable`);
    case 'ECONNRESET':
      return make(`${where}: the connection was reset by the other side`);
    case 'ENOENT':
      return make(`${where}: no such socket file`);
    case 'EACCES':
      return make(`${where}: permission denied`);
    case 'ENOTSOCK':
      return make(`${where}: not a socket`);
    case 'ERR_TLS_CERT_ALTNAME_INVALID': {
      const cert = (err as { cert?: { subjectaltname?: string; subject?: { CN?: string } } }).cert;
      const names =
        cert?.subjectaltname
          ?.split(', ')
          .map((n) => n.replace(/^(DNS|IP Address):/, ''))
          .join(', ') ??
        cert?.subject?.CN ??
        'other names';
      const asked = ctx.tls?.servername ?? ctx.host;
      return make(
        `${where}: TLS: the server's certificate is valid for ${names}, not ${asked}: connect by that name or pass --servername NAME (or --insecure to skip the check)`,
      );
    }
    case 'CERT_HAS_EXPIRED':
      return make(
        `${where}: TLS: the server's certificate has expired (CERT_HAS_EXPIRED): renew it on the broker, or pass --insecure to skip the check`,
      );
    case 'CERT_NOT_YET_VALID':
      return make(
        `${where}: TLS: the server's certificate is not valid yet (CERT_NOT_YET_VALID): check the clocks, or pass --insecure to skip the check`,
      );
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return make(
        `${where}: TLS handshake failed: the server did not answer in TLS (is ${ctx.target} a TLS port? plain MQTT is usually 1883, TLS 8883)`,
      );
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
      return make(
        `${where}: TLS: the broker rejected the client certificate (${raw}): pass --cert FILE --key FILE signed by a CA the broker trusts`,
      );
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
      return make(`${where}: TLS: no common protocol version with the broker (try another --tls-version)`);
    case 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL':
      return make(`${where}: TLS: the broker accepts none of the --alpn protocols offered`);
    default:
      break;
  }
  if (code !== undefined && UNKNOWN_CA.has(code)) {
    const fix =
      ctx.tls?.caFile !== undefined
        ? `it is not signed by the CA in ${ctx.tls.caFile}: pass the CA that signed it with --cafile FILE (or --insecure to skip the check)`
        : 'pass --cafile FILE (or --insecure to skip the check)';
    return make(`${where}: TLS: the server's certificate is not signed by a CA you trust (${code}): ${fix}`);
  }
  if (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_')) {
    return make(`${where}: TLS handshake failed: ${raw}`);
  }
  return make(`${where}: ${raw}`);
}

/** The message for a CONNACK that refused the connection. */
export function connackRefusal(
  reasonCode: number,
  version: ProtocolVersion,
  target: string,
  reasonString?: string,
): ConnectError {
  const what = `${formatReasonCode(reasonCode, 'CONNACK', version)}${reasonString ? ` (${reasonString})` : ''}`;
  let hint = '';
  if (version === 5 && reasonCode === 0x84) {
    hint = ': the broker does not speak MQTT 5; try -V 3.1.1';
  } else if (version !== 5 && reasonCode === 1) {
    hint =
      version === 4
        ? ': the broker does not speak MQTT 3.1.1; try -V 3.1 (or -V 5)'
        : ': the broker does not speak MQTT 3.1; try -V 3.1.1';
  } else if (reasonCode === 0x86 || (version !== 5 && reasonCode === 4)) {
    hint = ': check -u/-P (or MQ_USERNAME/MQ_PASSWORD, or the profile)';
  } else if (version === 5 && reasonCode === 0x8c) {
    hint = ': the broker does not offer that authentication method (--auth-method); try plain -u/-P';
  } else if (reasonCode === 0x85 || (version !== 5 && reasonCode === 2)) {
    hint = ': try another client id (-i) or let the broker assign one';
  }
  return new ConnectError(`connection refused by ${target}: ${what}${hint}`, { reasonCode });
}
