/**
 * `mq proxy` end to end: spawns bin/mq proxy in front of `mq broker --port 0` and asserts what a
 * user sees: the trace on stdout (connection id, direction, secrets masked, network strings
 * escaped), --json, --record read back by `mq decode -f FILE --line`, one-line failures on stderr,
 * exit codes (1 usage, 6 port in use, 0 on SIGINT/SIGTERM).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMqProxy } from '../helpers/proxy.js';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

const SECRET = 'top-secret-pw';
let broker: MqBroker;
let dir: string;

beforeAll(async () => {
  broker = await startMqBroker();
  dir = mkdtempSync(join(tmpdir(), 'mq-proxy-e2e-'));
});

afterAll(async () => {
  await broker?.stop();
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

const to = () => ['--to', `mqtt://127.0.0.1:${broker.port}`];

/** `mq pub ARGS` through port; resolves with its exit result. */
function pub(port: number, args: string[]) {
  return spawnMq(['pub', '-p', String(port), ...args]).exit(10_000);
}

describe('mq proxy: usage', () => {
  it('--help shows the fault syntax, examples and exit codes', async () => {
    const r = await spawnMq(['proxy', '--help']).exit(5000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--delay up:20 --delay down:5/);
    expect(r.stdout).toMatch(/Examples:\n {2}mq proxy --listen 1884 --to mqtt:\/\/localhost:1883/);
    expect(r.stdout).toMatch(/Exit codes: 0 stopped by SIGINT\/SIGTERM, 1 usage error, 6 cannot listen/);
  });

  it.each([
    [['--listen', '0'], /^mq: --to URL is required/],
    [['--to', 'mqtt://localhost'], /^mq: give --listen PORT/],
    [['--listen', '0', '--to', 'ftp://x'], /^mq: -L: unknown scheme 'ftp:\/\/'/],
    [
      ['--listen', '0', '--to', 'mqtt://x', '--delay', 'sideways:3'],
      /^mq: --delay: 'sideways:3' is not VALUE, up:VALUE or down:VALUE/,
    ],
    [['--listen', '0', '--to', 'mqtt://x', '--throttle', 'fast'], /^mq: --throttle: 'fast' is not a rate/],
    [['--listen', '0', '--to', 'mqtt://x', '--drop-any'], /^mq: --drop-any needs --drop-every N/],
    [
      ['--listen', '0', '--to', 'mqtt://x', '--trace', 'loud'],
      /^mq: --trace: 'loud' is not line, full or off/,
    ],
    [
      ['--listen', '99999', '--to', 'mqtt://x'],
      /^mq: --listen: '99999' is not a whole number from 0 to 65535/,
    ],
  ])('%j: exit 1, one line', async (args, message) => {
    const r = await spawnMq(['proxy', ...args]).exit(5000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a port in use: exit 6 and one line saying so', async () => {
    const busy = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = await spawnMq(['proxy', '--listen', String(port), ...to()]).exit(5000);
      expect(r.code).toBe(6);
      expect(r.stderr).toBe(
        `mq: cannot listen on 127.0.0.1:${port}: the port is in use (another process listens there; --listen 0 picks a free port)\n`,
      );
    } finally {
      busy.close();
    }
  });

  it('--host other than loopback: a warning on stderr, even with -q', async () => {
    const p = await startMqProxy([...to(), '--host', '0.0.0.0', '-q']);
    await p.proc.waitForLine(
      /^mq proxy: WARNING: listening on 0\.0\.0\.0: reachable from other machines$/,
      5000,
      'stderr',
    );
    expect((await p.stop()).code).toBe(0);
  });

  it('a --record file that cannot be opened: exit 6 and one line', async () => {
    const r = await spawnMq([
      'proxy',
      '--listen',
      '0',
      ...to(),
      '--record',
      join(dir, 'no', 'such', 'dir.ndjson'),
    ]).exit(5000);
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      `mq: --record ${join(dir, 'no', 'such', 'dir.ndjson')}: cannot open: no such directory\n`,
    );
  });
});

