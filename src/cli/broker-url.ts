/**
 * Broker URLs as -L, MQ_URL, --to and --bridge take them: `mqtt://user:pass@host:port/topic`,
 * `mqtts://`, `ws://`, `wss://`, `unix:///path`; and a URL as messages show it (password hidden).
 */
import type { TransportKind } from '../client/index.js';
import { UsageError } from './errors.js';
import { parseInteger } from './values.js';

export interface ParsedUrl {
  transport: TransportKind;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  /** ws path, or the unix socket path. */
  path?: string;
  /** mqtt/mqtts: the path as a topic. */
  topic?: string;
}

/** URL schemes and their transport (a Map: the scheme comes from the user). */
const SCHEMES = new Map<string, TransportKind>([
  ['mqtt', 'mqtt'],
  ['tcp', 'mqtt'],
  ['mqtts', 'mqtts'],
  ['ssl', 'mqtts'],
  ['tls', 'mqtts'],
  ['ws', 'ws'],
  ['wss', 'wss'],
  ['unix', 'unix'],
]);

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A URL as messages show it: the password in its user info replaced by `***`
 * (`mqtt://alice:***@host`), with or without a scheme.
 */
export function redactUrl(text: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)?(.*)$/is.exec(text);
  const scheme = m?.[1] ?? '';
  const rest = m?.[2] ?? text;
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const at = authority.lastIndexOf('@');
  const colon = authority.indexOf(':');
  if (at < 0 || colon < 0 || colon > at) return text;
  return `${scheme}${authority.slice(0, colon)}:***${rest.slice(at)}`;
}

/**
 * `mqtt://user:pass@host:port/topic`, `mqtts://...`, `ws://host:port/path`, `wss://...`,
 * `unix:///path/to.sock`. The topic keeps `#` and `+` as typed (not a URL fragment). A message
 * that quotes the URL shows it without its password (redactUrl).
 */
export function parseBrokerUrl(text: string, what = '-L'): ParsedUrl {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `${what}: '${redactUrl(text)}' is not a broker URL (expected e.g. mqtt://host:1883 or mqtts://host)`,
    );
  }
  const scheme = m[1]!.toLowerCase();
  const transport = SCHEMES.get(scheme);
  if (transport === undefined) {
    throw new UsageError(`${what}: unknown scheme '${scheme}://' (use mqtt, mqtts, ws, wss or unix)`);
  }
  let rest = m[2]!;
  if (transport === 'unix') {
    if (rest === '')
      throw new UsageError(`${what}: '${redactUrl(text)}' names no socket path (unix:///path/to/socket)`);
    return { transport, path: decode(rest) };
  }
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const pathPart = slash >= 0 ? rest.slice(slash) : '';
  rest = authority;
  const out: ParsedUrl = { transport };
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) {
      out.username = decode(userinfo.slice(0, colon));
      out.password = decode(userinfo.slice(colon + 1));
    } else {
      out.username = decode(userinfo);
    }
  }
  const hp = /^\[([^\]]+)\](?::(\d*))?$/.exec(rest) ?? /^([^:[\]]*)(?::(\d*))?$/.exec(rest);
  if (!hp) throw new UsageError(`${what}: cannot read a host and port in '${redactUrl(text)}'`);
  if (hp[1] !== undefined && hp[1] !== '') out.host = hp[1];
  if (hp[2] !== undefined && hp[2] !== '') out.port = parseInteger(hp[2], `${what} port`, 1, 65535);
  if (transport === 'ws' || transport === 'wss') {
    if (pathPart !== '' && pathPart !== '/') out.path = pathPart;
  } else if (pathPart.length > 1) {
    out.topic = decode(pathPart.slice(1));
  }
  return out;
}
