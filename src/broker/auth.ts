/**
 * Authentication (plain users; password file lines: scrypt, `$scram$`, mosquitto_passwd's `$6$`/`$7$`)
 * and access control (mosquitto's acl_file format plus the --deny-subscribe / --deny-publish shortcuts).
 */
import { isUtf8 } from 'node:buffer';
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { credentialsFromSalted, type ScramCredentials, saltedPasswordAsync } from '../auth/scram.js';
import { type Limit, readFileBounded } from '../cli/io.js';
import { matches, validateTopicFilter } from '../protocol/index.js';
import { parseScramPasswd, type ScramEntry } from './enhanced-auth.js';
import {
  isMosquittoHash,
  type MosquittoHash,
  parseMosquittoHash,
  scramCredentialsOf,
  verifyMosquittoHashAsync,
} from './passwd-formats.js';

const SCRYPT_N = 16_384;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const KEY_LENGTH = 32;

/** One password file line for `user`: `user:$scrypt$N$r$p$salt$hash` (salt and hash base64). */
export function makePasswdLine(user: string, password: string): string {
  if (user.includes(':')) throw new Error(`a user name cannot contain ':' (${user})`);
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, KEY_LENGTH, { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P });
  return `${user}:$scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

interface ScryptEntry {
  kind: 'scrypt';
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** A `$scram$` line checks a plain password through its SCRAM-SHA-256 credentials (PBKDF2). */
interface ScramVerifier {
  kind: 'scram';
  creds: ScramCredentials;
}

/** mosquitto_passwd's `$6$` / `$7$` lines (passwd-formats.ts). */
interface MosquittoEntry {
  kind: 'mosquitto';
  hash: MosquittoHash;
}

type PasswdEntry = ScryptEntry | ScramVerifier | MosquittoEntry;

/** What a password check decides: accepted, refused, or (the queue of checks full) not now. */
export type AuthVerdict = 'accepted' | 'refused' | 'busy';

/** A password check waiting for, or running, scrypt; cancel() when its connection is gone. */
export interface AuthJob {
  cancel(): void;
}

interface Job extends AuthJob {
  entry: PasswdEntry;
  /** false: the entry is the dummy of an unknown user (the check runs, the answer is no). */
  real: boolean;
  password: Buffer;
  /** Cache key of an accepted check. */
  key: string;
  done: (verdict: AuthVerdict) => void;
  cancelled: boolean;
}

/** Password checks waiting for scrypt beyond this are refused with Server busy (--max-auth-pending). */
export const DEFAULT_MAX_AUTH_PENDING = 64;
/** scrypt runs on libuv's thread pool: one core is left to the event loop (at most 4 run at once). */
const AUTH_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism() - 1));
const CACHE_LIMIT = 1000;

const sha256 = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();

/**
 * User names and passwords: --auth (plain) and --passwd (scrypt) users. A password is compared as
 * bytes (never decoded), in constant time: plain ones through their SHA-256 digests (equal length
 * for timingSafeEqual), scrypt ones by scrypt, which runs off the event loop (crypto.scrypt on the
 * thread pool) a few at a time, the rest waiting in a bounded queue. A user name that does not exist
 * costs what an existing one costs (a dummy entry with the same parameters), so timing tells no
 * one which users exist.
 */
export class Authenticator {
  /** user -> SHA-256 of the password. */
  private readonly plain = new Map<string, Buffer>();
  private readonly hashed = new Map<string, PasswdEntry>();
  /** `$scram$` lines (enhanced-auth.ts): SCRAM credentials for AUTH, and plain passwords checked by them. */
  readonly scram = new Map<string, ScramEntry>();
  /** Checked for users the password file does not name: the first entry's parameters, random bytes. */
  private dummy: PasswdEntry | undefined = undefined;
  /** SHA-256 of a password no one has: what plain passwords of unknown users are compared with. */
  private readonly dummyDigest = sha256(randomBytes(32));
  /**
   * Accepted checks, by SHA-256 of user and password: scrypt is slow on purpose, a reconnect storm
   * of clients that know their password should not pay it each time. Refusals are never cached
   * (a cached refusal would answer faster for a known user than for an unknown one).
   */
  private readonly accepted = new Set<string>();
  private readonly maxPending: number;
  private running = 0;
  private readonly waiting: Job[] = [];

  constructor(
    users: Record<string, string> | undefined,
    passwdFile: string | undefined,
    maxPending = DEFAULT_MAX_AUTH_PENDING,
  ) {
    if (users !== undefined)
      for (const [u, p] of Object.entries(users)) this.plain.set(u, sha256(Buffer.from(p, 'utf8')));
    if (passwdFile !== undefined) this.loadPasswd(passwdFile);
    this.maxPending = maxPending;
    // Unknown users cost what most known ones cost: a scrypt line's work when there is one.
    const entries = [...this.hashed.values()];
    const first = entries.find((e) => e.kind === 'scrypt') ?? entries[0];
    if (first !== undefined) this.dummy = dummyOf(first);
  }

  /** Anonymous access is refused as soon as any user is configured. */
  get enabled(): boolean {
    return this.plain.size > 0 || this.hashed.size > 0;
  }

  /** Checks waiting for scrypt or running (tests, diagnostics). */
  get pending(): number {
    return this.running + this.waiting.length;
  }

  /**
   * The verdict when no scrypt is needed (no users configured, a plain user, a cached acceptance,
   * no password file), else undefined: then start() the check.
   */
  quick(username: string | undefined, password: Buffer | undefined): AuthVerdict | undefined {
    if (!this.enabled) return 'accepted';
    if (username === undefined) return 'refused';
    const given = password ?? EMPTY;
    const digest = sha256(given);
    const plain = this.plain.get(username);
    // Compared whether the user exists or not: the same work either way.
    if (timingSafeEqual(digest, plain ?? this.dummyDigest) && plain !== undefined) return 'accepted';
    if (this.dummy === undefined) return 'refused';
    if (this.accepted.has(cacheKey(username, given))) return 'accepted';
    return undefined;
  }

  /**
   * Runs the scrypt check of a CONNECT quick() could not decide; `done` hears the verdict (not after
   * cancel()). 'busy', and nothing started, when --max-auth-pending checks already wait.
   */
  start(
    username: string,
    password: Buffer | undefined,
    done: (verdict: AuthVerdict) => void,
  ): AuthJob | 'busy' {
    if (this.waiting.length >= this.maxPending) return 'busy';
    const entry = this.hashed.get(username);
    const given = Buffer.from(password ?? EMPTY);
    const job: Job = {
      entry: entry ?? this.dummy!,
      real: entry !== undefined,
      password: given,
      key: cacheKey(username, given),
      done,
      cancelled: false,
      cancel: () => {
        job.cancelled = true;
        const i = this.waiting.indexOf(job);
        if (i >= 0) this.waiting.splice(i, 1);
      },
    };
    this.waiting.push(job);
    this.next();
    return job;
  }

  private next(): void {
    while (this.running < AUTH_CONCURRENCY && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      this.running++;
      verify(job.entry, job.password, (matched) => {
        this.running--;
        const ok = matched && job.real;
        if (ok) {
          if (this.accepted.size >= CACHE_LIMIT) this.accepted.clear();
          this.accepted.add(job.key);
        }
        if (!job.cancelled) job.done(ok ? 'accepted' : 'refused');
        this.next();
      });
    }
  }

  private loadPasswd(file: string): void {
    const text = readText(file, 'password file');
    let lineNo = 0;
    for (const rawLine of text.split(/\r?\n/)) {
      lineNo++;
      const line = rawLine.trim();
      if (line === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon > 0 && isMosquittoHash(line.slice(colon + 1))) {
        const name = line.slice(0, colon);
        const hash = parseMosquittoHash(line.slice(colon + 1), `${file}:${lineNo}`);
        this.hashed.set(name, { kind: 'mosquitto', hash });
        // A `$7$` user may log in with SCRAM-SHA-512 too: the hash is its SaltedPassword.
        const creds = scramCredentialsOf(hash);
        if (creds !== undefined) this.scram.set(name, new Map([['SCRAM-SHA-512', creds]]));
        continue;
      }
      if (colon > 0 && line.startsWith('$scram$', colon + 1)) {
        const entry = parseScramPasswd(line.slice(colon + 1), `${file}:${lineNo}`);
        this.scram.set(line.slice(0, colon), entry);
        this.hashed.set(line.slice(0, colon), { kind: 'scram', creds: entry.get('SCRAM-SHA-256')! });
        continue;
      }
      const parts = colon > 0 ? line.slice(colon + 1).split('$') : [];
      // ['', 'scrypt', N, r, p, salt, hash]
      if (parts.length !== 7 || parts[1] !== 'scrypt') {
        throw new Error(
          `${file}:${lineNo}: expected user:$scrypt$N$r$p$salt$hash, user:$scram$... (make one with mq broker --make-passwd user:pass) or mosquitto_passwd's user:$7$... / user:$6$...`,
        );
      }
      const entry: ScryptEntry = {
        kind: 'scrypt',
        n: Number(parts[2]),
        r: Number(parts[3]),
        p: Number(parts[4]),
        salt: Buffer.from(parts[5]!, 'base64'),
        hash: Buffer.from(parts[6]!, 'base64'),
      };
      const powerOfTwo = Number.isInteger(entry.n) && entry.n > 1 && (entry.n & (entry.n - 1)) === 0;
      if (
        !powerOfTwo ||
        !(entry.r > 0) ||
        !(entry.p > 0) ||
        entry.salt.length === 0 ||
        entry.hash.length < 16
      ) {
        throw new Error(`${file}:${lineNo}: bad scrypt parameters, salt or hash`);
      }
      this.hashed.set(line.slice(0, colon), entry);
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** An entry of the same kind and cost as `entry` that no password matches (for unknown users). */
function dummyOf(entry: PasswdEntry): PasswdEntry {
  if (entry.kind === 'scrypt') {
    return { ...entry, salt: randomBytes(entry.salt.length), hash: randomBytes(entry.hash.length) };
  }
  if (entry.kind === 'mosquitto') {
    const h = entry.hash;
    return {
      kind: 'mosquitto',
      hash: { ...h, salt: randomBytes(h.salt.length), hash: randomBytes(h.hash.length) },
    };
  }
  const c = entry.creds;
  return {
    kind: 'scram',
    creds: { ...c, salt: randomBytes(c.salt.length), storedKey: randomBytes(c.storedKey.length) },
  };
}

