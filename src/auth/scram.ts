/**
 * SCRAM (RFC 5802; SCRAM-SHA-256 is RFC 7677, SCRAM-SHA-512 follows the same rules with SHA-512):
 * the client and server sides of one exchange as state machines over strings, no I/O.
 *
 *   client-first   n,,n=user,r=<client nonce>
 *   server-first   r=<client nonce><server nonce>,s=<salt>,i=<iterations>
 *   client-final   c=biws,r=<nonce>,p=<ClientProof>
 *   server-final   v=<ServerSignature>            (or e=<error>)
 *
 * The server keeps only StoredKey and ServerKey per user (never the password). Channel binding
 * (the -PLUS variants) and authorization identities other than the user itself are not supported.
 * SASLprep (RFC 4013) is applied to user names and passwords: mapping, NFKC and the prohibited
 * characters; the bidirectional-text rules and unassigned code points are not checked.
 */
import type * as NodeCrypto from 'node:crypto';
import { createRequire } from 'node:module';
import { escapeForTerminal } from '../cli/escape.js';

let loadedCrypto: typeof NodeCrypto | undefined;
/**
 * node:crypto, loaded on first use: every mq pub and sub reaches this module (the client's
 * enhanced authentication) but uses it only with --auth-method, and loading node:crypto costs a
 * one-shot command ~3 ms of its ~80.
 */
function crypto(): typeof NodeCrypto {
  loadedCrypto ??= createRequire(import.meta.url)('node:crypto') as typeof NodeCrypto;
  return loadedCrypto;
}

/** The Authentication Method names on the wire (as EMQX and MQTTX name them). */
export const SCRAM_METHODS = ['SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;
export type ScramMethod = (typeof SCRAM_METHODS)[number];

const DIGEST: Record<ScramMethod, { hash: string; length: number }> = {
  'SCRAM-SHA-1': { hash: 'sha1', length: 20 },
  'SCRAM-SHA-256': { hash: 'sha256', length: 32 },
  'SCRAM-SHA-512': { hash: 'sha512', length: 64 },
};

/** RFC 7677 §4: at least 4096 iterations. */
export const DEFAULT_ITERATIONS = 4096;
/** More than this from a server is refused: a hostile server must not make a client hash for minutes. */
export const MAX_ITERATIONS = 1_000_000;

export function isScramMethod(name: string): name is ScramMethod {
  return (SCRAM_METHODS as readonly string[]).includes(name);
}

/** What a server stores for one user and one method (RFC 5802 §3): enough to verify, not to log in. */
export interface ScramCredentials {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Why an exchange failed; `serverError` is the RFC 5802 `e=` value a server would answer with. */
export class ScramError extends Error {
  override name = 'ScramError';
  constructor(
    message: string,
    readonly serverError: string = 'other-error',
  ) {
    super(message);
  }
}

// ---- the primitives of RFC 5802 §3 ------------------------------------------------------------

function hmac(method: ScramMethod, key: Buffer, text: string | Buffer): Buffer {
  return crypto().createHmac(DIGEST[method].hash, key).update(text).digest();
}

function hash(method: ScramMethod, data: Buffer): Buffer {
  return crypto().createHash(DIGEST[method].hash).update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Normalize(password), with the password as it is when SASLprep refuses it (as PostgreSQL does). */
function normalizePassword(password: string): string {
  try {
    return saslPrep(password);
  } catch {
    return password;
  }
}

/** SaltedPassword = Hi(Normalize(password), salt, i): PBKDF2 with the method's HMAC. */
export function saltedPassword(
  method: ScramMethod,
  password: string,
  salt: Buffer,
  iterations: number,
): Buffer {
  const d = DIGEST[method];
  return crypto().pbkdf2Sync(normalizePassword(password), salt, iterations, d.length, d.hash);
}

/** saltedPassword on the thread pool: a client's connect timeout keeps running meanwhile. */
export function saltedPasswordAsync(
  method: ScramMethod,
  password: string,
  salt: Buffer,
  iterations: number,
): Promise<Buffer> {
  const d = DIGEST[method];
  return new Promise((resolve, reject) => {
    crypto().pbkdf2(normalizePassword(password), salt, iterations, d.length, d.hash, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** StoredKey and ServerKey from a SaltedPassword (which may come from a password file). */
export function credentialsFromSalted(
  method: ScramMethod,
  salted: Buffer,
  salt: Buffer,
  iterations: number,
): ScramCredentials {
  const clientKey = hmac(method, salted, 'Client Key');
  return {
    salt,
    iterations,
    storedKey: hash(method, clientKey),
    serverKey: hmac(method, salted, 'Server Key'),
  };
}

/** A user's credentials for `method` from the password: a random 16-byte salt unless one is given. */
export function deriveCredentials(
  method: ScramMethod,
  password: string,
  iterations = DEFAULT_ITERATIONS,
  salt: Buffer = crypto().randomBytes(16),
): ScramCredentials {
  return credentialsFromSalted(method, saltedPassword(method, password, salt, iterations), salt, iterations);
}

/** Does `password` match stored credentials (a plain CONNECT checked against a SCRAM verifier)? */
export function verifyPassword(method: ScramMethod, creds: ScramCredentials, password: string): boolean {
  const got = credentialsFromSalted(
    method,
    saltedPassword(method, password, creds.salt, creds.iterations),
    creds.salt,
    creds.iterations,
  );
  return (
    got.storedKey.length === creds.storedKey.length &&
    crypto().timingSafeEqual(got.storedKey, creds.storedKey)
  );
}

// ---- messages -------------------------------------------------------------------------------

/** `a=1,b=2` -> [['a','1'], ['b','2']]; every attribute is one letter, '=', a value. */
function attributes(message: string, what: string): [string, string][] {
  if (message === '') throw new ScramError(`${what} is empty`, 'invalid-encoding');
  return message.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part))
      throw new ScramError(`${what}: '${clip(part)}' is not an attribute`, 'invalid-encoding');
    return [part[0]!, part.slice(2)];
  });
}

/** The value of attribute `key` at `index`, or a ScramError naming what is missing. */
function attr(attrs: [string, string][], index: number, key: string, what: string): string {
  const a = attrs[index];
  if (a === undefined || a[0] !== key) {
    throw new ScramError(`${what}: expected ${key}= at attribute ${index + 1}`, 'invalid-encoding');
  }
  return a[1];
}

/** A mandatory extension (m=) cannot be understood, so the exchange fails (RFC 5802 §5.1). */
function refuseExtension(attrs: [string, string][], what: string): void {
  if (attrs[0]?.[0] === 'm')
    throw new ScramError(`${what}: mandatory extension m= is not supported`, 'extensions-not-supported');
}

/** A nonce: printable ASCII but ',' (RFC 5802 §7). */
function checkNonce(nonce: string, what: string): void {
  if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce))
    throw new ScramError(`${what}: invalid nonce`, 'invalid-encoding');
}

function base64(value: string, what: string): Buffer {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) {
    throw new ScramError(`${what} is not base64`, 'invalid-encoding');
  }
  return Buffer.from(value, 'base64');
}

