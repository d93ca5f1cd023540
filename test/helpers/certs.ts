/**
 * A test PKI made with openssl at test time, in `dir`: self-signed CAs, and server and client
 * certificates signed by one of them (EC P-256). Files are `${name}.pem` and `${name}.key`.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function testPki(dir: string) {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  /** A key and a certificate for `subject` with the extensions `ext`, signed by the CA `ca`. */
  const signed = (name: string, subject: string, ext: string, ca: string, days: number) => {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    const signer = ['-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial'];
    const out = ['-out', `${name}.pem`, '-days', String(days), '-extfile', `${name}.ext`];
    openssl(['x509', '-req', '-in', `${name}.csr`, ...signer, ...out]);
  };
  return {
    /** A self-signed CA, valid for 2 days. */
    ca(name: string, commonName: string): void {
      const out = ['-keyout', `${name}.key`, '-out', `${name}.pem`];
      openssl(['req', '-x509', ...EC, ...out, '-days', '2', '-subj', `/CN=${commonName}`]);
    },
    /**
     * A server certificate for `subjectAltName` (e.g. 'DNS:localhost,IP:127.0.0.1'), signed by the
     * CA `ca`; `days: -1` makes one that expired before it was issued.
     */
    server(name: string, subjectAltName: string, { ca = 'ca', days = 2 } = {}): void {
      signed(name, `/CN=${name}`, `subjectAltName=${subjectAltName}`, ca, days);
    },
    /**
     * A client certificate (TLS client authentication) with subject CN `commonName`, signed by the
     * CA `ca`. `subject` replaces the whole subject (e.g. '/O=no-cn' for one without a CN).
     */
    client(name: string, commonName: string, { ca = 'ca', subject = `/CN=${commonName}` } = {}): void {
      signed(name, subject, 'extendedKeyUsage=clientAuth', ca, 2);
    },
  };
}
