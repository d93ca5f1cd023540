/**
 * mq bench with v5 enhanced authentication (--auth-method SCRAM-SHA-*): each raw connection of the
 * load does the exchange (method and client-first in CONNECT, AUTH 0x18 both ways, the server
 * signature in the CONNACK checked), against mq broker's --auth users, in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScramMethod } from '../../src/auth/scram.js';
import { runBench } from '../../src/bench/engine.js';
import type { BenchOptions } from '../../src/bench/settings.js';
import { startFakeBroker } from '../helpers/fake-broker.js';
import { type StartedBroker, startBroker } from '../helpers/mqtt-test-client.js';

let broker: StartedBroker;
const traced: string[] = [];

beforeAll(async () => {
  broker = await startBroker({
    users: { alice: 'secret' },
    trace: 'full',
    traceOut: (line) => traced.push(line),
  });
});
afterAll(async () => {
  await broker?.broker.close();
});

function scram(method: ScramMethod, password: string, port = broker.port): BenchOptions['target'] {
  return {
    transport: 'mqtt',
    host: '127.0.0.1',
    port,
    username: 'alice',
    password: Buffer.from(password),
    authMethod: method,
  };
}

describe('mq bench --auth-method', () => {
  it.each(['SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const)(
    '%s: every connection authenticates with AUTH 0x18 both ways; the load runs as without it',
    async (method) => {
      traced.length = 0;
      const r = await runBench({
        mode: 'e2e',
        target: scram(method, 'secret'),
        workers: 0,
        warmupSec: 0,
        qos: 1,
        pubs: 2,
        subs: 1,
        count: 100,
      });
      expect(r.connections).toMatchObject({ attempted: 3, connected: 3, failed: 0 });
      expect(r.messages).toMatchObject({ sent: 200, received: 200, lost: 0 });
      expect(r.settings.authMethod).toBe(method);
      expect(r.errors).toEqual({});
      // Per connection: CONNECT with the method and no password, the client's AUTH 0x18.
      const connects = traced.filter((l) => / -> CONNECT /.test(l));
      expect(connects).toHaveLength(3);
      for (const c of connects) expect(c).toContain(`"authenticationMethod":"${method}"`);
      expect(connects.join('\n')).not.toMatch(/password/);
      expect(traced.filter((l) => / -> AUTH .*"reasonCode":24/.test(l))).toHaveLength(3);
    },
  );

  it('a wrong password: each connection refused with CONNACK 0x86, counted', async () => {
    const r = await runBench({
      mode: 'conn',
      target: scram('SCRAM-SHA-256', 'wrong'),
      workers: 0,
      clients: 5,
    });
    expect(r.connections).toMatchObject({ attempted: 5, connected: 0, failed: 5 });
    expect(Object.keys(r.errors)).toEqual(['CONNACK 0x86 Bad User Name or Password']);
  });

  it('a broker that accepts without proving it knows the password is refused', async () => {
    const fake = await startFakeBroker(() => {}, { connack: { reasonCode: 0 } });
    try {
      const r = await runBench({
        mode: 'conn',
        target: scram('SCRAM-SHA-256', 'secret', fake.port),
        workers: 0,
        clients: 2,
      });
      expect(r.connections).toMatchObject({ attempted: 2, connected: 0, failed: 2 });
      expect(r.errors).toEqual({ 'SCRAM-SHA-256 failed': 2 });
      expect(r.outcome.message ?? '').toMatch(/accepted without proving it knows the password/);
    } finally {
      await fake.stop();
    }
  });
});
