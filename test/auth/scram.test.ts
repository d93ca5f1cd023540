/**
 * The SCRAM module against the worked examples of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3
 * (SCRAM-SHA-256), both sides, and client <-> server round trips for all three methods.
 */
import { describe, expect, it } from 'vitest';
import {
  deriveCredentials,
  escapeSaslName,
  SaltedPasswords,
  SCRAM_METHODS,
  ScramClient,
  type ScramCredentials,
  ScramError,
  type ScramMethod,
  ScramServer,
  saslPrep,
  unescapeSaslName,
  verifyPassword,
} from '../../src/auth/scram.js';

interface Vector {
  method: ScramMethod;
  clientNonce: string;
  serverNonce: string;
  salt: string;
  clientFirst: string;
  serverFirst: string;
  clientFinal: string;
  serverFinal: string;
}

/** user / pencil, 4096 iterations. */
const VECTORS: Vector[] = [
  {
    method: 'SCRAM-SHA-1', // RFC 5802 §5
    clientNonce: 'fyko+d2lbbFgONRv9qkxdawL',
    serverNonce: '3rfcNHYJY1ZVvWVs7j',
    salt: 'QSXCR+Q6sek8bf92',
    clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
    serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
  },
  {
    method: 'SCRAM-SHA-256', // RFC 7677 §3
    clientNonce: 'rOprNGfwEbeRWgbNEkqO',
    serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal:
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  },
];

function serverFor(v: Vector, creds: ScramCredentials | undefined): ScramServer {
  return new ScramServer(v.method, (name) => (name === 'user' ? creds : undefined), { nonce: v.serverNonce });
}

describe.each(VECTORS)('$method: the RFC example', (v) => {
  const creds = deriveCredentials(v.method, 'pencil', 4096, Buffer.from(v.salt, 'base64'));

  it('the client sends exactly the RFC messages and accepts its server signature', async () => {
    const client = new ScramClient(v.method, 'user', 'pencil', { nonce: v.clientNonce });
    expect(client.clientFirst()).toBe(v.clientFirst);
    expect(await client.clientFinal(v.serverFirst)).toBe(v.clientFinal);
    expect(() => client.verifyServerFinal(v.serverFinal)).not.toThrow();
  });

  it('the server answers exactly the RFC messages and accepts the proof', () => {
    const server = serverFor(v, creds);
    expect(server.serverFirst(v.clientFirst)).toBe(v.serverFirst);
    expect(server.username).toBe('user');
    expect(server.serverFinal(v.clientFinal)).toEqual({ ok: true, serverFinal: v.serverFinal });
  });

  it('the server refuses a proof made with another password (e=invalid-proof)', async () => {
    const client = new ScramClient(v.method, 'user', 'pencil2', { nonce: v.clientNonce });
    const server = serverFor(v, creds);
    const first = server.serverFirst(client.clientFirst());
    const verdict = server.serverFinal(await client.clientFinal(first));
    expect(verdict.ok).toBe(false);
    expect(verdict.serverFinal).toBe('e=invalid-proof');
  });

  it('a proof altered by one bit is refused', () => {
    const server = serverFor(v, creds);
    server.serverFirst(v.clientFirst);
    const proof = Buffer.from(v.clientFinal.split(',p=')[1]!, 'base64');
    proof[proof.length - 1]! ^= 1;
    const forged = `${v.clientFinal.split(',p=')[0]},p=${proof.toString('base64')}`;
    expect(server.serverFinal(forged).ok).toBe(false);
  });

  it('the client refuses a server signature that is not right', async () => {
    const client = new ScramClient(v.method, 'user', 'pencil', { nonce: v.clientNonce });
    client.clientFirst();
    await client.clientFinal(v.serverFirst);
    const sig = Buffer.from(v.serverFinal.slice(2), 'base64');
    sig[0]! ^= 0x80;
    expect(() => client.verifyServerFinal(`v=${sig.toString('base64')}`)).toThrow(/signature is wrong/);
  });

  it('a password can be checked against the stored credentials (a plain CONNECT)', () => {
    expect(verifyPassword(v.method, creds, 'pencil')).toBe(true);
    expect(verifyPassword(v.method, creds, 'pencil ')).toBe(false);
  });
});

describe.each(SCRAM_METHODS)('%s: client and server', (method) => {
  it('complete an exchange with random nonces and salt', async () => {
    const creds = deriveCredentials(method, 'sécret p4ss');
    const client = new ScramClient(method, 'al,i=ce', 'sécret p4ss');
    const server = new ScramServer(method, (name) => (name === 'al,i=ce' ? creds : undefined));
    const first = client.clientFirst();
    expect(first).toMatch(/^n,,n=al=2Ci=3Dce,r=[A-Za-z0-9+/=]+$/);
    const verdict = server.serverFinal(await client.clientFinal(server.serverFirst(first)));
    expect(verdict.ok).toBe(true);
    expect(server.username).toBe('al,i=ce');
    expect(() => client.verifyServerFinal(verdict.serverFinal)).not.toThrow();
  });

  it('an unknown user gets a server-first like anyone (same salt each time), then e=invalid-proof', async () => {
    const key = Buffer.alloc(32, 7);
    const server1 = new ScramServer(method, () => undefined, { fakeSaltKey: key });
    const server2 = new ScramServer(method, () => undefined, { fakeSaltKey: key });
    const c1 = new ScramClient(method, 'nobody', 'x');
    const c2 = new ScramClient(method, 'nobody', 'x');
    const f1 = server1.serverFirst(c1.clientFirst());
    const f2 = server2.serverFirst(c2.clientFirst());
    expect(f1).toMatch(/,s=[A-Za-z0-9+/=]{24},i=4096$/);
    expect(f1.split(',s=')[1]).toBe(f2.split(',s=')[1]);
    const verdict = server1.serverFinal(await c1.clientFinal(f1));
    expect(verdict).toMatchObject({ ok: false, serverFinal: 'e=invalid-proof' });
  });
});

