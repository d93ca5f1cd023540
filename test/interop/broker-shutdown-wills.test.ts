/**
 * Wills when the broker stops, as mosquitto_sub sees them. Mosquitto 2.0 publishes, as it exits,
 * the wills of its connected clients and those waiting out a Will Delay Interval, and the clients
 * still connected receive them (then it closes without a DISCONNECT). mq broker does the same on
 * SIGINT and SIGTERM, then sends v5 clients DISCONNECT 0x8B. The same scenario runs against both.
 * (Mosquitto 2.0.11 here lost the will waiting out its delay in 4 of 10 runs: it writes those
 * wills after its event loop has ended, best effort. mq is held to all of them.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startMosquitto } from '../helpers/mosquitto.js';
import { killAll, type Spawned, spawnProcess, startMqBroker } from '../helpers/spawn.js';

afterAll(async () => {
  await killAll();
});

interface Running {
  port: number;
  /** Resolves once the broker logged that client `id` lost its connection. */
  lost(id: string): Promise<void>;
  stop(): Promise<void>;
  /** mq: every will arrives, v5 clients get DISCONNECT 0x8B (Server shutting down) after them. */
  mq: boolean;
}

const BROKERS: [string, () => Promise<Running>][] = [
  [
    'mq broker (SIGINT)',
    async () => {
      const b = await startMqBroker();
      return {
        port: b.port,
        mq: true,
        lost: async (id) => {
          await b.proc.waitForLine(new RegExp(`\\[${id}\\] connection lost`), 5000, 'stderr');
        },
        stop: async () => {
          const r = await b.proc.kill('SIGINT', 5000);
          expect(r.code).toBe(0);
          expect(r.stderr).toMatch(/stopping: 4 will\(s\) published/);
        },
      };
    },
  ],
  [
    'Mosquitto (SIGTERM)',
    async () => {
      const m = await startMosquitto();
      return {
        port: m.port,
        mq: false,
        lost: (id) =>
          new Promise((resolve, reject) => {
            const seen = () => m.log().includes(`Client ${id} closed its connection`);
            const timer = setTimeout(() => reject(new Error(`Mosquitto did not log ${id}'s loss`)), 5000);
            const check = () => {
              if (!seen()) return;
              clearTimeout(timer);
              m.proc.stderr?.off('data', check);
              resolve();
            };
            m.proc.stderr?.on('data', check);
            // Its handler is attached after startMosquitto's: log() already holds this chunk.
            setImmediate(check);
          }),
        stop: m.stop,
      };
    },
  ],
];

/** mosquitto_sub, line-buffered, with -d; resolves once its SUBACK (or CONNACK, with no -t) came. */
async function mosquittoSub(port: number, args: string[]): Promise<Spawned> {
  const p = spawnProcess('stdbuf', ['-oL', 'mosquitto_sub', '-p', String(port), '-d', ...args]);
  await p.waitForLine(/received SUBACK/, 10_000);
  return p;
}

describe.each(BROKERS)('%s publishes the wills as it stops', (_name, start) => {
  it('connected subscribers (v5 and 3.1.1) receive every will: connected clients, delayed, waiting', async () => {
    const broker = await start();
    const port = broker.port;
    const watch = ['-t', 'bye/#', '-v', '-q', '1'];
    const sub5 = await mosquittoSub(port, ['-V', 'mqttv5', ...watch]);
    const sub311 = await mosquittoSub(port, ['-V', 'mqttv311', ...watch]);
    const owner = (version: string, topic: string, extra: string[] = []) =>
      mosquittoSub(port, [
        '-V',
        version,
        '-t',
        'x',
        '--will-topic',
        topic,
        '--will-payload',
        'gone',
        ...extra,
      ]);
    await owner('mqttv5', 'bye/v5');
    await owner('mqttv311', 'bye/v311', ['--will-qos', '1']);
    const delayed = ['-c', '-x', '60', '-D', 'will', 'will-delay-interval', '30'];
    await owner('mqttv5', 'bye/delayed', ['-i', 'bye-delayed', ...delayed]);
    // Its connection ends (SIGKILL: no DISCONNECT), its will waits out the delay.
    const gone = await owner('mqttv5', 'bye/waiting', ['-i', 'bye-waiting', ...delayed]);
    await gone.kill('SIGKILL');
    await broker.lost('bye-waiting');

    await broker.stop();
    const connected = ['bye/delayed gone', 'bye/v311 gone', 'bye/v5 gone'];
    const all = [...connected, 'bye/waiting gone'].sort();
    for (const s of [sub5, sub311]) {
      for (const e of broker.mq ? all : connected) await s.waitForLine(new RegExp(`^${e}$`), 10_000);
      const got = s
        .lines()
        .filter((l) => l.startsWith('bye/'))
        .sort();
      if (broker.mq) expect(got).toEqual(all);
      else expect(all).toEqual(expect.arrayContaining(got));
    }
    if (broker.mq) {
      // After the wills: nothing may follow a DISCONNECT [MQTT-3.14.4-1].
      await sub5.waitForLine(/Received DISCONNECT \(139\)/, 5000);
      const lines = sub5.lines();
      const disconnect = lines.findIndex((l) => l.startsWith('Received DISCONNECT'));
      expect(lines.slice(disconnect).filter((l) => l.startsWith('bye/'))).toEqual([]);
    }
  }, 40_000);
});