/** Network text for an error message: cut, control characters escaped (it may reach a terminal). */
function clip(text: string): string {
  const cut = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return escapeForTerminal(cut);
}

/** saslname (RFC 5802 §7): ',' and '=' as =2C and =3D. */
export function escapeSaslName(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

/** The user name in a saslname; undefined when an '=' is not =2C or =3D. */
export function unescapeSaslName(text: string): string | undefined {
  if (/=(?!2C|3D)/.test(text)) return undefined;
  return text.replaceAll('=2C', ',').replaceAll('=3D', '=');
}

function nonce(): string {
  return crypto().randomBytes(18).toString('base64');
}

// ---- SASLprep (RFC 4013) --------------------------------------------------------------------

/** RFC 3454 B.1: mapped to nothing (and U+FE00-U+FE0F, variation selectors). */
const MAP_TO_NOTHING = new Set([
  0xad, 0x34f, 0x1806, 0x180b, 0x180c, 0x180d, 0x200b, 0x200c, 0x200d, 0x2060, 0xfeff,
]);
/** RFC 3454 C.1.2: non-ASCII spaces, mapped to SPACE. */
const NON_ASCII_SPACE = new Set([0xa0, 0x1680, 0x202f, 0x205f, 0x3000]);

/** One code point as SASLprep maps it: to nothing, to a space, or as it is. */
function mapCodePoint(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (MAP_TO_NOTHING.has(cp) || (cp >= 0xfe00 && cp <= 0xfe0f)) return '';
  if (NON_ASCII_SPACE.has(cp) || (cp >= 0x2000 && cp <= 0x200a)) return ' ';
  return ch;
}

/**
 * Prohibited output (RFC 3454 tables C.2 to C.9): controls, private use, non-characters,
 * surrogates, characters inappropriate for plain text or changing display, tagging characters.
 */
function prohibited(cp: number): boolean {
  if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f)) return true; // C.2.1, C.2.2
  if ((cp & 0xfffe) === 0xfffe || (cp >= 0xfdd0 && cp <= 0xfdef)) return true; // C.4
  if (cp >= 0xd800 && cp <= 0xdfff) return true; // C.5 (a lone surrogate)
  if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000) return true; // C.3
  if (cp >= 0xfff9 && cp <= 0xfffd) return true; // C.6, C.2.2
  if (cp >= 0x2ff0 && cp <= 0x2ffb) return true; // C.7
  if (cp >= 0xe0001 && cp <= 0xe007f) return true; // C.9 (tags; E0001 and E0020-E007F)
  if (cp >= 0x1d173 && cp <= 0x1d17a) return true; // C.2.2 musical symbols
  return PROHIBITED_BMP.has(cp);
}

