/**
 * --passwd with mosquitto_passwd's lines ($7$ PBKDF2-SHA512, $6$ SHA-512), $7$ users over
 * SCRAM-SHA-512, and --allow-anonymous (Mosquitto's allow_anonymous).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ScramClient } from '../../src/auth/scram.js';
import { ConnectError, type EnhancedAuth } from '../../src/client/index.js';
import { clientHarness } from '../helpers/client-harness.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

// Made by Debian's mosquitto_passwd 2.0.11: `-b pw alice secret` (its default, $7$ at 101
// iterations) and `-H sha512 -b pw bob hunter2`.
const ALICE_7 =
  'alice:$7$101$hcYPKOd1RKYLOcba$01yCu57xZcu6fKBzD7uTEwuuCWzy1V+i1nrnsEUk3+a5TYaf7FspdWqYe1gzrH5SW5YZo6p270bAE//M5iK6/g==';
const BOB_6 =
  'bob:$6$gagYtKPf6TeA26OA$eYuS0kI5KaS7slraed6PVPPHmAdo4GYt4UDCntdNPn+lwH4KD2aDkGI9SvwRGaj8GKb9Dur5KE0qx6sav9TDcA==';

const { broker, client } = brokerHarness();
const { opts, connect } = clientHarness({ version: 5, idPrefix: 'pwf' });
let dir: string;
let passwd: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-passwd-formats-'));
  passwd = join(dir, 'passwd');
  writeFileSync(passwd, `# made by mosquitto_passwd\n${ALICE_7}\n${BOB_6}\n`);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** SCRAM-SHA-512 that accepts Mosquitto's 101 iterations (mq's client asks for 4096 by default). */
function scram512(username: string, password: string): EnhancedAuth {
  return {
    method: 'SCRAM-SHA-512',
    start() {
      const scram = new ScramClient('SCRAM-SHA-512', username, password, { minIterations: 100 });
      return {
        first: () => Buffer.from(scram.clientFirst()),
        answer: async (challenge) => Buffer.from(await scram.clientFinal(challenge?.toString('utf8') ?? '')),
        finish: (data) => scram.verifyServerFinal(data?.toString('utf8') ?? ''),
      };
    },
  };
}

describe("--passwd: mosquitto_passwd's lines as they are", () => {
  test('$7$ and $6$ users log in with their password; a wrong one or an unknown user is refused', async () => {
    const b = await broker({ passwdFile: passwd });
    await client(b.port, { version: 4, username: 'alice', password: 'secret' });
    await client(b.port, { version: 5, username: 'bob', password: 'hunter2' });
    for (const [username, password] of [
      ['alice', 'Secret'],
      ['bob', 'hunter2 '],
      ['carol', 'secret'],
    ] as const) {
      const c = await client(b.port, { version: 5, username, password, expectSuccess: false });
      expect(c.connack?.reasonCode, `${username}/${password}`).toBe(0x86);
    }
    const anon = await client(b.port, { version: 4, expectSuccess: false });
    expect(anon.connack?.reasonCode).toBe(4);
  });

  test('a $7$ user logs in with SCRAM-SHA-512 (the hash is its SaltedPassword); not with -256, nor a wrong password', async () => {
    const b = await broker({ passwdFile: passwd });
    const ok = await connect({ ...opts(b.port), auth: scram512('alice', 'secret') });
    await ok.end();
    await expect(connect({ ...opts(b.port), auth: scram512('alice', 'wrong') })).rejects.toMatchObject({
      reasonCode: 0x86,
    });
    // mq's own client refuses 101 iterations (RFC 7677 asks for 4096): the broker offered them.
    const { scramAuth } = await import('../../src/client/index.js');
    const e = await connect({ ...opts(b.port), auth: scramAuth('SCRAM-SHA-512', 'alice', 'secret') }).catch(
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ConnectError);
    expect(String(e)).toMatch(/iteration count 101 is outside 4096/);
  });

  test.each([
    ['alice:$7$101$c2FsdA==$dG9vc2hvcnQ=', /passwd:1: expected user:\$7\$ITERATIONS\$SALT\$HASH/],
    [
      'alice:$7$0$c2FsdA==$dG9vc2hvcnQ=',
      /passwd:1: '\$7\$' needs an iteration count from 1 to 1000000, got '0'/,
    ],
    ['bob:$6$c2FsdA==', /passwd:1: expected user:\$6\$SALT\$HASH/],
    [
      'eve:$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA',
      /passwd:1: Argon2 hashes .* mosquitto_passwd -H sha512-pbkdf2/,
    ],
  ])('a malformed line is refused at start with file:line: %s', async (line, message) => {
    writeFileSync(join(dir, 'passwd'), `${line}\n`);
    try {
      await expect(broker({ passwdFile: join(dir, 'passwd') })).rejects.toThrow(message);
    } finally {
      writeFileSync(passwd, `# made by mosquitto_passwd\n${ALICE_7}\n${BOB_6}\n`);
    }
  });
});

describe('--allow-anonymous', () => {
  test('true: clients without a user name are let in beside the users; a named client still needs its password', async () => {
    const b = await broker({ passwdFile: passwd, allowAnonymous: true });
    await client(b.port, { version: 4 });
    await client(b.port, { version: 4, username: 'alice', password: 'secret' });
    const bad = await client(b.port, { version: 4, username: 'alice', password: 'x', expectSuccess: false });
    expect(bad.connack?.reasonCode).toBe(4);
  });

  test('false and no users: everyone is refused with Not authorized, named or not (as Mosquitto 2)', async () => {
    const b = await broker({ allowAnonymous: false });
    const anon4 = await client(b.port, { version: 4, expectSuccess: false });
    expect(anon4.connack?.reasonCode).toBe(5);
    const named5 = await client(b.port, { version: 5, username: 'u', password: 'p', expectSuccess: false });
    expect(named5.connack?.reasonCode).toBe(0x87);
    await b.waitForLog(/connection refused: .*\(no users are configured \(allow anonymous: false\)\)/);
  });

  test('false with users: anonymous clients get Not authorized, users log in', async () => {
    const b = await broker({ users: { u: 'p' }, allowAnonymous: false });
    const anon = await client(b.port, { version: 5, expectSuccess: false });
    expect(anon.connack?.reasonCode).toBe(0x87);
    await client(b.port, { version: 5, username: 'u', password: 'p' });
  });
});
