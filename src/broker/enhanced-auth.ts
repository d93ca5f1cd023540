/**
 * Enhanced authentication (MQTT 5.0 section 4.12) on the broker: SCRAM-SHA-1, SCRAM-SHA-256 and
 * SCRAM-SHA-512 (src/auth/scram.ts) for the users of --auth and the `$scram$` lines of --passwd.
 * An --auth user's SCRAM credentials are derived from the password when the broker starts: a
 * random salt per user and method, --scram-iterations (default 4096), kept for the broker's life
 * so the salt a user is given never changes. A `$scram$` line
 * holds StoredKey and ServerKey for the three methods (no password), as RFC 5802 asks; mq's
 * scrypt lines cannot serve SCRAM (scrypt is not PBKDF2, and the password is not kept).
 *
 * An AuthExchange is one exchange on one connection (at CONNECT, or a re-authentication); the
 * packet handlers (handlers/auth.ts) drive it. Nothing here runs for a connection that names no
 * Authentication Method: the AUTH path stays off the hot path.
 */
import { randomBytes } from 'node:crypto';
import {
  DEFAULT_ITERATIONS,
  deriveCredentials,
  isScramMethod,
  SCRAM_METHODS,
  type ScramCredentials,
  ScramError,
  type ScramMethod,
  ScramServer,
  saslPrep,
  verifyPassword,
} from '../auth/scram.js';
import { ReasonCode } from '../protocol/index.js';
import { quoteTopic } from '../protocol/topic.js';

/** The Authentication Methods mq broker offers. */
export const BROKER_AUTH_METHODS: readonly string[] = SCRAM_METHODS;

/** A password file line's SCRAM credentials: one salt and iteration count, a key pair per method. */
export type ScramEntry = ReadonlyMap<ScramMethod, ScramCredentials>;

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * A password file line for SCRAM and plain logins alike (the password is not in it):
 * `user:$scram$ITERATIONS$SALT$K1$K256$K512`, each K `StoredKey:ServerKey` of SCRAM-SHA-1, -256
 * and -512, every value base64.
 */
export function makeScramPasswdLine(user: string, password: string, iterations = DEFAULT_ITERATIONS): string {
  if (user.includes(':')) throw new Error(`a user name cannot contain ':' (${user})`);
  const salt = randomBytes(16);
  const keys = SCRAM_METHODS.map((m) => {
    const c = deriveCredentials(m, password, iterations, salt);
    return `${c.storedKey.toString('base64')}:${c.serverKey.toString('base64')}`;
  });
  return `${user}:$scram$${iterations}$${salt.toString('base64')}$${keys.join('$')}`;
}

/** The credentials of a `$scram$...` line (what follows `user:`); throws with `where` in the message. */
export function parseScramPasswd(value: string, where: string): ScramEntry {
  // ['', 'scram', iterations, salt, k1, k256, k512]
  const parts = value.split('$');
  const iterations = Number(parts[2]);
  const salt = parts[3] ?? '';
  if (parts.length !== 7 || !Number.isInteger(iterations) || iterations < 1 || !B64.test(salt)) {
    throw new Error(
      `${where}: expected user:$scram$ITERATIONS$SALT$K1$K256$K512 (make one with --make-passwd user:pass --scram)`,
    );
  }
  const entry = new Map<ScramMethod, ScramCredentials>();
  SCRAM_METHODS.forEach((method, i) => {
    const [stored = '', server = ''] = parts[4 + i]!.split(':');
    const creds: ScramCredentials = {
      salt: Buffer.from(salt, 'base64'),
      iterations,
      storedKey: Buffer.from(stored, 'base64'),
      serverKey: Buffer.from(server, 'base64'),
    };
    const length = credentialsLength(method);
    if (
      !B64.test(stored) ||
      !B64.test(server) ||
      creds.storedKey.length !== length ||
      creds.serverKey.length !== length
    ) {
      throw new Error(`${where}: the ${method} keys are not two base64 keys of ${length} bytes`);
    }
    entry.set(method, creds);
  });
  return entry;
}

/** A plain CONNECT password checked against a `$scram$` line (with SCRAM-SHA-256's keys). */
export function checkScramPasswd(entry: ScramEntry, password: string): boolean {
  const creds = entry.get('SCRAM-SHA-256');
  return creds !== undefined && verifyPassword('SCRAM-SHA-256', creds, password);
}

function credentialsLength(method: ScramMethod): number {
  return method === 'SCRAM-SHA-1' ? 20 : method === 'SCRAM-SHA-256' ? 32 : 64;
}

/** The SCRAM credentials of the broker's users. */
export class ScramUsers {
  /** SASLprep(user name) -> the user's credentials for each method. */
  private readonly users = new Map<string, ScramEntry>();
  /** Unknown users are given a salt made from their name with this key (RFC 5802 §5.1: tell nobody who exists). */
  readonly fakeSaltKey = randomBytes(32);