/** Does `password` match `entry`? Computed on the thread pool (scrypt, PBKDF2), compared in constant time. */
function verify(entry: PasswdEntry, password: Buffer, done: (matched: boolean) => void): void {
  if (entry.kind === 'scrypt') {
    const options = { N: entry.n, r: entry.r, p: entry.p, maxmem: 256 * entry.n * entry.r + 1024 * 1024 };
    scrypt(password, entry.salt, entry.hash.length, options, (err, got) => {
      done(err === null && timingSafeEqual(got, entry.hash));
    });
    return;
  }
  if (entry.kind === 'mosquitto') {
    verifyMosquittoHashAsync(entry.hash, password, done);
    return;
  }
  const c = entry.creds;
  // SCRAM hashes the password as text (SASLprep): bytes that are not UTF-8 match nothing.
  const text = isUtf8(password) ? password.toString('utf8') : '\uFFFF\uFFFE';
  saltedPasswordAsync('SCRAM-SHA-256', text, c.salt, c.iterations).then(
    (salted) => {
      const got = credentialsFromSalted('SCRAM-SHA-256', salted, c.salt, c.iterations).storedKey;
      done(isUtf8(password) && got.length === c.storedKey.length && timingSafeEqual(got, c.storedKey));
    },
    () => done(false),
  );
}