/** The scattered ones: C.2.2, C.8 (and C.2.2's 200C/200D, mapped away before this check anyway). */
const PROHIBITED_BMP = new Set([
  0x0340, 0x0341, 0x06dd, 0x070f, 0x180e, 0x200c, 0x200d, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b,
  0x202c, 0x202d, 0x202e, 0x2060, 0x2061, 0x2062, 0x2063, 0x206a, 0x206b, 0x206c, 0x206d, 0x206e, 0x206f,
  0xfeff,
]);

/** SASLprep: map, normalize (NFKC), refuse prohibited characters. Throws ScramError. */
export function saslPrep(text: string): string {
  const mapped = Array.from(text, mapCodePoint).join('').normalize('NFKC');
  for (const ch of mapped) {
    const cp = ch.codePointAt(0) ?? 0;
    if (prohibited(cp)) {
      throw new ScramError(
        `prohibited character U+${cp.toString(16).toUpperCase().padStart(4, '0')} (SASLprep)`,
      );
    }
  }
  return mapped;
}

// ---- the client -----------------------------------------------------------------------------

export interface ScramClientOptions {
  /** The client nonce (tests use the RFC's); random otherwise. */
  nonce?: string;
  /** Fewest iterations accepted from a server (default 4096, RFC 7677 §4). */
  minIterations?: number;
  /** Where the SaltedPassword comes from when many exchanges share a user (a load generator). */
  salted?: SaltedPasswords;
}

/**
 * The SaltedPassword of one user and method, by (salt, iterations), for clients that log in over
 * and over (mq bench): PBKDF2 runs once per salt, not once per connection (a server such as mq
 * broker keeps one salt per user). Concurrent exchanges wait for the same derivation. Bounded: past
 * `max` salts (a server with a salt per exchange) each is derived and not kept.
 */
export class SaltedPasswords {
  /** Derivations so far (tests; a run's report of how often PBKDF2 ran). */
  derivations = 0;
  private readonly kept = new Map<string, Promise<Buffer>>();

  constructor(
    readonly method: ScramMethod,
    private readonly password: string,
    private readonly max = 64,
  ) {}

  get(salt: Buffer, iterations: number): Promise<Buffer> {
    const key = `${iterations}:${salt.toString('base64')}`;
    const known = this.kept.get(key);
    if (known !== undefined) return known;
    this.derivations++;
    const derived = saltedPasswordAsync(this.method, this.password, salt, iterations);
    if (this.kept.size < this.max) {
      this.kept.set(key, derived);
      // A failed derivation is not kept: the next exchange tries again.
      derived.catch(() => this.kept.delete(key));
    }
    return derived;
  }
}

/**
 * One client exchange: clientFirst(), then clientFinal(server-first), then verifyServerFinal(),
 * which throws unless the server proved it holds the user's credentials.
 */
export class ScramClient {
  readonly method: ScramMethod;
  private readonly username: string;
  private readonly password: string;
  private readonly clientNonce: string;
  private readonly minIterations: number;
  private readonly salted: SaltedPasswords | undefined;
  private bare = '';
  private expectedSignature: Buffer | undefined;
  private step: 'first' | 'final' | 'verify' | 'done' = 'first';

  constructor(method: ScramMethod, username: string, password: string, options: ScramClientOptions = {}) {
    this.method = method;
    this.username = saslPrep(username);
    this.password = password;
    this.clientNonce = options.nonce ?? nonce();
    this.minIterations = options.minIterations ?? DEFAULT_ITERATIONS;
    if (options.salted !== undefined && options.salted.method !== method)
      throw new ScramError(`the salted passwords are ${options.salted.method}'s, not ${method}'s`);
    this.salted = options.salted;
  }

