/**
 * MqttClient with enhanced authentication (SCRAM): against mq's broker (all three methods, a wrong
 * password, re-authentication) and against a scripted fake broker that cannot prove itself.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { deriveCredentials, SCRAM_METHODS, ScramServer } from '../../src/auth/scram.js';
import type { AuthConversation, EnhancedAuth } from '../../src/client/enhanced-auth.js';
import { ConnectError, MqttClient, scramAuth } from '../../src/client/index.js';
import type { ClientOptions } from '../../src/client/options.js';
import { type FakeBroker, startFakeBroker } from '../helpers/fake-broker.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker } = brokerHarness();
const USERS = { alice: 'wonder land' };
const clients: MqttClient[] = [];
const fakes: FakeBroker[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const f of fakes.splice(0)) await f.stop();
});

function options(port: number, auth: EnhancedAuth): ClientOptions {
  return {
    transport: 'mqtt',
    host: '127.0.0.1',
    port,
    version: 5,
    clientId: `scram-${Math.random().toString(16).slice(2, 8)}`,
    keepalive: 60,
    clean: true,
    auth,
    connectTimeoutMs: 5000,
  };
}

async function connect(o: ClientOptions): Promise<MqttClient> {
  const c = await MqttClient.connect(o);
  clients.push(c);
  return c;
}

describe.each(SCRAM_METHODS)('%s against mq broker', (method) => {
  test('connects, publishes and receives as alice; the password is never sent', async () => {
    const b = await broker({ users: USERS });
    const sent: string[] = [];
    const o = options(b.port, scramAuth(method, 'alice', 'wonder land'));
    o.trace = (direction, packet, raw) => {
      if (direction === 'out') sent.push(`${packet.type} ${raw.toString('latin1')}`);
    };
    const c = await connect(o);
    expect(c.connack.properties?.authenticationMethod).toBe(method);
    expect(sent.map((s) => s.split(' ')[0])).toEqual(['CONNECT', 'AUTH']);
    expect(sent.join('\n')).not.toContain('wonder land');
    await c.subscribe([{ topicFilter: 'scram/t', qos: 1 }]);
    const got = new Promise<string>((resolve) => c.once('message', (p) => resolve(p.payload.toString())));
    await c.publish('scram/t', 'hello', { qos: 1 });
    expect(await got).toBe('hello');
    await b.waitForLog(/connected .*user alice/);
  });

  test('a wrong password is refused with 0x86 (ConnectError)', async () => {
    const b = await broker({ users: USERS });
    const err = await MqttClient.connect(options(b.port, scramAuth(method, 'alice', 'wonderland'))).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).reasonCode).toBe(0x86);
    expect((err as Error).message).toMatch(/0x86 Bad User Name or Password/);
  });
});

describe('re-authentication', () => {
  test('client.reauthenticate() resolves once the broker accepted and proved itself', async () => {
    const b = await broker({ users: USERS });
    const c = await connect(options(b.port, scramAuth('SCRAM-SHA-256', 'alice', 'wonder land')));
    await c.reauthenticate();
    await c.reauthenticate();
    await b.waitForLog(/re-authenticated with SCRAM-SHA-256 \(user alice\)/);
    expect(c.connected).toBe(true);
    await c.publish('still/up', 'x', { qos: 1 });
  });

  test('a refused re-authentication rejects and the connection is lost (DISCONNECT 0x87)', async () => {
    const b = await broker({ users: USERS });
    // The first exchange with the right password, the next ones with a wrong one.
    const right = scramAuth('SCRAM-SHA-256', 'alice', 'wonder land');
    const wrong = scramAuth('SCRAM-SHA-256', 'alice', 'changed');
    let n = 0;
    const auth: EnhancedAuth = { method: 'SCRAM-SHA-256', start: () => (n++ === 0 ? right : wrong).start() };
    const c = await connect(options(b.port, auth));
    const closed = new Promise<Error | undefined>((resolve) => c.once('close', resolve));
    await expect(c.reauthenticate()).rejects.toThrow(/0x87 Not authorized/);
    expect((await closed)?.message).toMatch(/0x87/);
  });

  test('without the auth option it rejects at once', async () => {
    const b = await broker();
    const o = options(b.port, scramAuth('SCRAM-SHA-1', 'a', 'b'));
    delete o.auth;
    const c = await connect(o);
    await expect(c.reauthenticate()).rejects.toThrow(/needs enhanced authentication/);
  });
});

describe('a broker that cannot prove it knows the password', () => {
  /** A fake broker doing SCRAM with `creds`, whose CONNACK carries what `final` makes of the real server-final. */
  async function fakeScram(final: (serverFinal: string) => string | undefined): Promise<FakeBroker> {
    let server: ScramServer | undefined;
    const creds = deriveCredentials('SCRAM-SHA-256', 'something else');
    const fake = await startFakeBroker(
      (packet, session) => {
        if (packet.type === 'CONNECT') {
          server = new ScramServer('SCRAM-SHA-256', () => creds);
          const first = server.serverFirst(packet.properties!.authenticationData!.toString());
          session.send({
            type: 'AUTH',
            reasonCode: 0x18,
            properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(first) },
          });
        } else if (packet.type === 'AUTH') {
          // Accepts whatever proof it got (it cannot check it), and makes up its signature.
          const verdict = server!.serverFinal(packet.properties!.authenticationData!.toString());
          const data = final(verdict.serverFinal);
          session.send({
            type: 'CONNACK',
            sessionPresent: false,
            reasonCode: 0,
            properties: {
              authenticationMethod: 'SCRAM-SHA-256',
              ...(data !== undefined ? { authenticationData: Buffer.from(data) } : {}),
            },
          });
        }
      },
      { autoConnack: false },
    );
    fakes.push(fake);
    return fake;
  }

  test('a made-up server signature: the connection is refused, not used', async () => {
    const fake = await fakeScram(() => `v=${Buffer.alloc(32, 1).toString('base64')}`);
    const err = await MqttClient.connect(
      options(fake.port, scramAuth('SCRAM-SHA-256', 'alice', 'wonder land')),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toMatch(
      /refusing 127\.0\.0\.1:\d+: SCRAM-SHA-256: the server's signature is wrong: it does not know the user's credentials/,
    );
    expect(fake.sessions[0]!.received.map((p) => p.type)).toEqual(['CONNECT', 'AUTH']);
  });

  test('a CONNACK success without any server-final is refused too', async () => {
    const fake = await fakeScram(() => undefined);
    await expect(
      MqttClient.connect(options(fake.port, scramAuth('SCRAM-SHA-256', 'alice', 'wonder land'))),
    ).rejects.toThrow(/accepted without proving it knows the password/);
  });

  test('a CONNACK success with no exchange at all (the method ignored) is refused', async () => {
    const fake = await startFakeBroker();
    fakes.push(fake);
    await expect(
      MqttClient.connect(options(fake.port, scramAuth('SCRAM-SHA-1', 'alice', 'x'))),
    ).rejects.toThrow(/accepted without SCRAM-SHA-1/);
  });

  test('a server-first the client cannot accept (nonce not extended) ends the handshake', async () => {
    const fake = await startFakeBroker(
      (packet, session) => {
        if (packet.type === 'CONNECT') {
          session.send({
            type: 'AUTH',
            reasonCode: 0x18,
            properties: {
              authenticationMethod: 'SCRAM-SHA-256',
              authenticationData: Buffer.from('r=othernonce,s=QSXCR+Q6sek8bf92,i=4096'),
            },
          });
        }
      },
      { autoConnack: false },
    );
    fakes.push(fake);
    await expect(
      MqttClient.connect(options(fake.port, scramAuth('SCRAM-SHA-256', 'alice', 'x'))),
    ).rejects.toThrow(/SCRAM-SHA-256: server-first-message: the nonce does not extend the client's/);
  });
});