function cacheKey(username: string, password: Buffer): string {
  return createHash('sha256').update(username).update('\0').update(password).digest('base64');
}

type Access = 'read' | 'write' | 'readwrite' | 'deny';

interface AclRule {
  access: Access;
  pattern: string;
  /** `pattern` lines: %u and %c substituted per client. */
  substitute: boolean;
}

/**
 * mosquitto's acl_file: `topic [read|write|readwrite|deny] TOPIC` lines apply to anonymous clients
 * until the first `user NAME` line, then to that user; `pattern [access] TOPIC` lines apply to
 * everyone with %u (username) and %c (client id) substituted. With an ACL, what no rule grants is
 * denied; a `deny` rule wins over grants.
 */
export class AccessControl {
  private readonly anonymous: AclRule[] = [];
  private readonly byUser = new Map<string, AclRule[]>();
  private readonly patterns: AclRule[] = [];
  private readonly hasAcl: boolean;
  private readonly denySubscribe: string[];
  private readonly denyPublish: string[];

  constructor(aclFile: string | undefined, denySubscribe: string[] = [], denyPublish: string[] = []) {
    this.denySubscribe = denySubscribe;
    this.denyPublish = denyPublish;
    this.hasAcl = aclFile !== undefined;
    if (aclFile !== undefined) this.load(aclFile);
  }

