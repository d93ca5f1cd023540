/**
 * mq broker's own CLI pieces that are not flag definitions: the TLS listener flags read into
 * BrokerOptions, and what it prints (the listening lines scripts read, log lines escaped).
 */
import type { BrokerAddresses, BrokerOptions } from '../broker/index.js';
import { UsageError } from './errors.js';
import { escapeForTerminal } from './escape.js';
import { PEM_LIMIT, readFileBounded } from './io.js';
import type { ConfFlags } from './mosquitto-conf-flags.js';
import { parseInteger } from './values.js';

/**
 * What the broker writes to stderr, made safe for a terminal: client ids, user names, topics and
 * reason strings come from the network (before authentication too), so every log and trace line is
 * escaped (control characters, bidi overrides: escape.ts) before it is written, and a client cannot
 * set the terminal's title, clear it or forge a line. The packet text a trace line ends with is
 * render.ts's, which escapes every packet string before colouring it: `rendered()` notes it, and
 * `line()` keeps it (with its colours and, for --trace=full, its lines) and escapes the rest.
 */
export function terminalSink(): { rendered(text: string): string; line(line: string): string } {
  let last: string | undefined;
  return {
    rendered(text) {
      last = text;
      return text;
    },
    line(line) {
      const trusted = last !== undefined && line.endsWith(last) ? last : '';
      last = undefined;
      return escapeForTerminal(line.slice(0, line.length - trusted.length)) + trusted;
    },
  };
}

/** "mq broker listening on mqtt://HOST:PORT" for each listener (scripts read these lines). */
export function listeningLines(addresses: BrokerAddresses, wsPath: string): string[] {
  const show = (host: string) => (host.includes(':') ? `[${host}]` : host);
  const lines: string[] = [];
  if (addresses.tcp)
    lines.push(`mq broker listening on mqtt://${show(addresses.tcp.host)}:${addresses.tcp.port}`);
  if (addresses.ws)
    lines.push(`mq broker listening on ws://${show(addresses.ws.host)}:${addresses.ws.port}${wsPath}`);
  if (addresses.tls)
    lines.push(`mq broker listening on mqtts://${show(addresses.tls.host)}:${addresses.tls.port}`);
  if (addresses.wss)
    lines.push(`mq broker listening on wss://${show(addresses.wss.host)}:${addresses.wss.port}${wsPath}`);
  return lines;
}

function readPem(file: string, what: string): Buffer {
  return readFileBounded(file, PEM_LIMIT, what);
}

/** --tls-port, --wss-port and their certificate options. */
export function tlsOptions(f: ConfFlags, o: BrokerOptions): void {
  if (f.tlsPort !== undefined) o.tlsPort = parseInteger(f.tlsPort, '--tls-port', 0, 65_535);
  if (f.wssPort !== undefined) o.wssPort = parseInteger(f.wssPort, '--wss-port', 0, 65_535);
  if (f.tlsPort === undefined && f.wssPort === undefined) {
    const given = (['cert', 'key', 'cafile', 'requireCertificate', 'useIdentityAsUsername'] as const).find(
      (k) => f[k] !== undefined && f[k] !== false,
    );
    if (given !== undefined)
      throw new UsageError(
        `--${given.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --tls-port or --wss-port`,
      );
    return;
  }
  const which = f.tlsPort !== undefined ? '--tls-port' : '--wss-port';
  if (f.cert === undefined || f.key === undefined) throw new UsageError(`${which} needs --cert and --key`);
  o.cert = readPem(f.cert, '--cert');
  o.key = readPem(f.key, '--key');
  if (f.useIdentityAsUsername === true && f.requireCertificate !== true)
    throw new UsageError(
      '--use-identity-as-username needs --require-certificate (only a verified certificate names a user)',
    );
  if (f.requireCertificate === true) {
    if (f.cafile === undefined)
      throw new UsageError(
        '--require-certificate needs --cafile (the CA that signs the client certificates)',
      );
    o.requireCertificate = true;
    o.ca = readPem(f.cafile, '--cafile');
  }
  if (f.useIdentityAsUsername === true) o.useIdentityAsUsername = true;
}

/** Is the bind address reachable only from this machine? */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