test('a conversation object can be any mechanism: the client passes the data along', async () => {
  // A toy method against a fake broker: one challenge, one answer, a final token.
  const fake = await startFakeBroker(
    (packet, session) => {
      const data =
        packet.type === 'CONNECT' || packet.type === 'AUTH'
          ? packet.properties?.authenticationData?.toString()
          : undefined;
      if (packet.type === 'CONNECT') {
        expect(data).toBe('hello');
        session.send({
          type: 'AUTH',
          reasonCode: 0x18,
          properties: { authenticationMethod: 'TOY', authenticationData: Buffer.from('challenge') },
        });
      } else if (packet.type === 'AUTH') {
        expect(data).toBe('answer to challenge');
        session.send({
          type: 'CONNACK',
          sessionPresent: false,
          reasonCode: 0,
          properties: { authenticationMethod: 'TOY', authenticationData: Buffer.from('token') },
        });
      }
    },
    { autoConnack: false },
  );
  fakes.push(fake);
  const finished: string[] = [];
  const toy: EnhancedAuth = {
    method: 'TOY',
    start: (): AuthConversation => ({
      first: () => Buffer.from('hello'),
      answer: async (challenge) => Buffer.from(`answer to ${challenge?.toString()}`),
      finish: (data) => {
        finished.push(data?.toString() ?? '');
      },
    }),
  };
  await connect(options(fake.port, toy));
  expect(finished).toEqual(['token']);
});
