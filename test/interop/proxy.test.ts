/**
 * `mq proxy` between real clients and real brokers: mosquitto_pub/sub and mq's client through the
 * proxy to a real Mosquitto and to mq broker, over TCP and WebSocket (listening and upstream), TLS
 * upstream (a CA made with openssl); the recording read back; faults as a client sees them.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testPki } from '../helpers/certs.js';
import { freePort, type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { type MqProxy, startMqProxy } from '../helpers/proxy.js';
import {
  killAll,
  type MqBroker,
  type Spawned,
  spawnMq,
  spawnProcess,
  startMqBroker,
} from '../helpers/spawn.js';

let mosq: MosquittoHandle;
let mqBroker: MqBroker;
let tlsPort: number;
let wssPort: number;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-proxy-interop-'));
  const pki = testPki(dir);
  pki.ca('ca', 'mq proxy interop CA');
  pki.ca('other-ca', 'another CA');
  pki.server('server', 'DNS:localhost');
  // Mosquitto started as root drops to the mosquitto user: it must be able to read the key.
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  chmodSync(dir, 0o755);
  [tlsPort, wssPort] = [await freePort(), await freePort()];
  [mosq, mqBroker] = await Promise.all([
    startMosquitto({
      websockets: true,
      extraConfig: [
        `listener ${tlsPort} 127.0.0.1`,
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
        `listener ${wssPort} lo`,
        'protocol websockets',
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
      ],
    }),
    startMqBroker(),
  ]);
});

afterAll(async () => {
  await killAll();
  await mosq?.stop();
  await mqBroker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** mosquitto_sub ARGS on `port`, resolved once it has subscribed (-d prints the SUBACK line). */
async function mosquittoSub(port: number, args: string[]): Promise<Spawned> {
  const p = spawnProcess('stdbuf', ['-oL', 'mosquitto_sub', '-p', String(port), '-d', ...args]);
  await p.waitForLine(/received SUBACK/, 10_000);
  return p;
}

/** stdout without mosquitto_sub's -d debug lines. */
function payloadLines(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '' && !/^Client \S+ (sending|received) /.test(l) && !/^Subscribed \(mid/.test(l));
}

function mosquittoPub(port: number, args: string[]) {
  return spawnProcess('mosquitto_pub', ['-p', String(port), ...args]).exit(10_000);
}

/** The trace lines of a proxy, without the time stamp: "[c1] client->broker PUBLISH ...". */
function trace(p: MqProxy): string[] {
  return p.proc
    .lines()
    .filter((l) => / (client->broker|broker->client) /.test(l))
    .map((l) => l.replace(/^\S+ /, ''));
}

const brokers = () =>
  [
    ['Mosquitto', mosq.port],
    ['mq broker', mqBroker.port],
  ] as const;