describe('mq proxy: output', () => {
  it('prints each packet with its connection and direction; the password is never shown', async () => {
    const p = await startMqProxy([...to()]);
    const r = await pub(p.port, ['-t', 'e2e/a', '-m', 'hello', '-q', '1', '-u', 'bob', '-P', SECRET]);
    expect(r.code).toBe(0);
    // Closed by the client (its DISCONNECT) or by the broker (answering it): whichever end the proxy reads first.
    await p.proc.waitForLine(/\[c1\] closed: the (client|broker) closed the connection$/, 5000);
    const lines = p.proc.lines();
    expect(
      lines.some((l) =>
        /\[c1\] connected: client 127\.0\.0\.1:\d+ \(tcp\) <-> broker 127\.0\.0\.1:\d+$/.test(l),
      ),
    ).toBe(true);
    const trace = lines
      .filter((l) => / \[c1\] (client->broker|broker->client) /.test(l))
      .map((l) => l.replace(/^\S+ /, ''));
    expect(trace).toEqual([
      expect.stringMatching(
        /^\[c1\] client->broker CONNECT v5\.0 clientId="mq-[0-9a-f]{8}" cleanStart keepalive=60 username="bob" password=\(13 bytes, masked\)$/,
      ),
      expect.stringMatching(/^\[c1\] broker->client CONNACK 0x00 Success/),
      '[c1] client->broker PUBLISH qos=1 id=1 topic="e2e/a" payload="hello" (5 B)',
      '[c1] broker->client PUBACK id=1 0x10 No matching subscribers',
      '[c1] client->broker DISCONNECT 0x00 Normal disconnection',
    ]);
    expect(p.proc.stdout).not.toContain(SECRET);
    expect((await p.stop()).code).toBe(0);
  });

  it('--trace full shows every field, the password masked', async () => {
    const p = await startMqProxy([...to(), '--trace', 'full']);
    expect((await pub(p.port, ['-t', 'e2e/full', '-m', 'x', '-u', 'bob', '-P', SECRET])).code).toBe(0);
    await p.proc.waitForLine(/\[c1\] closed:/, 5000);
    expect(p.proc.stdout).toMatch(/\[c1\] client->broker CONNECT \(type 1, MQTT 5\.0\)\n/);
    expect(p.proc.stdout).toMatch(/ {2}password {11}\(13 bytes, masked\)\n/);
    expect(p.proc.stdout).not.toContain(SECRET);
    await p.stop();
  });

  it('--json: one JSON object a line, packets as mq decode --json writes them, password masked', async () => {
    const p = await startMqProxy([...to(), '--json']);
    expect((await pub(p.port, ['-t', 'e2e/json', '-m', 'j', '-u', 'bob', '-P', SECRET])).code).toBe(0);
    await p.proc.waitForLine(/"event":"closed"/, 5000);
    const objects = p.proc.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects[0]).toMatchObject({ event: 'listening', tcp: { host: '127.0.0.1' } });
    const packets = objects.filter((o) => o.event === 'packet');
    expect(packets.map((o) => `${o.direction} ${(o.packet as { type: string }).type}`)).toEqual([
      'client->broker CONNECT',
      'broker->client CONNACK',
      'client->broker PUBLISH',
      'client->broker DISCONNECT',
    ]);
    expect(packets[0]).toMatchObject({
      conn: 'c1',
      offset: 0,
      version: '5.0',
      packet: { username: 'bob', password: '*'.repeat(13) },
    });
    expect(packets[2]).toMatchObject({ packet: { topic: 'e2e/json', payload: 'j' } });
    expect(p.proc.stdout).not.toContain(SECRET);
    await p.stop();
  });

  it('--record FILE: mode 0600, and `mq decode -f FILE --line` reads back the packets the trace showed', async () => {
    const file = join(dir, 'e2e.ndjson');
    const p = await startMqProxy([...to(), '--record', file]);
    expect((await pub(p.port, ['-t', 'e2e/rec', '-m', 'r', '-q', '2', '-u', 'bob', '-P', SECRET])).code).toBe(
      0,
    );
    await p.proc.waitForLine(/\[c1\] closed:/, 5000);
    expect((await p.stop()).code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).not.toContain(Buffer.from(SECRET).toString('hex'));
    const traced = p.proc
      .lines()
      .filter((l) => / (client->broker|broker->client) /.test(l))
      .map((l) =>
        l.replace(/^\S+ \[c1\] client->broker /, 'c1 in ').replace(/^\S+ \[c1\] broker->client /, 'c1 out '),
      );
    const d = await spawnMq(['decode', '-f', file, '--line']).exit(5000);
    expect(d.code).toBe(0);
    const decoded = d.stdout
      .trim()
      .split('\n')
      .map((l) => l.replace(/^\S+ (c1 (?:in|out)) @\d+ /, '$1 '));
    expect(decoded).toEqual(traced);
    expect(decoded[0]).toMatch(/^c1 in CONNECT .*password=\(13 bytes, masked\)$/);
  });

  it('escapes network strings: control and bidi characters never reach the terminal raw', async () => {
    const p = await startMqProxy([...to()]);
    const nasty = 'a\u001b[2Jb\u009b31mc\u202ed';
    expect((await pub(p.port, ['-t', `e2e/${nasty}`, '-m', nasty])).code).toBe(0);
    await p.proc.waitForLine(/\[c1\] closed:/, 5000);
    expect(p.proc.stdout).not.toMatch(/[\u001b\u009b\u202e]/);
    expect(p.proc.stdout).toContain('topic="e2e/a\\u001b[2Jb\\u009b31mc\\u202ed"');
    await p.stop();
    const j = await startMqProxy([...to(), '--json']);
    expect((await pub(j.port, ['-t', `e2e/${nasty}`, '-m', nasty])).code).toBe(0);
    await j.proc.waitForLine(/"event":"closed"/, 5000);
    expect(j.proc.stdout).not.toMatch(/[\u001b\u009b\u202e]/);
    const publish = j.proc
      .lines()
      .map((l) => JSON.parse(l) as { packet?: { type: string; topic: string } })
      .find((o) => o.packet?.type === 'PUBLISH');
    expect(publish?.packet?.topic).toBe(`e2e/${nasty}`);
    await j.stop();
  });

  it('--drop-every marks the packets it dropped', async () => {
    const p = await startMqProxy([...to(), '--drop-every', 'up:2']);
    expect((await pub(p.port, ['-t', 'e2e/drop', '-m', 'x', '--repeat', '3'])).code).toBe(0);
    await p.proc.waitForLine(/\[c1\] closed:/, 5000);
    const publishes = p.proc.lines().filter((l) => l.includes('client->broker PUBLISH'));
    expect(publishes.map((l) => l.endsWith(' DROPPED (--drop-every)'))).toEqual([false, true, false]);
    await p.stop();
  });
});

