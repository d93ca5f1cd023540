/**
 * The engine when things go wrong: the broker killed mid-run, Ctrl-C, nothing listening, the broker
 * refusing. Every run must end soon, with a report of what was measured and the errors counted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startBuiltinBroker } from '../../src/bench/builtin.js';
import { runBench } from '../../src/bench/engine.js';
import { freePort } from '../../src/bench/proc.js';
import { killAll, startMqBroker } from '../helpers/spawn.js';

afterAll(() => killAll());

const local = (port: number) => ({ transport: 'mqtt' as const, host: '127.0.0.1', port });

describe('a run that cannot go on', () => {
  it('ends within a few seconds of the broker being killed, and still reports', async () => {
    const broker = await startMqBroker(['-q']);
    let progressed = 0;
    const run = runBench(
      {
        mode: 'e2e',
        target: local(broker.port),
        qos: 1,
        pubs: 2,
        subs: 1,
        durationSec: 60,
        warmupSec: 0,
        workers: 0,
      },
      {
        onProgress: (p) => {
          progressed = p.received;
        },
      },
    );
    // Kill it once messages flow (bounded: 10 s).
    const deadline = Date.now() + 10_000;
    while (progressed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(progressed).toBeGreaterThan(0);
    await broker.kill9();
    const killedAt = Date.now();
    const r = await run;
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect(r.outcome).toMatchObject({ completed: false, stopReason: 'connections-lost' });
    expect(r.messages.sent).toBeGreaterThan(0);
    expect(r.messages.received).toBeGreaterThan(0);
    expect(r.connections.lost).toBe(3);
    const lostKeys = Object.keys(r.errors).filter((k) => k.startsWith('connection lost'));
    expect(lostKeys.length).toBeGreaterThan(0);
    expect(r.durationSec).toBeGreaterThan(0);
    expect(r.durationSec).toBeLessThan(30);
  });

  it('open loop: a stalled broker shows in full in the latency (coordinated omission corrected)', async () => {
    const broker = await startMqBroker(['-q']);
    // 500 msg/s at QoS 1 with 8 in flight: during a 1 s stop the window fills in 16 ms, and the
    // messages due meanwhile are sent late, stamped with the time they were due.
    const run = runBench({
      mode: 'e2e',
      target: local(broker.port),
      qos: 1,
      inflight: 8,
      rate: 500,
      durationSec: 3,
      warmupSec: 0,
      workers: 0,
    });
    await new Promise((r) => setTimeout(r, 1000));
    broker.proc.proc.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 1000));
    broker.proc.proc.kill('SIGCONT');
    const r = await run;
    await broker.stop();
    expect(r.messages.lost).toBe(0);
    expect(r.latencyMs!.p99).toBeGreaterThanOrEqual(500);
    expect(r.latencyMs!.max).toBeGreaterThanOrEqual(900);
    // Measured from the moment each was written (as a closed-loop tool does), the stall nearly
    // vanishes from p99 (here: ~6 ms against ~970 ms).
    expect(r.serviceLatencyMs!.p99).toBeLessThan(r.latencyMs!.p99 / 2);
  });

  it('stops on abort (Ctrl-C) with the figures so far', async () => {
    const broker = await startBuiltinBroker();
    try {
      const abort = new AbortController();
      const t0 = Date.now();
      setTimeout(() => abort.abort(), 800);
      const r = await runBench(
        { mode: 'e2e', target: local(broker.port), qos: 0, durationSec: 60, warmupSec: 0, workers: 0 },
        { signal: abort.signal },
      );
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(r.outcome).toMatchObject({ completed: false, stopReason: 'aborted' });
      expect(r.messages.sent).toBeGreaterThan(0);
      expect(r.messages.received).toBe(r.messages.sent);
      expect(r.durationSec).toBeGreaterThan(0.3);
      expect(r.durationSec).toBeLessThan(5);
    } finally {
      await broker.close();
    }
  });

  it('says why when nothing listens: connection refused, counted by reason', async () => {
    const port = await freePort();
    const r = await runBench({
      mode: 'e2e',
      target: local(port),
      pubs: 2,
      subs: 1,
      workers: 0,
      durationSec: 1,
    });
    expect(r.outcome.stopReason).toBe('connect-failed');
    expect(r.outcome.completed).toBe(false);
    expect(r.outcome.message).toMatch(/connection refused/);
    // Subscribers connect first; without one the publishers are not tried.
    expect(r.errors).toEqual({ ECONNREFUSED: 1 });
    expect(r.connections).toMatchObject({ attempted: 1, connected: 0, failed: 1 });
    expect(r.durationSec).toBe(0);
  });

  it('counts CONNACK refusals by reason code', async () => {
    const broker = await startBuiltinBroker({ users: { alice: 'secret' } });
    try {
      const r = await runBench({ mode: 'conn', target: local(broker.port), clients: 5, workers: 0 });
      // mq broker answers an anonymous client, when users are configured, 0x86 (as Mosquitto does).
      expect(r.errors).toEqual({ 'CONNACK 0x86 Bad User Name or Password': 5 });
      expect(r.connections).toMatchObject({ attempted: 5, connected: 0, failed: 5 });
      expect(r.outcome.stopReason).toBe('connect-failed');

      const wrong = await runBench({
        mode: 'conn',
        target: { ...local(broker.port), username: 'alice', password: Buffer.from('nope') },
        version: 4,
        clients: 2,
        workers: 0,
      });
      expect(Object.keys(wrong.errors)).toEqual(['CONNACK 0x04 bad user name or password']);
      // The user name is in the report; the password never is.
      expect(wrong.settings.username).toBe('alice');
      expect(JSON.stringify(wrong)).not.toContain('nope');

      const ok = await runBench({
        mode: 'conn',
        target: { ...local(broker.port), username: 'alice', password: Buffer.from('secret') },
        clients: 3,
        workers: 0,
      });
      expect(ok.connections).toMatchObject({ connected: 3, failed: 0 });
      expect(ok.errors).toEqual({});
    } finally {
      await broker.close();
    }
  });

  it('hold keeps connections open until stopped, and reports memory per connection', async () => {
    const broker = await startBuiltinBroker();
    try {
      const abort = new AbortController();
      const run = runBench(
        {
          mode: 'conn',
          target: local(broker.port),
          clients: 30,
          hold: true,
          keepalive: 1,
          workers: 0,
          durationSec: null,
        },
        {
          signal: abort.signal,
          onProgress: (p) => {
            // Held for two keepalive periods: the broker would have closed idle ones after 1.5 s.
            if (p.elapsedSec > 3) abort.abort();
          },
        },
      );
      const r = await run;
      expect(r.outcome).toMatchObject({ completed: true, stopReason: 'held' });
      expect(r.connections).toMatchObject({ connected: 30, lost: 0 });
      expect(r.errors).toEqual({});
      expect(r.durationSec).toBeGreaterThan(2);
      expect(r.memory.perConnectionKiB).not.toBeNull();
    } finally {
      await broker.close();
    }
  });
});