describe.each(['Mosquitto', 'mq broker'])('mosquitto_pub/sub through mq proxy to %s', (name) => {
  const upstreamPort = () => brokers().find(([n]) => n === name)![1];

  it.each([
    ['mqttv31', 'v3.1'],
    ['mqttv311', 'v3.1.1'],
    ['mqttv5', 'v5.0'],
  ])('-V %s: the message arrives, every packet shown with its direction', async (version, label) => {
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${upstreamPort()}`]);
    const topic = `px/${name.replace(' ', '-')}/${version}`;
    const s = await mosquittoSub(p.port, [
      '-t',
      topic,
      '-C',
      '1',
      '-q',
      '1',
      '-V',
      version,
      '-i',
      `sub-${version}`,
    ]);
    expect(
      (await mosquittoPub(p.port, ['-t', topic, '-m', `hi ${version}`, '-q', '1', '-V', version])).code,
    ).toBe(0);
    const out = await s.exit(10_000);
    expect(payloadLines(out.stdout)).toEqual([`hi ${version}`]);
    // Stopped first: then its whole output is in (connections' lines may come in any order).
    expect((await p.stop()).code).toBe(0);
    const lines = trace(p);
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^\\[c1\\] client->broker CONNECT ${label.replace(/\./g, '\\.')} clientId="sub-${version}"`,
        ),
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^\[c1\] broker->client SUBACK id=1 \[0x01 Granted QoS 1\]$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`^\\[c2\\] client->broker PUBLISH qos=1 id=1 topic="${topic}" payload="hi ${version}"`),
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^\\[c1\\] broker->client PUBLISH qos=1 id=\\d+ topic="${topic}"`)),
    );
    expect(lines.filter((l) => l.includes('MALFORMED'))).toEqual([]);
  });
});

describe('transports', () => {
  it('mq client over the WebSocket listener, upstream Mosquitto over TCP', async () => {
    const p = await startMqProxy(['--ws-listen', '0', '--to', `mqtt://127.0.0.1:${mosq.port}`]);
    const s = spawnMq(['sub', '-L', `ws://127.0.0.1:${p.wsPort}/mqtt`, '-t', 'px/ws', '-C', '1', '--trace']);
    await s.waitForLine(/^<- SUBACK/, 10_000, 'stderr');
    const r = await spawnMq([
      'pub',
      '-L',
      `ws://127.0.0.1:${p.wsPort}/mqtt`,
      '-t',
      'px/ws',
      '-m',
      'via ws',
      '-q',
      '1',
    ]).exit(10_000);
    expect(r.code).toBe(0);
    expect((await s.exit(10_000)).stdout).toBe('via ws\n');
    await p.stop();
    expect(p.proc.stdout).toMatch(
      /\[c1\] connected: client 127\.0\.0\.1:\d+ \(ws\) <-> broker 127\.0\.0\.1:\d+/,
    );
  });

  it('mosquitto_pub over TCP, upstream Mosquitto over WebSocket (ws://)', async () => {
    const p = await startMqProxy(['--to', `ws://127.0.0.1:${mosq.wsPort}/mqtt`]);
    const s = await mosquittoSub(mosq.port, ['-t', 'px/wsup', '-C', '1']);
    expect((await mosquittoPub(p.port, ['-t', 'px/wsup', '-m', 'to ws', '-q', '1'])).code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['to ws']);
    await p.stop();
    expect(p.proc.stdout).toMatch(new RegExp(`<-> broker ws://127\\.0\\.0\\.1:${mosq.wsPort}/mqtt`));
    expect(trace(p)).toContainEqual(expect.stringMatching(/^\[c1\] broker->client PUBACK id=1/));
  });

  it('TLS upstream: --to mqtts:// --cafile; a CA that did not sign it: one line on stderr', async () => {
    const good = await startMqProxy([
      '--to',
      `mqtts://localhost:${tlsPort}`,
      '--cafile',
      join(dir, 'ca.pem'),
    ]);
    const s = await mosquittoSub(mosq.port, ['-t', 'px/tls', '-C', '1']);
    expect((await mosquittoPub(good.port, ['-t', 'px/tls', '-m', 'over tls', '-q', '1'])).code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['over tls']);
    await good.stop();

    const bad = await startMqProxy([
      '--to',
      `mqtts://localhost:${tlsPort}`,
      '--cafile',
      join(dir, 'other-ca.pem'),
    ]);
    expect((await mosquittoPub(bad.port, ['-t', 'px/tls', '-m', 'x'])).code).not.toBe(0);
    await bad.proc.waitForLine(
      /^mq proxy: \[c1\] client 127\.0\.0\.1:\d+: cannot reach the broker: .*not signed by a CA you trust/,
      5000,
      'stderr',
    );
    await bad.stop();
  });

  it('WebSocket listener and a wss:// upstream (Mosquitto websockets over TLS): mq pub to mosquitto_sub', async () => {
    const p = await startMqProxy([
      '--ws-listen',
      '0',
      '--to',
      `wss://localhost:${wssPort}/mqtt`,
      '--cafile',
      join(dir, 'ca.pem'),
    ]);
    const s = await mosquittoSub(mosq.port, ['-t', 'px/wss', '-C', '1']);
    const r = await spawnMq([
      'pub',
      '-L',
      `ws://127.0.0.1:${p.wsPort}/mqtt`,
      '-t',
      'px/wss',
      '-m',
      'ws to wss',
      '-q',
      '2',
    ]).exit(10_000);
    expect(r.code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['ws to wss']);
    await p.stop();
    expect(p.proc.stdout).toMatch(new RegExp(`\\(ws\\) <-> broker wss://localhost:${wssPort}/mqtt`));
  });
});

