/**
 * Client certificates on the TLS listeners (mqtts and wss), as Mosquitto's cafile,
 * require_certificate and use_identity_as_username: with `requireCertificate` the TLS handshake
 * asks for a certificate and refuses a client without one signed by `ca` (nothing reaches MQTT);
 * with `useIdentityAsUsername` the certificate's subject CN is the connection's user name (for the
 * ACL), and the CONNECT's user name and password are neither needed nor checked.
 */
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { BrokerOptions } from './options.js';

/** node:tls server options of the TLS listeners. */
export function tlsServerOptions(o: BrokerOptions): TlsOptions {
  if (o.cert === undefined || o.key === undefined) throw new Error('a TLS listener needs cert and key');
  const settings: TlsOptions = { cert: o.cert, key: o.key };
  if (o.requireCertificate === true || o.useIdentityAsUsername === true) {
    if (o.ca === undefined)
      throw new Error('requiring client certificates needs the CA (ca) that signs them');
    settings.ca = o.ca;
    settings.requestCert = true;
    settings.rejectUnauthorized = true;
  }
  return settings;
}

/** The subject CN of the client certificate verified during the handshake ('' when there is none). */
export function certificateUser(socket: TLSSocket): string {
  if (!socket.authorized) return '';
  const cn: string | string[] | undefined = socket.getPeerCertificate().subject?.CN;
  // Several CN attributes: the first, as Mosquitto takes it.
  return (Array.isArray(cn) ? cn[0] : cn) ?? '';
}
