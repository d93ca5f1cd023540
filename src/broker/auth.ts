/**
 * Authentication (plain users, scrypt password file) and access control (mosquitto's acl_file
 * format plus the --deny-subscribe / --deny-publish shortcuts).
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { matches, validateTopicFilter } from '../protocol/index.js';
import { checkScramPasswd, parseScramPasswd, type ScramEntry } from './enhanced-auth.js';
import {
  isMosquittoHash,
  type MosquittoHash,
  parseMosquittoHash,
  scramCredentialsOf,
  verifyMosquittoHash,
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

interface PasswdEntry {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

export class Authenticator {
  private readonly plain = new Map<string, string>();
  private readonly hashed = new Map<string, PasswdEntry>();
  /** `$scram$` lines (enhanced-auth.ts): SCRAM credentials that also check plain passwords. */
  readonly scram = new Map<string, ScramEntry>();
  /** mosquitto_passwd's `$6$` / `$7$` lines (passwd-formats.ts). */
  private readonly mosquitto = new Map<string, MosquittoHash>();
  /** user\0password -> verdict: scrypt is slow on purpose, a reconnect storm should not pay it each time. */
  private readonly verified = new Map<string, boolean>();

  constructor(users: Record<string, string> | undefined, passwdFile: string | undefined) {
    if (users !== undefined) for (const [u, p] of Object.entries(users)) this.plain.set(u, p);
    if (passwdFile !== undefined) this.loadPasswd(passwdFile);
  }

  /** Anonymous access is refused as soon as any user is configured. */
  get enabled(): boolean {
    return this.plain.size > 0 || this.hashed.size > 0 || this.scram.size > 0 || this.mosquitto.size > 0;
  }

  check(username: string | undefined, password: Buffer | undefined): boolean {
    if (!this.enabled) return true;
    if (username === undefined) return false;
    const pass = password === undefined ? '' : password.toString('utf8');
    const plain = this.plain.get(username);
    if (plain !== undefined && plain === pass) return true;
    const mosq = this.mosquitto.get(username);
    if (mosq !== undefined) {
      const key = `${username}\0${pass}`;
      return this.verified.get(key) ?? this.remember(key, verifyMosquittoHash(mosq, pass));
    }
    const entry = this.hashed.get(username);
    const scram = this.scram.get(username);
    if (entry === undefined && scram === undefined) return false;
    const key = `${username}\0${pass}`;
    const known = this.verified.get(key);
    if (known !== undefined) return known;
    if (entry === undefined) return this.remember(key, checkScramPasswd(scram!, pass));
    const got = scryptSync(pass, entry.salt, entry.hash.length, {
      N: entry.n,
      r: entry.r,
      p: entry.p,
      maxmem: 256 * entry.n * entry.r + 1024 * 1024,
    });
    return this.remember(key, timingSafeEqual(got, entry.hash));
  }

  private remember(key: string, ok: boolean): boolean {
    if (this.verified.size > 1000) this.verified.clear();
    this.verified.set(key, ok);
    return ok;
  }

  /** A `$7$` user may log in with SCRAM-SHA-512 too: the hash is its SaltedPassword. */
  private addMosquittoUser(name: string, hash: MosquittoHash): void {
    this.mosquitto.set(name, hash);
    const creds = scramCredentialsOf(hash);
    if (creds !== undefined) this.scram.set(name, new Map([['SCRAM-SHA-512', creds]]));
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
        this.addMosquittoUser(
          line.slice(0, colon),
          parseMosquittoHash(line.slice(colon + 1), `${file}:${lineNo}`),
        );
        continue;
      }
      if (colon > 0 && line.startsWith('$scram$', colon + 1)) {
        this.scram.set(line.slice(0, colon), parseScramPasswd(line.slice(colon + 1), `${file}:${lineNo}`));
        continue;
      }
      const parts = colon > 0 ? line.slice(colon + 1).split('$') : [];
      // ['', 'scrypt', N, r, p, salt, hash]
      if (parts.length !== 7 || parts[1] !== 'scrypt') {
        throw new Error(
          `${file}:${lineNo}: expected user:$scrypt$N$r$p$salt$hash, user:$scram$... (make one with mq broker --make-passwd user:pass) or mosquitto_passwd's user:$7$... / user:$6$...`,
        );
      }
      const entry: PasswdEntry = {
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
   * An acl_file is loaded: read access is then checked per message at delivery (like mosquitto),
   * since a subscription allowed by a wide read rule ('#') may match topics a deny rule covers.
   */
  get checksReads(): boolean {
    return this.hasAcl;
  }

  /** May this client receive a message on `topic`? Only the acl_file decides (not --deny-subscribe). */
  canRead(topic: string, username: string | undefined, clientId: string): boolean {
    if (!this.hasAcl) return true;
    return this.decide(username, clientId, 'read', (p) => matches(p, topic));
  }

  canSubscribe(filter: string, username: string | undefined, clientId: string): boolean {
    for (const f of this.denySubscribe) if (covers(f, filter) || covers(filter, f)) return false;
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
      const pattern = rule.pattern.replaceAll('%c', clientId).replaceAll('%u', username ?? '');
      if (username === undefined && rule.pattern.includes('%u')) continue;
      if (!consider(rule, pattern)) return false;
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

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new Error(`cannot read ${what} ${file}: ${why}`);
  }
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