describe('recording', () => {
  it('--record: `mq decode -f FILE --line` gives back the packets the trace showed, the password masked', async () => {
    const file = join(dir, 'interop.ndjson');
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${mosq.port}`, '--record', file]);
    const r = await mosquittoPub(p.port, [
      '-t',
      'px/rec',
      '-m',
      'recorded',
      '-q',
      '2',
      '-u',
      'u',
      '-P',
      'pw-secret',
      '-V',
      'mqttv5',
    ]);
    expect(r.code).toBe(0);
    await p.proc.waitForLine(/\[c1\] closed:/, 5000);
    await p.stop();
    expect(readFileSync(file, 'utf8')).not.toContain(Buffer.from('pw-secret').toString('hex'));
    const d = await spawnMq(['decode', '-f', file, '--line']).exit(5000);
    expect(d.code).toBe(0);
    const decoded = d.stdout
      .trim()
      .split('\n')
      .map((l) =>
        l.replace(
          /^\S+ c1 (in|out) @\d+ /,
          (_m, dir: string) => `[c1] ${dir === 'in' ? 'client->broker' : 'broker->client'} `,
        ),
      );
    expect(decoded).toEqual(trace(p));
    expect(decoded.map((l) => l.split(' ')[2])).toEqual([
      'CONNECT',
      'CONNACK',
      'PUBLISH',
      'PUBREC',
      'PUBREL',
      'PUBCOMP',
      'DISCONNECT',
    ]);
  });
});

describe('faults against Mosquitto', () => {
  it('--drop-every up:2: mosquitto_sub receives every other QoS 0 message mosquitto_pub -l sent', async () => {
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${mosq.port}`, '--drop-every', 'up:2']);
    const s = await mosquittoSub(mosq.port, ['-t', 'px/drop', '-C', '3']);
    const r = await spawnProcess('mosquitto_pub', ['-p', String(p.port), '-t', 'px/drop', '-l'], {
      input: '1\n2\n3\n4\n5\n',
    }).exit(10_000);
    expect(r.code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['1', '3', '5']);
    await p.stop();
  });

  it('--delay up:150: a QoS 1 publish (CONNECT, PUBLISH each held) takes at least 300 ms', async () => {
    const p = await startMqProxy([
      '--to',
      `mqtt://127.0.0.1:${mosq.port}`,
      '--delay',
      'up:150',
      '--trace',
      'off',
    ]);
    const direct = performance.now();
    expect((await mosquittoPub(mosq.port, ['-t', 'px/delay', '-m', 'x', '-q', '1'])).code).toBe(0);
    const directMs = performance.now() - direct;
    const start = performance.now();
    expect((await mosquittoPub(p.port, ['-t', 'px/delay', '-m', 'x', '-q', '1'])).code).toBe(0);
    const ms = performance.now() - start;
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms - directMs).toBeLessThan(300 + 200);
    await p.stop();
  });

  it('--throttle down:20k: a 40 kB message reaches mosquitto_sub in about 2 s', async () => {
    const p = await startMqProxy([
      '--to',
      `mqtt://127.0.0.1:${mosq.port}`,
      '--throttle',
      'down:20k',
      '--trace',
      'off',
    ]);
    const s = await mosquittoSub(p.port, ['-t', 'px/throttle', '-C', '1', '-F', '%l']);
    const start = performance.now();
    expect((await mosquittoPub(mosq.port, ['-t', 'px/throttle', '-m', 'x'.repeat(40_000)])).code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['40000']);
    const seconds = (performance.now() - start) / 1000;
    expect(seconds).toBeGreaterThan(1.7);
    expect(seconds).toBeLessThan(3.5);
    await p.stop();
  });

  it('--disconnect-after 0.5: mosquitto_sub loses its connection; Mosquitto publishes its will', async () => {
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${mosq.port}`, '--disconnect-after', '0.5']);
    const watcher = await mosquittoSub(mosq.port, ['-t', 'px/will', '-C', '1']);
    const victim = spawnProcess('mosquitto_sub', [
      '-p',
      String(p.port),
      '-t',
      'px/none',
      '--will-topic',
      'px/will',
      '--will-payload',
      'cut',
      '-k',
      '30',
    ]);
    expect(payloadLines((await watcher.exit(10_000)).stdout)).toEqual(['cut']);
    await p.proc.waitForLine(/\[c1\] closed: --disconnect-after 0\.5 s: connection cut$/, 5000);
    await victim.kill('SIGTERM');
    await p.stop();
  });

  it('garbage from a client: Mosquitto closes that connection, the proxy reports it and serves the next client', async () => {
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${mosq.port}`]);
    const sock = net.connect({ port: p.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.write(Buffer.from('000030ffffffffff', 'hex')); // reserved type 0, then a remaining length over 4 bytes
    await new Promise((r) => sock.once('close', r));
    await p.proc.waitForLine(/\[c1\] client->broker .*MALFORMED/, 5000);
    await p.proc.waitForLine(/\[c1\] closed: /, 5000);
    const s = await mosquittoSub(mosq.port, ['-t', 'px/after', '-C', '1']);
    expect((await mosquittoPub(p.port, ['-t', 'px/after', '-m', 'still serving'])).code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['still serving']);
    expect((await p.stop()).code).toBe(0);
  });
});