  /** client-first-message: GS2 header 'n,,' (no channel binding, no authzid), user, nonce. */
  clientFirst(): string {
    if (this.step !== 'first') throw new ScramError('clientFirst called twice');
    this.step = 'final';
    this.bare = `n=${escapeSaslName(this.username)},r=${this.clientNonce}`;
    return `n,,${this.bare}`;
  }

  /** client-final-message for the server's server-first-message. Throws ScramError. */
  async clientFinal(serverFirst: string): Promise<string> {
    if (this.step !== 'final') throw new ScramError('clientFinal out of order');
    this.step = 'verify';
    const what = 'server-first-message';
    const attrs = attributes(serverFirst, what);
    if (attrs[0]?.[0] === 'e') throw new ScramError(`the server refused: ${clip(attrs[0][1])}`, attrs[0][1]);
    refuseExtension(attrs, what);
    const combined = attr(attrs, 0, 'r', what);
    checkNonce(combined, what);
    if (!combined.startsWith(this.clientNonce) || combined.length === this.clientNonce.length) {
      throw new ScramError(`${what}: the nonce does not extend the client's`);
    }
    const salt = base64(attr(attrs, 1, 's', what), `${what} salt`);
    if (salt.length === 0) throw new ScramError(`${what}: empty salt`);
    const iterText = attr(attrs, 2, 'i', what);
    const iterations = /^[1-9][0-9]{0,9}$/.test(iterText) ? Number(iterText) : Number.NaN;
    if (!(iterations >= this.minIterations && iterations <= MAX_ITERATIONS)) {
      throw new ScramError(
        `${what}: iteration count ${clip(iterText)} is outside ${this.minIterations}..${MAX_ITERATIONS}`,
      );
    }
    const salted = await (this.salted?.get(salt, iterations) ??
      saltedPasswordAsync(this.method, this.password, salt, iterations));
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${combined}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const clientKey = hmac(this.method, salted, 'Client Key');
    const clientSignature = hmac(this.method, hash(this.method, clientKey), authMessage);
    this.expectedSignature = hmac(this.method, hmac(this.method, salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${xor(clientKey, clientSignature).toString('base64')}`;
  }

  /** Checks server-final-message: throws ScramError on `e=` or a ServerSignature that is not right. */
  verifyServerFinal(serverFinal: string): void {
    const expected = this.expectedSignature;
    if (this.step !== 'verify' || expected === undefined)
      throw new ScramError('verifyServerFinal out of order');
    this.step = 'done';
    const what = 'server-final-message';
    const attrs = attributes(serverFinal, what);
    if (attrs[0]?.[0] === 'e') throw new ScramError(`the server refused: ${clip(attrs[0][1])}`, attrs[0][1]);
    const signature = base64(attr(attrs, 0, 'v', what), `${what} signature`);
    if (signature.length !== expected.length || !crypto().timingSafeEqual(signature, expected)) {
      throw new ScramError("the server's signature is wrong: it does not know the user's credentials");
    }
  }
}

// ---- the server -----------------------------------------------------------------------------

/** Credentials of a user for a method, or undefined when there are none. */
export type CredentialLookup = (username: string, method: ScramMethod) => ScramCredentials | undefined;

export interface ScramServerOptions {
  /** The server's part of the nonce (tests use the RFC's); random otherwise. */
  nonce?: string;
  /** Key for the made-up salt of unknown users, so that the answer does not tell who exists. */
  fakeSaltKey?: Buffer;
}

/** What serverFinal decided: the user is who they claim (ok), and the server-final-message to send. */
export interface ScramVerdict {
  ok: boolean;
  serverFinal: string;
  /** Why it failed, for the log (the client is told only `e=invalid-proof`). */
  reason?: string;
}

/** One server exchange: serverFirst(client-first), then serverFinal(client-final). */
export class ScramServer {
  readonly method: ScramMethod;
  /** The authenticated (claimed, until serverFinal says ok) user name, after serverFirst. */
  username: string | undefined;
  private readonly lookup: CredentialLookup;
  private readonly serverNonce: string;
  private readonly fakeSaltKey: Buffer;
  private creds: ScramCredentials | undefined;
  private gs2Header = '';
  private combinedNonce = '';
  private firstBare = '';
  private serverFirstMessage = '';
  private step: 'first' | 'final' | 'done' = 'first';

  constructor(method: ScramMethod, lookup: CredentialLookup, options: ScramServerOptions = {}) {
    this.method = method;
    this.lookup = lookup;
    this.serverNonce = options.nonce ?? nonce();
    this.fakeSaltKey = options.fakeSaltKey ?? crypto().randomBytes(32);
  }

  /** server-first-message for a client-first-message. Throws ScramError when it is malformed. */
  serverFirst(clientFirst: string): string {
    if (this.step !== 'first') throw new ScramError('serverFirst out of order');
    this.step = 'final';
    const what = 'client-first-message';
    // gs2-header: gs2-cbind-flag "," [authzid] ","
    const m = /^(n|y|p=[A-Za-z0-9.-]+),(a=[^,]*)?,(.*)$/s.exec(clientFirst);
    if (m === null) throw new ScramError(`${what}: no GS2 header (n,,)`, 'invalid-encoding');
    if (m[1]!.startsWith('p=')) {
      throw new ScramError(
        `${what}: channel binding (${clip(m[1]!)}) is not supported`,
        'channel-binding-not-supported',
      );
    }
    const bare = m[3]!;
    const attrs = attributes(bare, what);
    refuseExtension(attrs, what);
    const name = unescapeSaslName(attr(attrs, 0, 'n', what));
    if (name === undefined || name === '')
      throw new ScramError(`${what}: invalid user name`, 'invalid-username-encoding');
    const clientNonce = attr(attrs, 1, 'r', what);
    checkNonce(clientNonce, what);
    let username: string;
    try {
      username = saslPrep(name);
    } catch (err) {
      throw new ScramError(`${what}: user name: ${(err as Error).message}`, 'invalid-username-encoding');
    }
    if (m[2] !== undefined && unescapeSaslName(m[2].slice(2)) !== username) {
      throw new ScramError(
        `${what}: authorization as another user is not supported`,
        'invalid-username-encoding',
      );
    }
    this.username = username;
    this.gs2Header = `${m[1]},${m[2] ?? ''},`;
    this.firstBare = bare;
    this.combinedNonce = clientNonce + this.serverNonce;
    this.creds = this.lookup(username, this.method);
    const salt =
      this.creds?.salt ??
      crypto().createHmac('sha256', this.fakeSaltKey).update(username).digest().subarray(0, 16);
    const iterations = this.creds?.iterations ?? DEFAULT_ITERATIONS;
    this.serverFirstMessage = `r=${this.combinedNonce},s=${salt.toString('base64')},i=${iterations}`;
    return this.serverFirstMessage;
  }

  /**
   * Verifies a client-final-message: `ok` with `v=ServerSignature` when the proof is right, else
   * `e=invalid-proof`. Throws ScramError when the message is malformed or does not belong to
   * this exchange.
   */
  serverFinal(clientFinal: string): ScramVerdict {
    if (this.step !== 'final') throw new ScramError('serverFinal out of order');
    this.step = 'done';
    const what = 'client-final-message';
    const attrs = attributes(clientFinal, what);
    const binding = base64(attr(attrs, 0, 'c', what), `${what} channel binding`);
    if (binding.toString('latin1') !== this.gs2Header) {
      throw new ScramError(
        `${what}: channel binding data does not repeat the GS2 header`,
        'channel-bindings-dont-match',
      );
    }
    if (attr(attrs, 1, 'r', what) !== this.combinedNonce)
      throw new ScramError(`${what}: wrong nonce`, 'other-error');
    const last = attrs.at(-1);
    if (last === undefined || last[0] !== 'p' || attrs.length < 3)
      throw new ScramError(`${what}: no proof (p=)`, 'invalid-encoding');
    const proof = base64(last[1], `${what} proof`);
    const withoutProof = clientFinal.slice(0, clientFinal.length - last[1].length - 3);
    const creds = this.creds;
    const fail = (reason: string): ScramVerdict => ({ ok: false, serverFinal: 'e=invalid-proof', reason });
    if (creds === undefined) return fail(`no ${this.method} credentials for user '${this.username}'`);
    if (proof.length !== creds.storedKey.length) return fail('proof of the wrong length');
    const authMessage = `${this.firstBare},${this.serverFirstMessage},${withoutProof}`;
    const clientSignature = hmac(this.method, creds.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    // Constant time: the comparison takes as long wherever the first differing byte is.
    if (!crypto().timingSafeEqual(hash(this.method, clientKey), creds.storedKey))
      return fail('wrong password');
    return {
      ok: true,
      serverFinal: `v=${hmac(this.method, creds.serverKey, authMessage).toString('base64')}`,
    };
  }
}
