/**
 * The engine over TLS and WebSocket, and with its clients spread over worker threads (the built
 * dist/bench/worker.js: `npm test` builds first).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench } from '../../src/bench/engine.js';
import { Broker, type BrokerAddresses } from '../../src/broker/index.js';
import { testPki } from '../helpers/certs.js';

let dir: string;
let broker: Broker;
let addr: BrokerAddresses;
let ca: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-bench-tls-'));
  const pki = testPki(dir);
  pki.ca('ca', 'mq bench test CA');
  pki.server('server', 'DNS:localhost,IP:127.0.0.1');
  ca = readFileSync(join(dir, 'ca.pem'));
  broker = new Broker({
    port: 0,
    wsPort: 0,
    tlsPort: 0,
    cert: readFileSync(join(dir, 'server.pem')),
    key: readFileSync(join(dir, 'server.key')),
    sysInterval: 0,
    log: () => {},
  });
  addr = await broker.listen();
});

afterAll(async () => {
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('transports', () => {
  it('TLS: exact QoS 1 accounting, and the handshake timed apart from TCP and CONNACK', async () => {
    const r = await runBench({
      mode: 'e2e',
      target: { transport: 'mqtts', host: '127.0.0.1', port: addr.tls!.port, tls: { ca } },
      qos: 1,
      pubs: 2,
      count: 300,
      warmupSec: 0,
      workers: 0,
    });
    expect(r.messages).toMatchObject({ sent: 600, acknowledged: 600, received: 600, lost: 0, duplicated: 0 });
    expect(r.connectMs.tls?.count).toBe(3);
    expect(r.connectMs.tcp?.count).toBe(3);
    expect(r.connectMs.connack?.count).toBe(3);
    expect(r.settings.target).toBe(`mqtts://127.0.0.1:${addr.tls!.port}`);
  });

  it('TLS with a CA that did not sign the certificate: the reason, counted', async () => {
    const r = await runBench({
      mode: 'conn',
      target: { transport: 'mqtts', host: '127.0.0.1', port: addr.tls!.port },
      clients: 2,
      workers: 0,
    });
    expect(r.connections.failed).toBe(2);
    expect(r.outcome.message).toMatch(/not signed by a CA you trust/);
  });

  it('WebSocket: exact QoS 2 accounting', async () => {
    const r = await runBench({
      mode: 'e2e',
      target: { transport: 'ws', host: '127.0.0.1', port: addr.ws!.port, path: '/mqtt' },
      qos: 2,
      count: 300,
      warmupSec: 0,
      workers: 0,
    });
    expect(r.messages).toMatchObject({ sent: 300, acknowledged: 300, received: 300, lost: 0, duplicated: 0 });
    expect(r.connectMs.total?.count).toBe(2);
    expect(r.connectMs.tcp).toBeNull();
  });
});

describe('worker threads', () => {
  it('spread the clients, and their counters and histograms add up exactly', async () => {
    const r = await runBench({
      mode: 'e2e',
      target: { transport: 'mqtt', host: '127.0.0.1', port: addr.tcp!.port },
      qos: 1,
      pubs: 4,
      subs: 3,
      count: 250,
      warmupSec: 0.2,
      workers: 2,
    });
    expect(r.settings.workers).toBe(2);
    expect(r.messages).toMatchObject({
      sent: 1000,
      acknowledged: 1000,
      expected: 3000,
      received: 3000,
      lost: 0,
    });
    expect(r.messages.duplicated + r.messages.reordered).toBe(0);
    expect(r.latencyMs?.count).toBe(3000);
    expect(r.ackMs?.count).toBe(1000);
    expect(r.connectMs.total?.count).toBe(7);
    expect(r.errors).toEqual({});
  });

  it('closed-loop QoS 0 with the window, publishers and subscriber in different threads', async () => {
    const r = await runBench({
      mode: 'e2e',
      target: { transport: 'mqtt', host: '127.0.0.1', port: addr.tcp!.port },
      qos: 0,
      pubs: 4,
      subs: 1,
      durationSec: 1,
      warmupSec: 0,
      workers: 2,
    });
    expect(r.messages.sent).toBeGreaterThan(1000);
    expect(r.messages.received).toBe(r.messages.sent);
    expect(r.messages.lost).toBe(0);
    expect(r.timeline.length).toBeGreaterThanOrEqual(1);
    expect(r.timeline.reduce((n, p) => n + p.sent, 0)).toBe(r.messages.sent);
  });

  it('a worker that cannot start ends the run at once, saying why', async () => {
    const t0 = Date.now();
    const r = await runBench(
      {
        mode: 'e2e',
        target: { transport: 'mqtt', host: '127.0.0.1', port: addr.tcp!.port },
        durationSec: 5,
        workers: 2,
      },
      { workerUrl: new URL('file:///nonexistent/mq-bench-worker.js') },
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.outcome).toMatchObject({ completed: false, stopReason: 'failed' });
    expect(r.outcome.message).toMatch(/internal error: worker \d: Cannot find module/);
  });
});
