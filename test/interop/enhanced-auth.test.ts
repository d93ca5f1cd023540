/**
 * SCRAM enhanced authentication against another implementation and a real broker:
 * - Perl's Authen::SCRAM (Debian libauthen-scram-perl, RFC 5802) as the client of `mq broker`,
 *   and as the server behind a scripted MQTT broker that mq's client logs in to;
 * - `mq pub --auth-method` against Mosquitto 2.0, which offers no enhanced authentication (0x8C).
 * (paho 1.6 cannot take part: it has no handler for AUTH packets.)
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SCRAM_METHODS, type ScramMethod } from '../../src/auth/scram.js';
import { ConnectError, MqttClient, scramAuth } from '../../src/client/index.js';
import { type FakeBroker, startFakeBroker } from '../helpers/fake-broker.js';
import { type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';
import { sendAuth, sendAuthConnect } from '../helpers/scram.js';
import { killAll, type Spawned, spawnMq, spawnProcess } from '../helpers/spawn.js';

const PERL = '/usr/bin/perl';
const DIGEST: Record<ScramMethod, string> = {
  'SCRAM-SHA-1': 'SHA-1',
  'SCRAM-SHA-256': 'SHA-256',
  'SCRAM-SHA-512': 'SHA-512',
};

/** Authen::SCRAM::Client over stdin/stdout: prints client-first, then client-final, then valid/invalid. */
const PERL_CLIENT = `
use strict; use warnings; use Authen::SCRAM::Client;
$| = 1;
my ($digest, $user, $pass) = @ARGV;
my $c = Authen::SCRAM::Client->new(username => $user, password => $pass, digest => $digest);
print $c->first_msg(), "\\n";
my $first = <STDIN>; chomp $first;
print $c->final_msg($first), "\\n";
my $final = <STDIN>; chomp $final;
print eval { $c->validate($final); 1 } ? "valid\\n" : "invalid\\n";
`;

/**
 * Authen::SCRAM::Server with one user whose credentials Perl derives itself (PBKDF2::Tiny,
 * Digest::SHA): reads client-first, prints server-first; reads client-final, prints server-final.
 */
const PERL_SERVER = `
use strict; use warnings; use Authen::SCRAM::Server; use PBKDF2::Tiny qw(derive); use Digest::SHA ();
$| = 1;
my ($digest, $user, $pass) = @ARGV;
(my $alg = lc $digest) =~ s/-//;
my $hmac = \\&{"Digest::SHA::hmac_$alg"}; my $hash = \\&{"Digest::SHA::$alg"};
my $salt = join '', map { chr int rand 256 } 1 .. 16;
my $salted = derive($digest, $pass, $salt, 4096);
my @creds = ($salt, $hash->($hmac->('Client Key', $salted)), $hmac->('Server Key', $salted), 4096);
my $s = Authen::SCRAM::Server->new(digest => $digest, credential_cb => sub { $_[0] eq $user ? @creds : () });
my $cf = <STDIN>; chomp $cf;
print $s->first_msg($cf), "\\n";
my $cfin = <STDIN>; chomp $cfin;
my $out = eval { $s->final_msg($cfin) };
print defined $out ? "$out\\n" : "error\\n";
`;

const { broker, client } = brokerHarness();
let mosquitto: MosquittoHandle;
const fakes: FakeBroker[] = [];

beforeAll(async () => {
  mosquitto = await startMosquitto();
});

afterAll(async () => {
  for (const f of fakes) await f.stop();
  await mosquitto?.stop();
  await killAll();
});

/** The next stdout line of a line-protocol Perl process. */
async function line(p: Spawned, n: number): Promise<string> {
  const lines = await p.waitForLines(n, 10_000);
  return lines[n - 1]!;
}

/**
 * Perl's SCRAM client logs in to mq broker as alice with `password`, over a raw MQTT connection:
 * the CONNACK, and what Perl made of it (its third line, once given the server-final).
 */