  /**
   * The --auth users' credentials are derived here, at start, so that no login waits for PBKDF2
   * (about 6 ms per user for the three methods at 4096 iterations on this machine): a random
   * salt per user and method. The password file's `$scram$` users come as they are.
   */
  constructor(
    users: Record<string, string> | undefined,
    iterations = DEFAULT_ITERATIONS,
    fileUsers: ReadonlyMap<string, ScramEntry> = new Map(),
  ) {
    for (const [name, entry] of fileUsers) this.add(name, () => entry);
    for (const [name, password] of Object.entries(users ?? {})) {
      this.add(
        name,
        () => new Map(SCRAM_METHODS.map((m) => [m, deriveCredentials(m, password, iterations)])),
      );
    }
  }

  private add(name: string, credentials: () => ScramEntry): void {
    let prepared: string;
    try {
      prepared = saslPrep(name);
    } catch {
      return; // A name SASLprep refuses cannot be sent in SCRAM: that user logs in with a password only.
    }
    this.users.set(prepared, credentials());
  }

  /** Any user who can authenticate with SCRAM. */
  get enabled(): boolean {
    return this.users.size > 0;
  }

  readonly lookup = (username: string, method: ScramMethod): ScramCredentials | undefined =>
    this.users.get(username)?.get(method);
}

/** Why an exchange ended without success: a v5 CONNACK reason code, and the words for the log. */
export interface AuthFailure {
  code: number;
  why: string;
}

/** What an exchange step produced: data for the client (AUTH 0x18, or the final CONNACK / AUTH 0x00). */
export interface AuthStep {
  data: Buffer;
}

/** The user an exchange proved, with the server-final-message for the client. */
export interface AuthSuccess {
  username: string;
  data: Buffer;
}

/** One enhanced authentication exchange on a connection. */
export class AuthExchange {
  readonly method: ScramMethod;
  private readonly server: ScramServer;
  /** Set for the CONNECT's exchange: carries on with its admission once the user is proven. */
  resume: ((success: AuthSuccess) => void) | undefined = undefined;

  private constructor(method: ScramMethod, users: ScramUsers) {
    this.method = method;
    this.server = new ScramServer(method, users.lookup, { fakeSaltKey: users.fakeSaltKey });
  }

  /**
   * Starts an exchange for `method` with the client's first Authentication Data. `user`: the one
   * SCRAM must authenticate when it is known already (the CONNECT's User Name, the user of a
   * connection re-authenticating). The failure's code is the CONNACK one.
   */
  static start(
    users: ScramUsers,
    method: string,
    data: Buffer | undefined,
    user: string | undefined,
  ): { exchange: AuthExchange; step: AuthStep } | AuthFailure {
    // [MQTT-4.12.0-1] a method the server does not support: 0x8C.
    if (!isScramMethod(method)) {
      return {
        code: ReasonCode.BadAuthenticationMethod,
        why: `authentication method ${quoteTopic(method)} not supported (${SCRAM_METHODS.join(', ')} are)`,
      };
    }
    if (!users.enabled) {
      return {
        code: ReasonCode.BadAuthenticationMethod,
        why: `authentication method '${method}' needs users (--auth user:pass)`,
      };
    }
    const exchange = new AuthExchange(method, users);
    const text = scramText(data, 'client-first-message');
    if (typeof text !== 'string') return text;
    try {
      const serverFirst = exchange.server.serverFirst(text);
      const claimed = exchange.server.username;
      if (user !== undefined && claimed !== user) {
        return {
          code: ReasonCode.BadUserNameOrPassword,
          why: `${method} user '${claimed}' is not the connection's user ${quoteTopic(user)}`,
        };
      }
      return { exchange, step: { data: Buffer.from(serverFirst) } };
    } catch (err) {
      return malformed(method, err);
    }
  }

  /** The client's answer (client-final-message): the proven user, or why not. */
  finish(data: Buffer | undefined): AuthSuccess | AuthFailure {
    const text = scramText(data, 'client-final-message');
    if (typeof text !== 'string') return text;
    try {
      const verdict = this.server.serverFinal(text);
      if (!verdict.ok) {
        return {
          code: ReasonCode.BadUserNameOrPassword,
          why: `${this.method} failed for user '${this.server.username}': ${verdict.reason ?? 'invalid proof'}`,
        };
      }
      return { username: this.server.username!, data: Buffer.from(verdict.serverFinal) };
    } catch (err) {
      return malformed(this.method, err);
    }
  }
}

/** Authentication Data as the SCRAM message text it must be (UTF-8). */
function scramText(data: Buffer | undefined, what: string): string | AuthFailure {
  if (data === undefined || data.length === 0) {
    return { code: ReasonCode.NotAuthorized, why: `no Authentication Data: SCRAM needs the ${what}` };
  }
  const text = data.toString('utf8');
  if (!Buffer.from(text).equals(data)) {
    return { code: ReasonCode.NotAuthorized, why: `the ${what} is not UTF-8` };
  }
  return text;
}

function malformed(method: string, err: unknown): AuthFailure {
  if (!(err instanceof ScramError)) throw err;
  return { code: ReasonCode.NotAuthorized, why: `${method}: ${err.message}` };
}