describe('SaltedPasswords: PBKDF2 once per salt for clients that log in over and over', () => {
  it('many exchanges with one salt derive once (concurrent ones wait for it); another salt derives again', async () => {
    const method = 'SCRAM-SHA-256';
    const creds = deriveCredentials(method, 'secret');
    const salted = new SaltedPasswords(method, 'secret');
    const login = async (c: ScramCredentials) => {
      const server = new ScramServer(method, () => c);
      const client = new ScramClient(method, 'alice', 'secret', { salted });
      const verdict = server.serverFinal(await client.clientFinal(server.serverFirst(client.clientFirst())));
      expect(verdict.ok).toBe(true);
      client.verifyServerFinal(verdict.serverFinal);
    };
    await Promise.all(Array.from({ length: 20 }, () => login(creds)));
    expect(salted.derivations).toBe(1);
    await login(deriveCredentials(method, 'secret'));
    expect(salted.derivations).toBe(2);
    // Another method's cache is refused, not silently wrong.
    expect(() => new ScramClient('SCRAM-SHA-1', 'alice', 'secret', { salted })).toThrow(ScramError);
  });

  it('is bounded: past its size, salts are derived and not kept', async () => {
    const method = 'SCRAM-SHA-1';
    const salted = new SaltedPasswords(method, 'pw', 2);
    const salts = [1, 2, 3].map((n) => Buffer.alloc(16, n));
    for (const salt of [...salts, ...salts]) await salted.get(salt, 4096);
    // Salts 1 and 2 kept (derived once each), salt 3 derived both times.
    expect(salted.derivations).toBe(4);
  });
});

describe('malformed messages', () => {
  const creds = deriveCredentials('SCRAM-SHA-256', 'pencil', 4096);
  const server = () => new ScramServer('SCRAM-SHA-256', () => creds);

  it.each([
    ['no GS2 header', 'n=user,r=abc'],
    ['channel binding asked for', 'p=tls-unique,,n=user,r=abc'],
    ['a mandatory extension', 'n,,m=ext,n=user,r=abc'],
    ['no nonce', 'n,,n=user'],
    ['a bad escape in the user name', 'n,,n=us=2Xer,r=abc'],
    ['an empty user name', 'n,,n=,r=abc'],
    ['a nonce with a control character', 'n,,n=user,r=a\u0001b'],
    ['authorization as someone else', 'n,a=admin,n=user,r=abc'],
    ['empty', ''],
  ])('client-first with %s is refused', (_why, message) => {
    expect(() => server().serverFirst(message)).toThrow(ScramError);
  });

  it('client-final with another nonce, another GS2 header or no proof is refused', () => {
    for (const final of [
      'c=biws,r=other,p=AAAA',
      'c=eSws,r=NONCE,p=AAAA',
      'c=biws,r=NONCE',
      'c=biws,r=NONCE,p=not base64!',
    ]) {
      const s = server();
      const nonce = s.serverFirst('n,,n=user,r=abc').split(',')[0]!.slice(2);
      expect(() => s.serverFinal(final.replace('NONCE', nonce))).toThrow(ScramError);
    }
  });

  it('the client refuses a server nonce that does not extend its own, a low or huge iteration count, e=', async () => {
    const cases: [string, RegExp][] = [
      ['r=zzz,s=QSXCR+Q6sek8bf92,i=4096', /nonce/],
      ['r=abcdef,s=QSXCR+Q6sek8bf92,i=1024', /iteration count 1024/],
      ['r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999999', /iteration count/],
      ['r=abcdef,s=,i=4096', /salt/],
      ['e=unknown-user', /refused: unknown-user/],
      ['m=x,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096', /extension/],
    ];
    for (const [serverFirst, why] of cases) {
      const c = new ScramClient('SCRAM-SHA-1', 'user', 'pencil', { nonce: 'abc' });
      c.clientFirst();
      await expect(c.clientFinal(serverFirst)).rejects.toThrow(why);
    }
  });

  it('the client reports e= in server-final', async () => {
    const v = VECTORS[0]!;
    const c = new ScramClient(v.method, 'user', 'pencil', { nonce: v.clientNonce });
    c.clientFirst();
    await c.clientFinal(v.serverFirst);
    expect(() => c.verifyServerFinal('e=invalid-proof')).toThrow(/refused: invalid-proof/);
  });
});

describe('saslname and SASLprep', () => {
  it('escapes , and = (RFC 5802 §5.1)', () => {
    expect(escapeSaslName('a,b=c')).toBe('a=2Cb=3Dc');
    expect(unescapeSaslName('a=2Cb=3Dc')).toBe('a,b=c');
    expect(unescapeSaslName('a=b')).toBeUndefined();
  });

  it('maps, normalizes and refuses as RFC 4013 §3 examples', () => {
    expect(saslPrep('I\u00adX')).toBe('IX'); // soft hyphen mapped to nothing
    expect(saslPrep('user')).toBe('user');
    expect(saslPrep('USER')).toBe('USER'); // case preserved
    expect(saslPrep('\u00aa')).toBe('a'); // NFKC
    expect(saslPrep('\u2168')).toBe('IX'); // NFKC
    expect(saslPrep('a\u00a0b')).toBe('a b'); // non-ASCII space
    expect(() => saslPrep('\u0007')).toThrow(/U\+0007/); // prohibited
    expect(() => saslPrep('a\ue000')).toThrow(/U\+E000/); // private use
  });
});