async function perlLogin(
  method: ScramMethod,
  password: string,
): Promise<{ reasonCode: number; perl: string }> {
  const b = await broker({ users: { alice: 'pass word' } });
  const perl = spawnProcess(PERL, ['-e', PERL_CLIENT, DIGEST[method], 'alice', password]);
  const c = await client(b.port, { version: 5, connect: false });
  sendAuthConnect(c, { clientId: 'perl', method, data: await line(perl, 1) });
  const challenge = await c.nextPacket('AUTH');
  perl.proc.stdin!.write(`${challenge.properties!.authenticationData!.toString()}\n`);
  sendAuth(c, 0x18, method, await line(perl, 2));
  const connack = await c.nextPacket('CONNACK');
  perl.proc.stdin!.end(`${connack.properties?.authenticationData?.toString() ?? 'e=none'}\n`);
  return { reasonCode: connack.reasonCode, perl: await line(perl, 3) };
}

describe.each(SCRAM_METHODS)('%s', (method) => {
  test("Perl's Authen::SCRAM::Client logs in to mq broker and accepts its signature", async () => {
    expect(await perlLogin(method, 'pass word')).toEqual({ reasonCode: 0, perl: 'valid' });
  });

  test("Perl's client with a wrong password is refused with 0x86", async () => {
    expect(await perlLogin(method, 'password')).toEqual({ reasonCode: 0x86, perl: 'invalid' });
  });

  test("mq's client logs in to a broker whose SCRAM server is Perl's Authen::SCRAM::Server", async () => {
    let perl: Spawned | undefined;
    const fake = await startFakeBroker(
      (packet, session) => {
        const data =
          packet.type === 'CONNECT' || packet.type === 'AUTH'
            ? (packet.properties?.authenticationData?.toString() ?? '')
            : '';
        if (packet.type === 'CONNECT') {
          perl = spawnProcess(PERL, ['-e', PERL_SERVER, DIGEST[method], 'alice', 'pass word']);
          perl.proc.stdin!.write(`${data}\n`);
          void line(perl, 1).then((first) =>
            session.send({
              type: 'AUTH',
              reasonCode: 0x18,
              properties: { authenticationMethod: method, authenticationData: Buffer.from(first) },
            }),
          );
        } else if (packet.type === 'AUTH') {
          perl!.proc.stdin!.end(`${data}\n`);
          void line(perl!, 2).then((final) =>
            session.send(
              final === 'error'
                ? { type: 'CONNACK', sessionPresent: false, reasonCode: 0x86 }
                : {
                    type: 'CONNACK',
                    sessionPresent: false,
                    reasonCode: 0,
                    properties: { authenticationMethod: method, authenticationData: Buffer.from(final) },
                  },
            ),
          );
        }
      },
      { autoConnack: false },
    );
    fakes.push(fake);
    const options = {
      transport: 'mqtt' as const,
      host: '127.0.0.1',
      port: fake.port,
      version: 5 as const,
      clientId: 'mq',
      keepalive: 60,
      clean: true,
      connectTimeoutMs: 10_000,
    };
    const c = await MqttClient.connect({ ...options, auth: scramAuth(method, 'alice', 'pass word') });
    expect(c.connack.properties?.authenticationMethod).toBe(method);
    c.destroy();
    const err = await MqttClient.connect({ ...options, auth: scramAuth(method, 'alice', 'wrong') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).reasonCode).toBe(0x86);
  });
});

test('mq pub --auth-method against Mosquitto (no enhanced authentication): exit 2, 0x8C explained', async () => {
  const r = await spawnMq([
    'pub',
    '-p',
    String(mosquitto.port),
    '--auth-method',
    'SCRAM-SHA-256',
    '-u',
    'alice',
    '-P',
    'secret',
    '-t',
    'a',
    '-m',
    'x',
  ]).exit(10_000);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toMatch(
    /^mq: connection refused by localhost:\d+: 0x8c Bad authentication method: the broker does not offer that authentication method \(--auth-method\); try plain -u\/-P$/,
  );
});