  /** Nothing to check: every publish and subscribe allowed. */
  get open(): boolean {
    return !this.hasAcl && this.denySubscribe.length === 0 && this.denyPublish.length === 0;
  }

  canPublish(topic: string, username: string | undefined, clientId: string): boolean {
    for (const f of this.denyPublish) if (matches(f, topic)) return false;
    if (!this.hasAcl) return true;
    return this.decide(username, clientId, 'write', (p) => matches(p, topic));
  }

  /**
   * An acl_file is loaded: read access is then checked per message and per client at delivery
   * (like mosquitto), since a subscription allowed by a wide read rule ('#') may match topics a
   * deny rule covers.
   */
  get checksReads(): boolean {
    return this.hasAcl;
  }

  /** --deny-subscribe is given: every message's topic is checked against it, once, at routing. */
  get deniesReads(): boolean {
    return this.denySubscribe.length > 0;
  }

  /** Is `topic` one nobody may receive (--deny-subscribe)? */
  readDenied(topic: string): boolean {
    for (const f of this.denySubscribe) if (matches(f, topic)) return true;
    return false;
  }

  /** May this client receive a message on `topic`? (--deny-subscribe, then the acl_file.) */
  canRead(topic: string, username: string | undefined, clientId: string): boolean {
    if (this.denySubscribe.length > 0 && this.readDenied(topic)) return false;
    if (!this.hasAcl) return true;
    return this.decide(username, clientId, 'read', (p) => matches(p, topic));
  }

  /**
   * May this client subscribe to `filter`? Refused when every topic it can match is denied: it
   * lies inside a --deny-subscribe filter or an acl_file deny rule ('secret/#', 'secret/+',
   * 'secret/x' under 'secret/#'), or no read rule covers it. A wider filter that only overlaps a
   * denied one ('#', '+/x') is granted: the denied topics are kept from it at delivery (canRead).
   */
  canSubscribe(filter: string, username: string | undefined, clientId: string): boolean {
    for (const f of this.denySubscribe) if (covers(f, filter)) return false;
    if (!this.hasAcl) return true;
    return this.decide(username, clientId, 'read', (p) => covers(p, filter));
  }

  private decide(
    username: string | undefined,
    clientId: string,
    want: 'read' | 'write',
    test: (pattern: string) => boolean,
  ): boolean {
    let granted = false;
    const rules = username === undefined ? this.anonymous : (this.byUser.get(username) ?? []);
    const consider = (rule: AclRule, pattern: string): boolean => {
      if (!test(pattern)) return true;
      if (rule.access === 'deny') return false;
      if (rule.access === 'readwrite' || rule.access === want) granted = true;
      return true;
    };
    for (const rule of rules) if (!consider(rule, rule.pattern)) return false;
    for (const rule of this.patterns) {
      const pattern = substitute(rule.pattern, clientId, username);
      if (pattern !== undefined && !consider(rule, pattern)) return false;
    }
    return granted;
  }