describe('mq proxy: failures', () => {
  it('an unreachable broker: one line on stderr per client, the proxy keeps running, SIGINT exits 0', async () => {
    const dead = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => dead.once('listening', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const p = await startMqProxy(['--to', `mqtt://127.0.0.1:${port}`]);
    for (const id of ['c1', 'c2']) {
      const r = await pub(p.port, ['-t', 'x', '-m', 'y']);
      expect(r.code).toBe(2);
      await p.proc.waitForLine(
        new RegExp(
          `^mq proxy: \\[${id}\\] client 127\\.0\\.0\\.1:\\d+: cannot reach the broker: could not connect to 127\\.0\\.0\\.1:${port}: connection refused`,
        ),
        5000,
        'stderr',
      );
    }
    const r = await p.proc.kill('SIGINT');
    expect(r.code).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(2);
  });

  it('--strict: a malformed packet closes that connection with one line on stderr', async () => {
    const p = await startMqProxy([...to(), '--strict']);
    const sock = net.connect({ port: p.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    // CONNECT (3.1.1, client id "s"), then a PUBLISH whose topic holds a wildcard.
    sock.write(Buffer.from('100d00044d5154540402003c000173' + '30060003612f2b78', 'hex'));
    await new Promise((r) => sock.once('close', r));
    await p.proc.waitForLine(
      /^mq proxy: \[c1\] client 127\.0\.0\.1:\d+: --strict: PUBLISH at byte 6: .*\[MQTT-3\.3\.2-2\]: connection closed$/,
      5000,
      'stderr',
    );
    expect((await p.stop()).code).toBe(0);
  });

  it('stdout closed (| head): the proxy stops, exit 0', async () => {
    const p = await startMqProxy([...to()]);
    p.proc.proc.stdout?.destroy();
    await pub(p.port, ['-t', 'e2e/pipe', '-m', 'x']);
    const r = await p.proc.exit(5000);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('SIGTERM with a client connected: the client is disconnected, exit 0', async () => {
    const p = await startMqProxy([...to()]);
    const s = spawnMq(['sub', '-p', String(p.port), '-t', 'e2e/held', '--trace', '--no-reconnect']);
    await s.waitForLine(/^<- SUBACK/, 10_000, 'stderr');
    expect((await p.stop()).code).toBe(0);
    const r = await s.exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/connection .*lost/);
  });
});
