/**
 * `mq sub` end to end: spawns bin/mq against `mq broker --port 0`; an independent client (MQTT.js)
 * publishes. Asserts what a user sees: stdout, stderr, exit code. To know when `mq sub` has
 * subscribed, tests pass --trace and wait for the SUBACK line on stderr.
 */
import mqtt, { type IClientPublishOptions, type MqttClient as JsClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { startFakeBroker } from '../helpers/fake-broker.js';
import {
  killAll,
  MQ_BIN,
  type MqBroker,
  type Spawned,
  spawnMq,
  spawnProcess,
  startMqBroker,
} from '../helpers/spawn.js';

let broker: MqBroker;
let denying: MqBroker;
let flaky: MqBroker;
let publisher: JsClient;

beforeAll(async () => {
  [broker, denying, flaky] = await Promise.all([
    startMqBroker(),
    startMqBroker(['--deny-subscribe', 'secret/#']),
    startMqBroker(['--disconnect-after', '1']),
  ]);
  publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
});

afterAll(async () => {
  await publisher?.endAsync().catch(() => undefined);
  await Promise.all([broker?.stop(), denying?.stop(), flaky?.stop()]);
  await killAll();
});

function sub(args: string[], port = broker.port): Spawned {
  return spawnMq(['sub', '-p', String(port), ...args]);
}

/** Starts `mq sub ARGS --trace` and resolves once its SUBACK arrived. */
async function subscribed(args: string[], port = broker.port): Promise<Spawned> {
  const p = sub([...args, '--trace'], port);
  await p.waitForLine(/^<- SUBACK/, 10_000, 'stderr');
  return p;
}

function pub(topic: string, payload: string | Buffer, opts: IClientPublishOptions = {}): Promise<unknown> {
  return publisher.publishAsync(topic, payload, { qos: 1, ...opts });
}

describe('mq sub: output', () => {
  it('prints the payload only on a pipe, and -C exits 0 after N messages', async () => {
    const p = await subscribed(['-t', 'out/a', '-C', '2']);
    await pub('out/a', 'one');
    await pub('out/a', 'two');
    const r = await p.exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('one\ntwo\n');
  });

  it('-v prints topic and payload; an empty payload shows (null)', async () => {
    const p = await subscribed(['-t', 'out/v/#', '-v', '-C', '2']);
    await pub('out/v/1', 'hello world');
    await pub('out/v/2', '');
    const r = await p.exit(10_000);
    expect(r.stdout).toBe('out/v/1 hello world\nout/v/2 (null)\n');
  });

  it('-N prints no newline after each message', async () => {
    const p = await subscribed(['-t', 'out/n', '-N', '-C', '2']);
    await pub('out/n', 'a');
    await pub('out/n', 'b');
    expect((await p.exit(10_000)).stdout).toBe('ab');
  });

  it('-F uses mosquitto_sub format codes', async () => {
    const p = await subscribed(['-t', 'out/f', '-q', '1', '-F', '%t|%q|%r|%l|%x|%p', '-C', '1']);
    await pub('out/f', 'hi', { qos: 1 });
    expect((await p.exit(10_000)).stdout).toBe('out/f|1|0|2|6869|hi\n');
  });

  it('an invalid -F is refused before connecting: exit 1', async () => {
    const r = await sub(['-t', 'x', '-F', '%Z']).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mq: -F: invalid format specifier 'Z'/);
  });

  it('--json prints one valid JSON object per line, binary-safe', async () => {
    const p = await subscribed(['-t', 'out/j/#', '--json', '-C', '2', '-q', '1']);
    await pub('out/j/text', 'héllo', {
      properties: { contentType: 'text/plain', userProperties: { k: 'v' } },
    });
    await pub('out/j/bin', Buffer.from([0xff, 0x00, 0x80]));
    const r = await p.exit(10_000);
    const [a, b] = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(a).toMatchObject({
      topic: 'out/j/text',
      qos: 1,
      retain: false,
      dup: false,
      payload: 'héllo',
      encoding: 'utf8',
      properties: { contentType: 'text/plain', userProperties: [['k', 'v']] },
    });
    expect(typeof a.packetId).toBe('number');
    expect(a.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(b).toMatchObject({ topic: 'out/j/bin', encoding: 'base64', payload_base64: '/wCA' });
  });

  it.each([
    ['hex', '00ff0a\n'],
    ['base64', 'AP8K\n'],
    ['raw', '\u0000\u00ff\n'],
  ])('--output %s encodes the payload', async (mode, expected) => {
    const p = await subscribed(['-t', `out/${mode}`, '--output', mode, '-C', '1']);
    await pub(`out/${mode}`, Buffer.from([0x00, 0xff, 0x0a]));
    const r = await p.exit(10_000);
    expect(Buffer.from(r.stdout, 'utf8').length).toBeGreaterThan(0);
    if (mode === 'raw') {
      // stdout is decoded as UTF-8 by the helper: compare bytes through the replacement.
      expect(r.stdout.startsWith('\u0000')).toBe(true);
      expect(r.stdout.endsWith('\n')).toBe(true);
    } else {
      expect(r.stdout).toBe(expected);
    }
  });

  it('--output json pretty-prints', async () => {
    const p = await subscribed(['-t', 'out/pj', '--output', 'json', '-C', '1']);
    await pub('out/pj', 'x');
    const r = await p.exit(10_000);
    expect(r.stdout).toMatch(/^\{\n {2}"ts": /);
    expect(JSON.parse(r.stdout)).toMatchObject({ topic: 'out/pj', payload: 'x' });
  });

  it.each([
    ['coloured', '', true],
    ['plain with NO_COLOR', '1', false],
  ])(
    'on a terminal shows a readable view (%s): topic, QoS, retained, pretty JSON',
    async (_name, noColor, coloured) => {
      await pub('tty/x', '{"temp":21.5,"ok":true}', { retain: true });
      // script(1) gives mq a pseudo-terminal for stdout.
      const cmd = `${process.execPath} ${MQ_BIN} sub -p ${broker.port} -t tty/x -C 1`;
      const r = await spawnProcess('script', ['-qfec', cmd, '/dev/null'], {
        env: { NO_COLOR: noColor },
      }).exit(10_000);
      expect(r.code).toBe(0);
      const text = r.stdout.replace(/\r/g, '');
      const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
      expect(plain).toMatch(
        /^\d\d:\d\d:\d\d\.\d{3} tty\/x qos0 retained 23 B\n {2}\{\n {4}"temp": 21\.5,\n {4}"ok": true\n {2}\}\n/,
      );
      expect(text.includes('\x1b[')).toBe(coloured);
      await pub('tty/x', '', { retain: true });
    },
  );

  it('a closed stdout pipe (| head -1) ends quietly with exit 0', async () => {
    const p = await subscribed(['-t', 'out/pipe']);
    await pub('out/pipe', 'first');
    await p.waitForLine(/^first$/, 5000);
    p.proc.stdout?.destroy();
    // Keep publishing until mq notices the closed pipe on its next write.
    let r: Awaited<ReturnType<Spawned['exit']>> | undefined;
    for (let i = 0; i < 50 && r === undefined; i++) {
      await pub('out/pipe', `more ${i}`);
      r = await p.exit(200).catch(() => undefined);
      if (r === undefined && p.exited) r = await p.exit(100);
    }
    expect(r?.code).toBe(0);
    expect(r?.stderr.replace(/^(->|<-|\s).*\n/gm, '')).toBe('');
  }, 40_000);
});

describe('mq sub: what gets printed', () => {
  it('subscribes to several -t with QoS per filter in order', async () => {
    const p = await subscribed([
      '-t',
      'qos/a',
      '-t',
      'qos/b',
      '-q',
      '2',
      '-q',
      '0',
      '-F',
      '%t %q',
      '-C',
      '2',
    ]);
    await pub('qos/a', 'x', { qos: 2 });
    await pub('qos/b', 'x', { qos: 2 });
    const lines = (await p.exit(10_000)).stdout.trimEnd().split('\n').sort();
    expect(lines).toEqual(['qos/a 2', 'qos/b 0']);
  });

  it('a -q count that matches neither one nor every -t is a usage error', async () => {
    const r = await sub(['-t', 'a', '-t', 'b', '-t', 'c', '-q', '1', '-q', '2']).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/-q given 2 times for 3 -t filter/);
  });

  it('-T filters topics out', async () => {
    const p = await subscribed(['-t', 'ft/#', '-T', 'ft/noise/#', '-v', '-C', '1']);
    await pub('ft/noise/1', 'skip me');
    await pub('ft/signal', 'keep');
    expect((await p.exit(10_000)).stdout).toBe('ft/signal keep\n');
  });

  it('-R skips retained (stale) messages', async () => {
    await pub('stale/x', 'old', { retain: true });
    const p = await subscribed(['-t', 'stale/x', '-R', '-C', '1']);
    await pub('stale/x', 'new');
    expect((await p.exit(10_000)).stdout).toBe('new\n');
    await pub('stale/x', '', { retain: true });
  });

  it('--retained-only prints retained messages and exits at the first live one', async () => {
    await pub('ro/1', 'r1', { retain: true });
    await pub('ro/2', 'r2', { retain: true });
    const p = await subscribed(['-t', 'ro/#', '--retained-only', '-v']);
    await p.waitForLines(2, 5000);
    await pub('ro/live', 'live');
    const r = await p.exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').sort()).toEqual(['ro/1 r1', 'ro/2 r2']);
  });

  it('--remove-retained clears each retained message it receives', async () => {
    await pub('rr/1', 'gone', { retain: true });
    const p = await subscribed(['-t', 'rr/#', '--remove-retained', '-C', '1']);
    expect((await p.exit(10_000)).stdout).toBe('gone\n');
    // A new subscriber gets no retained message: -W times out (exit 3) with nothing printed.
    const r = await sub(['-t', 'rr/#', '-W', '1']).exit(10_000);
    expect(r).toMatchObject({ code: 3, stdout: '' });
  });

  it('-E exits 0 once the subscription is acknowledged', async () => {
    const r = await sub(['-t', 'e/x', '-E']).exit(10_000);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('-U removes a subscription from a persistent session', async () => {
    const id = `mq-u-${process.pid}`;
    expect((await sub(['-i', id, '-c', '-t', 'u/x', '-q', '1', '-E']).exit(10_000)).code).toBe(0);
    expect((await sub(['-i', id, '-c', '-U', 'u/x']).exit(10_000)).code).toBe(0);
    await pub('u/x', 'queued?');
    // Back in the session (subscribed to something else): the message for u/x was not kept.
    const r = await sub(['-i', id, '-c', '-t', 'u/other', '-W', '1']).exit(10_000);
    expect(r).toMatchObject({ code: 3, stdout: '' });
  });

  it.each([
    ['payload substring', 'ready', ['waiting', 'all ready now', 'after'], 'waiting\nall ready now\n'],
    ['/regex/', '/^n=\\d{2}$/', ['n=1', 'n=42', 'n=7'], 'n=1\nn=42\n'],
    ['payload=TEXT', 'payload=done', ['done?', 'done', 'x'], 'done?\ndone\n'],
    ['topic=FILTER', 'topic=until/+/end', ['a', 'b', 'c'], 'a\nb\n'],
  ])('--until %s exits 0 after the first match', async (_name, expr, payloads, expected) => {
    const p = await subscribed(['-t', 'until/#', '--until', expr]);
    const topics = ['until/x/start', 'until/x/end', 'until/x/more'];
    for (const [i, payload] of payloads.entries()) await pub(topics[i] ?? 'until/x', payload);
    const r = await p.exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(expected);
  });

  it('--until /regex/ that backtracks for hours on a message: counted as no match after 1 s, and the next message still ends it', async () => {
    const p = await subscribed(['-t', 'until-slow/#', '--until', '/^(a+)+$/', '-v']);
    await pub('until-slow/1', `${'a'.repeat(40)}b`);
    await pub('until-slow/2', 'aaa');
    const r = await p.exit(15_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`until-slow/1 ${'a'.repeat(40)}b\nuntil-slow/2 aaa\n`);
    expect(r.stderr).toMatch(
      /^mq: --until \/\^\(a\+\)\+\$\/: gave up on the message on 'until-slow\/1' after 1\.0 s \(counted as no match\)$/m,
    );
  });

  it('-W exits 3 when time runs out, saying how many messages came', async () => {
    const r = await sub(['-t', 'nothing/here', '-C', '2', '-W', '0.5']).exit(10_000);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('mq: timed out after 0.5 s (0 of 2 messages)\n');
  });

  it('--retain-as-published keeps the retain flag on live messages (v5)', async () => {
    const p = await subscribed(['-t', 'rap/x', '--retain-as-published', '-F', '%r', '-C', '1']);
    await pub('rap/x', 'r', { retain: true });
    expect((await p.exit(10_000)).stdout).toBe('1\n');
    await pub('rap/x', '', { retain: true });
  });

  it('--retain-handling 2 does not send retained messages on subscribe (v5)', async () => {
    await pub('rh/x', 'retained', { retain: true });
    const r = await sub(['-t', 'rh/x', '--retain-handling', '2', '-W', '0.7']).exit(10_000);
    expect(r).toMatchObject({ code: 3, stdout: '' });
    await pub('rh/x', '', { retain: true });
  });

  it('--no-local does not deliver the subscriber its own messages (v5)', async () => {
    // mq sub's own publication: --remove-retained publishes an empty retained message.
    await pub('nl/x', 'r', { retain: true });
    const p = await subscribed(['-t', 'nl/x', '--no-local', '--remove-retained', '-v']);
    await p.waitForLine(/^nl\/x r$/, 5000);
    await pub('nl/x', 'marker');
    await p.waitForLine(/^nl\/x marker$/, 5000);
    await p.kill('SIGINT');
    expect(p.lines()).toEqual(['nl/x r', 'nl/x marker']);
  });

  it('v5 subscription options with -V 3.1.1 are a usage error', async () => {
    const r = await sub(['-t', 'a', '--no-local', '-V', '3.1.1']).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--no-local is an MQTT 5 subscription option: it needs -V 5/);
  });
});

describe('mq sub: connection', () => {
  it('Ctrl-C (SIGINT) disconnects cleanly (no will) and exits 0', async () => {
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const wills: string[] = [];
    watcher.on('message', (_t, payload) => wills.push(payload.toString()));
    await watcher.subscribeAsync('will/x', { qos: 1 });
    const p = await subscribed(['-t', 'sig/x', '--will-topic', 'will/x', '--will-payload', 'died']);
    const r = await p.kill('SIGINT', 5000);
    expect(r.code).toBe(0);
    // Had the will been sent, it would arrive before this marker.
    const marker = new Promise<void>((resolve) => watcher.on('message', () => resolve()));
    await watcher.publishAsync('will/x', 'marker', { qos: 1 });
    await marker;
    expect(wills).toEqual(['marker']);
    await watcher.endAsync();
  });

  it('a lost connection is reported on stderr and the subscriber reconnects', async () => {
    const p = sub(['-t', 'rc/x', '-C', '1', '--reconnect', '0.1..0.5'], flaky.port);
    await p.waitForLine(
      /^mq: connection lost: .*0x98 Administrative action.*; reconnecting in \d+\.\d s$/,
      10_000,
      'stderr',
    );
    await p.waitForLine(/^mq: reconnected/, 10_000, 'stderr');
    const fp = await mqtt.connectAsync(`mqtt://127.0.0.1:${flaky.port}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    // Retained: whether the subscriber is connected now (live) or between two of the broker's
    // cuts (it gets it when it resubscribes), it prints it once and exits (-C 1).
    await fp.publishAsync('rc/x', 'after reconnect', { qos: 1, retain: true });
    const r = await p.exit(10_000);
    await fp.publishAsync('rc/x', '', { qos: 1, retain: true }).catch(() => undefined);
    await fp.endAsync().catch(() => undefined);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('after reconnect\n');
  }, 40_000);

  it('-W and SIGTERM end mq sub while the broker drops every connection before its SUBACK', async () => {
    const fake = await startFakeBroker((packet, session) => {
      if (packet.type === 'CONNECT') session.socket.end(encode({ type: 'DISCONNECT', reasonCode: 0x89 }, 5));
    });
    try {
      const timed = await sub(['-t', 'x', '-W', '1', '--reconnect', '0.2..0.5'], fake.port).exit(10_000);
      expect(timed.code).toBe(3);
      expect(timed.stderr).toMatch(/timed out after 1 s/);
      const p = sub(['-t', 'x', '--reconnect', '0.2..0.5'], fake.port);
      await p.waitForLine(/reconnecting/, 10_000, 'stderr');
      const r = await p.kill('SIGTERM', 5000);
      expect(r).toMatchObject({ code: 0, signal: null });
    } finally {
      await fake.stop();
    }
  });

  it('--no-reconnect: a lost connection exits 2 with the reason', async () => {
    const r = await sub(['-t', 'rc/y', '--no-reconnect'], flaky.port).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/0x98 Administrative action/);
  });

  it('every subscription refused: exit 2 with the reason by name', async () => {
    const r = await sub(['-t', 'secret/x'], denying.port).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mq: subscription to 'secret\/x' refused: 0x87 Not authorized/);
  });

  it('one of two subscriptions refused: a warning, and the other keeps working', async () => {
    const p = sub(['-t', 'secret/x', '-t', 'open/x', '-C', '1'], denying.port);
    await p.waitForLine(/subscription to 'secret\/x' refused: 0x87 Not authorized/, 10_000, 'stderr');
    const dp = await mqtt.connectAsync(`mqtt://127.0.0.1:${denying.port}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    await dp.publishAsync('open/x', 'fine', { qos: 1 });
    const r = await p.exit(10_000);
    await dp.endAsync();
    expect(r).toMatchObject({ code: 0, stdout: 'fine\n' });
  });

  it.each([
    [['-t', 'a/#b'], /-t: .*'#'.*are all '\+' and '#' wildcards correct\?/],
    [[], /no topic: give -t FILTER/],
    [['-t', 'a', '-R', '--retained-only'], /-R and --retained-only cannot be combined/],
    [['-t', 'a', '--output', 'xml'], /--output: 'xml' is not one of text, json, ndjson, hex, base64, raw/],
    [['-t', 'a', '-F', '%t', '--output', 'hex'], /-F and --output hex cannot be combined/],
    [['-t', 'a', '--until', '/(/'], /--until: '\/\(\/' is not a valid regular expression/],
  ])('%j is a usage error: one line, exit 1', async (args, message) => {
    const r = await sub(args as string[]).exit(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help shows examples, --until syntax and exit codes', async () => {
    const r = await spawnMq(['sub', '--help']).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/--until EXPR: \/regex\/flags/);
    expect(r.stdout).toMatch(/3 -W timeout/);
  });
});
