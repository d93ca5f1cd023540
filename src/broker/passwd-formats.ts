/**
 * Password file lines as Mosquitto's `mosquitto_passwd` writes them, so that a Mosquitto user's
 * password file works with `mq broker --passwd` as it is:
 *
 *   user:$6$SALT$HASH            -H sha512 (Mosquitto 1.6 and earlier): HASH = SHA-512(password || salt)
 *   user:$7$ITERATIONS$SALT$HASH -H sha512-pbkdf2 (Mosquitto 2.0's default, 101 iterations):
 *                                HASH = PBKDF2-HMAC-SHA512(password, salt, ITERATIONS, 64 bytes)
 *
 * SALT and HASH are base64 (12 and 64 bytes from mosquitto_passwd). A `$7$` hash is exactly
 * SCRAM-SHA-512's SaltedPassword (Hi() is PBKDF2 with the method's HMAC), so such a user can log in
 * with SCRAM-SHA-512 too. Mosquitto 2.1's `$argon2id$` lines are recognised and refused with a
 * hint: Node 20 has no Argon2.
 */
import { createHash, pbkdf2, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { credentialsFromSalted, type ScramCredentials } from '../auth/scram.js';

/** One `$6$` or `$7$` line's hash. */
export interface MosquittoHash {
  kind: 'sha512' | 'pbkdf2-sha512';
  /** 1 for `$6$`. */
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Far above mosquitto_passwd's 101: a login checks the password on the event loop (see verify). */
const MAX_PBKDF2_ITERATIONS = 1_000_000;

/** Is `value` (what follows `user:`) one of Mosquitto's hash formats (or one mq refuses by name)? */
export function isMosquittoHash(value: string): boolean {
  return value.startsWith('$6$') || value.startsWith('$7$') || value.startsWith('$argon2');
}

/** The hash of a `$6$...` / `$7$...` value; throws with `where` (file:line) in the message. */
export function parseMosquittoHash(value: string, where: string): MosquittoHash {
  if (value.startsWith('$argon2')) {
    throw new Error(
      `${where}: Argon2 hashes (mosquitto_passwd 2.1's default) are not supported: make the line with mosquitto_passwd -H sha512-pbkdf2, or mq broker --make-passwd`,
    );
  }
  const parts = value.split('$');
  if (value.startsWith('$6$')) {
    // ['', '6', salt, hash]
    const [, , salt = '', hash = ''] = parts;
    return checked({ kind: 'sha512', iterations: 1, ...decode(salt, hash) }, parts.length === 4, where);
  }
  // ['', '7', iterations, salt, hash]
  const [, , iterText = '', salt = '', hash = ''] = parts;
  const iterations = /^[1-9][0-9]{0,9}$/.test(iterText) ? Number(iterText) : 0;
  if (!(iterations >= 1 && iterations <= MAX_PBKDF2_ITERATIONS)) {
    throw new Error(
      `${where}: '$7$' needs an iteration count from 1 to ${MAX_PBKDF2_ITERATIONS}, got '${iterText.slice(0, 12)}'`,
    );
  }
  const h: MosquittoHash = { kind: 'pbkdf2-sha512', iterations, ...decode(salt, hash) };
  return checked(h, parts.length === 5, where);
}

function decode(salt: string, hash: string): { salt: Buffer; hash: Buffer } {
  return {
    salt: B64.test(salt) ? Buffer.from(salt, 'base64') : Buffer.alloc(0),
    hash: B64.test(hash) ? Buffer.from(hash, 'base64') : Buffer.alloc(0),
  };
}

function checked(h: MosquittoHash, fieldsOk: boolean, where: string): MosquittoHash {
  const format = h.kind === 'sha512' ? 'user:$6$SALT$HASH' : 'user:$7$ITERATIONS$SALT$HASH';
  if (!fieldsOk || h.salt.length === 0 || h.hash.length !== 64) {
    throw new Error(
      `${where}: expected ${format} (base64 salt, base64 64-byte SHA-512 hash) as mosquitto_passwd writes it`,
    );
  }
  return h;
}

/**
 * Does `password` match? Constant time in the comparison. `$7$` runs PBKDF2 synchronously: at
 * mosquitto_passwd's 101 iterations that is about 0.1 ms; a file with a much larger count would
 * hold the event loop for each new login (Authenticator caches verdicts for reconnects).
 */
export function verifyMosquittoHash(h: MosquittoHash, password: string): boolean {
  const got =
    h.kind === 'sha512'
      ? createHash('sha512').update(password, 'utf8').update(h.salt).digest()
      : pbkdf2Sync(Buffer.from(password, 'utf8'), h.salt, h.iterations, 64, 'sha512');
  return got.length === h.hash.length && timingSafeEqual(got, h.hash);
}

/**
 * verifyMosquittoHash off the event loop for `$7$` (PBKDF2 on the thread pool, as the broker's
 * other password checks): `done` is called later, never synchronously. The password is compared as
 * the bytes the client sent, as Mosquitto does.
 */
export function verifyMosquittoHashAsync(
  h: MosquittoHash,
  password: Buffer,
  done: (matched: boolean) => void,
): void {
  const compare = (got: Buffer): boolean => got.length === h.hash.length && timingSafeEqual(got, h.hash);
  if (h.kind === 'sha512') {
    const got = createHash('sha512').update(password).update(h.salt).digest();
    setImmediate(() => done(compare(got)));
    return;
  }
  pbkdf2(password, h.salt, h.iterations, 64, 'sha512', (err, got) => done(err === null && compare(got)));
}

/**
 * SCRAM-SHA-512 credentials of a `$7$` line (its hash is SCRAM's SaltedPassword for the same salt
 * and iteration count); undefined for `$6$`, which SCRAM cannot use. SCRAM applies SASLprep to the
 * password and mosquitto_passwd does not, so a password that SASLprep changes (non-ASCII spaces,
 * some compatibility characters) only works as a plain CONNECT password.
 */
export function scramCredentialsOf(h: MosquittoHash): ScramCredentials | undefined {
  if (h.kind !== 'pbkdf2-sha512') return undefined;
  return credentialsFromSalted('SCRAM-SHA-512', h.hash, h.salt, h.iterations);
}