  private load(file: string): void {
    const text = readText(file, 'ACL file');
    let current = this.anonymous;
    let lineNo = 0;
    for (const rawLine of text.split(/\r?\n/)) {
      lineNo++;
      const line = rawLine.trim();
      if (line === '' || line.startsWith('#')) continue;
      const [keyword, ...rest] = line.split(/\s+/);
      if (keyword === 'user') {
        const name = line.slice(4).trim();
        if (name === '') throw new Error(`${file}:${lineNo}: 'user' needs a name`);
        let rules = this.byUser.get(name);
        if (rules === undefined) this.byUser.set(name, (rules = []));
        current = rules;
        continue;
      }
      if (keyword !== 'topic' && keyword !== 'pattern') {
        throw new Error(`${file}:${lineNo}: unknown keyword '${keyword}' (expected user, topic or pattern)`);
      }
      let access: Access = 'readwrite';
      let topicWords = rest;
      const first = rest[0];
      if (first === 'read' || first === 'write' || first === 'readwrite' || first === 'deny') {
        access = first;
        topicWords = rest.slice(1);
      }
      const pattern = topicWords.join(' ');
      if (pattern === '') throw new Error(`${file}:${lineNo}: '${keyword}' needs a topic`);
      const problem = validateTopicFilter(pattern);
      if (problem !== undefined) throw new Error(`${file}:${lineNo}: '${pattern}': ${problem.message}`);
      const rule: AclRule = { access, pattern, substitute: keyword === 'pattern' };
      if (keyword === 'pattern') this.patterns.push(rule);
      else current.push(rule);
    }
  }
}

/**
 * A `pattern` rule's topic for this client: %c its client id, %u its user name, in one pass (a
 * client id '%u' must not become the user name). undefined (the rule matches nothing) when a value
 * it needs is missing or holds '+', '#' or '/': a client named '+' would otherwise get
 * 'devices/+/#', every device's tree, and one named 'a/b' device a's 'b' subtree
 * (CVE-2017-7650 in Mosquitto).
 */
function substitute(pattern: string, clientId: string, username: string | undefined): string | undefined {
  const needsId = pattern.includes('%c');
  const needsUser = pattern.includes('%u');
  if (!needsId && !needsUser) return pattern;
  if (needsId && !safeValue(clientId)) return undefined;
  if (needsUser && (username === undefined || !safeValue(username))) return undefined;
  return pattern.replace(/%[cu]/g, (m) => (m === '%c' ? clientId : (username ?? '')));
}

function safeValue(v: string): boolean {
  return !v.includes('+') && !v.includes('#') && !v.includes('/');
}

/** Password and ACL files: far more than any real one (64 MiB holds ~300,000 `$7$` users). */
export const AUTH_FILE_LIMIT: Limit = {
  bytes: 64 * 1024 * 1024,
  why: "mq's limit for a password or ACL file",
};

/**
 * A password or ACL file as text, read bounded: a huge file (or /dev/zero) is one clear error, not
 * an out-of-memory.
 */
function readText(file: string, what: string): string {
  return readFileBounded(file, AUTH_FILE_LIMIT, what).toString('utf8');
}

/**
 * Does filter `outer` cover every topic filter `inner` can match? ('a/#' covers 'a/+/b', '+' covers
 * a single level but not '#'.) Used for subscribe checks, where the subscription is itself a filter.
 */
export function covers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const n = inner.split('/');
  // '$' topics are not matched by leading wildcards [MQTT-4.7.2-1].
  if ((o[0] === '#' || o[0] === '+') && n[0]?.startsWith('$')) return false;
  for (let i = 0; i < o.length; i++) {
    const ol = o[i]!;
    if (ol === '#') return true;
    const nl = n[i];
    if (nl === undefined) return false;
    if (ol === '+') {
      if (nl === '#') return false;
      continue;
    }
    if (nl !== ol) return false;
  }
  return o.length === n.length;
}
