/**
 * `mq pub` end to end: spawns bin/mq against `mq broker --port 0`; an independent client (MQTT.js)
 * checks what arrives. Asserts what a user sees: exit code, stdout, stderr.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient as JsClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  properties: Record<string, unknown> | undefined;
}

/** An MQTT.js subscriber that collects messages; `next(n)` waits (bounded) for n of them. */
async function observe(port: number, filter: string, options: IClientOptions = {}) {
  const client: JsClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    ...options,
  });
  const got: Received[] = [];
  const waiters: (() => void)[] = [];
  client.on('message', (topic, payload, packet) => {
    got.push({
      topic,
      payload: Buffer.from(payload),
      qos: packet.qos,
      retain: packet.retain,
      properties: packet.properties as Record<string, unknown> | undefined,
    });
    for (const w of waiters.splice(0)) w();
  });
  await client.subscribeAsync(filter, { qos: 2 });
  return {
    got,
    client,
    next: (n: number, timeoutMs = 5000): Promise<Received[]> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`got ${got.length} of ${n} messages on ${filter} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        const check = () => {
          if (got.length >= n) {
            clearTimeout(timer);
            resolve(got.slice(0, n));
          } else waiters.push(check);
        };
        check();
      }),
    close: () => client.endAsync(),
  };
}

let broker: MqBroker;
let refusing: MqBroker;
let limited: MqBroker;
let port: number;
let dir: string;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [broker, refusing, limited] = await Promise.all([
    startMqBroker(['--deny-publish', 'forbidden/#']),
    startMqBroker(['--refuse-connect', '0x86']),
    startMqBroker(['--max-qos', '1', '--no-retain']),
  ]);
  port = broker.port;
  dir = mkdtempSync(join(tmpdir(), 'mq-pub-test-'));
});

afterAll(async () => {
  for (const c of closers) await c().catch(() => undefined);
  await Promise.all([broker?.stop(), refusing?.stop(), limited?.stop()]);
  await killAll();
});

async function pub(args: string[], input?: string | Buffer) {
  const p = spawnMq(['pub', '-p', String(port), ...args], input !== undefined ? { input } : {});
  return p.exit(15_000);
}

describe('mq pub: messages', () => {
  it.each([0, 1, 2])('publishes -m at QoS %i and exits 0 silently', async (qos) => {
    const o = await observe(port, `q/${qos}`);
    closers.push(o.close);
    const r = await pub(['-t', `q/${qos}`, '-m', `hello ${qos}`, '-q', String(qos)]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const [m] = await o.next(1);
    expect(m?.payload.toString()).toBe(`hello ${qos}`);
    expect(m?.qos).toBe(qos);
  });

  it('publishes to every -t given', async () => {
    const o = await observe(port, 'multi/#');
    closers.push(o.close);
    const r = await pub(['-t', 'multi/a', '-t', 'multi/b', '-m', 'x', '-q', '1']);
    expect(r.code).toBe(0);
    const got = await o.next(2);
    expect(got.map((m) => m.topic).sort()).toEqual(['multi/a', 'multi/b']);
  });

  it('-r retains the message for later subscribers; -n -r clears it', async () => {
    expect((await pub(['-t', 'ret/a', '-m', 'kept', '-r', '-q', '1'])).code).toBe(0);
    const o = await observe(port, 'ret/a');
    closers.push(o.close);
    const [m] = await o.next(1);
    expect(m).toMatchObject({ retain: true });
    expect(m?.payload.toString()).toBe('kept');
    expect((await pub(['-t', 'ret/a', '-n', '-r', '-q', '1'])).code).toBe(0);
    await o.next(2); // the live empty message
    // A new subscriber gets no retained message any more: publish a marker and see it comes first.
    const o2 = await observe(port, 'ret/#');
    closers.push(o2.close);
    expect((await pub(['-t', 'ret/marker', '-m', 'm'])).code).toBe(0);
    const [first] = await o2.next(1);
    expect(first?.topic).toBe('ret/marker');
  });

  it('-f sends a file byte for byte (binary)', async () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x0d, 0x80]);
    const file = join(dir, 'bin.dat');
    writeFileSync(file, bytes);
    const o = await observe(port, 'file/x');
    closers.push(o.close);
    expect((await pub(['-t', 'file/x', '-f', file])).code).toBe(0);
    const [m] = await o.next(1);
    expect(m?.payload).toEqual(bytes);
  });

  it('-s sends all of stdin as one message', async () => {
    const o = await observe(port, 'stdin/x');
    closers.push(o.close);
    const input = Buffer.from('line 1\nline 2\n\x00\xff');
    expect((await pub(['-t', 'stdin/x', '-s'], input)).code).toBe(0);
    const [m] = await o.next(1);
    expect(m?.payload).toEqual(input);
  });

  it('-m accepts hex: and base64: values', async () => {
    const o = await observe(port, 'enc/#');
    closers.push(o.close);
    expect((await pub(['-t', 'enc/h', '-m', 'hex:00ff10'])).code).toBe(0);
    expect((await pub(['-t', 'enc/b', '-m', 'base64:AP8Q'])).code).toBe(0);
    const got = await o.next(2);
    expect(got.map((m) => m.payload.toString('hex'))).toEqual(['00ff10', '00ff10']);
  });

  it('-l sends one message per line in order over one connection, skipping empty lines', async () => {
    const o = await observe(port, 'lines/x');
    closers.push(o.close);
    const r = await pub(['-t', 'lines/x', '-l', '-q', '1'], 'one\ntwo\n\nthree\nlast-without-newline');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const got = await o.next(4);
    expect(got.map((m) => m.payload.toString())).toEqual(['one', 'two', 'three', 'last-without-newline']);
  });

  it('-l streams many lines (QoS 1, all acknowledged, none lost)', async () => {
    const n = 5000;
    const o = await observe(port, 'bulk/x');
    closers.push(o.close);
    const input = `${Array.from({ length: n }, (_, i) => `m${i}`).join('\n')}\n`;
    const r = await pub(['-t', 'bulk/x', '-l', '-q', '1'], input);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const got = await o.next(n, 15_000);
    expect(got[0]?.payload.toString()).toBe('m0');
    expect(got[n - 1]?.payload.toString()).toBe(`m${n - 1}`);
  }, 45_000);

  it('-l with stdin still open: Ctrl-C stops reading and exits 0 once everything sent was acknowledged', async () => {
    const o = await observe(port, 'sigint/x');
    closers.push(o.close);
    const p = spawnMq(['pub', '-p', String(port), '-t', 'sigint/x', '-l', '-q', '1', '-d']);
    p.proc.stdin?.write('typed\n');
    await o.next(1);
    // The subscriber's copy may arrive before the publisher's PUBACK: wait for that too.
    await p.waitForLine(/^<- PUBACK/, 5000, 'stderr');
    const r = await p.kill('SIGINT', 5000);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/^mq: /m);
  });

  it('--ndjson takes topic, payload / payload_base64, qos, retain and properties per line', async () => {
    const o = await observe(port, 'nd/#');
    closers.push(o.close);
    const lines = [
      { topic: 'nd/a', payload: 'text', qos: 1 },
      { topic: 'nd/b', payload_base64: Buffer.from([0xff, 0]).toString('base64'), encoding: 'base64' },
      {
        topic: 'nd/c',
        payload: 'p',
        properties: { contentType: 'text/plain', userProperties: [['k', 'v']] },
      },
      { topic: 'nd/d', payload: { embedded: true } },
    ];
    const r = await pub(['--ndjson'], `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const got = await o.next(4);
    const byTopic = new Map(got.map((m) => [m.topic, m]));
    expect(byTopic.get('nd/a')?.payload.toString()).toBe('text');
    expect(byTopic.get('nd/a')?.qos).toBe(1);
    expect(byTopic.get('nd/b')?.payload).toEqual(Buffer.from([0xff, 0]));
    expect(byTopic.get('nd/c')?.properties).toMatchObject({
      contentType: 'text/plain',
      userProperties: { k: 'v' },
    });
    expect(byTopic.get('nd/d')?.payload.toString()).toBe('{"embedded":true}');
  });

  it('--ndjson replays what mq sub --json prints (binary payloads and properties included)', async () => {
    const o = await observe(port, 'replay/#');
    closers.push(o.close);
    const subLine = {
      ts: '2026-11-27T09:17:10.194779Z',
      topic: 'replay/bin',
      qos: 1,
      retain: false,
      dup: false,
      packetId: 7,
      properties: {
        correlationData: Buffer.from([0xde, 0xad]).toString('base64'),
        correlationDataEncoding: 'base64',
        userProperties: [['k', 'v']],
        subscriptionIdentifiers: [3],
      },
      size: 3,
      encoding: 'base64',
      payload_base64: Buffer.from([1, 2, 0xff]).toString('base64'),
    };
    const r = await pub(['--ndjson'], `${JSON.stringify(subLine)}\n`);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const [m] = await o.next(1);
    expect(m?.topic).toBe('replay/bin');
    expect(m?.payload).toEqual(Buffer.from([1, 2, 0xff]));
    expect(m?.qos).toBe(1);
    expect(m?.properties).toMatchObject({
      correlationData: Buffer.from([0xde, 0xad]),
      userProperties: { k: 'v' },
    });
  });

  it('--ndjson reports a bad line by number, exit 1', async () => {
    const r = await pub(['--ndjson'], '{"topic":"nd/ok","payload":"x"}\nnot json\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mq: --ndjson line 2: not JSON/);
  });

  it('sends v5 properties from the friendly flags', async () => {
    const o = await observe(port, 'props/x');
    closers.push(o.close);
    const r = await pub([
      '-t',
      'props/x',
      '-m',
      '{"a":1}',
      '--content-type',
      'application/json',
      '--response-topic',
      'reply/here',
      '--correlation-data',
      'hex:0102',
      '--message-expiry',
      '60',
      '--user-property',
      'a=1',
      '--user-property',
      'b=x=y',
      '--payload-format-indicator',
      '1',
    ]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const [m] = await o.next(1);
    expect(m?.properties).toMatchObject({
      contentType: 'application/json',
      responseTopic: 'reply/here',
      correlationData: Buffer.from([1, 2]),
      payloadFormatIndicator: true,
      userProperties: { a: '1', b: 'x=y' },
    });
    expect(Number(m?.properties?.messageExpiryInterval)).toBeGreaterThan(55);
  });

  it('-D publish sets any property by its spec name', async () => {
    const o = await observe(port, 'dprop/x');
    closers.push(o.close);
    const r = await pub(['-t', 'dprop/x', '-m', 'x', '-D', 'publish', 'content-type', 'text/x']);
    expect(r.code).toBe(0);
    const [m] = await o.next(1);
    expect(m?.properties?.contentType).toBe('text/x');
  });

  it('--repeat N publishes N times', async () => {
    const o = await observe(port, 'rep/x');
    closers.push(o.close);
    const r = await pub(['-t', 'rep/x', '-m', 'again', '--repeat', '3', '--repeat-delay', '0.01', '-q', '1']);
    expect(r.code).toBe(0);
    const got = await o.next(3);
    expect(got.map((m) => m.payload.toString())).toEqual(['again', 'again', 'again']);
  });

  it('works with MQTT 3.1.1 (-V 3.1.1)', async () => {
    const o = await observe(port, 'v311/x');
    closers.push(o.close);
    expect((await pub(['-t', 'v311/x', '-m', 'old', '-V', '3.1.1', '-q', '2'])).code).toBe(0);
    const [m] = await o.next(1);
    expect(m?.payload.toString()).toBe('old');
  });

  it('-M 1 keeps one QoS 1 message in flight at a time and still delivers all, in order', async () => {
    const o = await observe(port, 'inflight/x');
    closers.push(o.close);
    const r = await pub(['-t', 'inflight/x', '-l', '-q', '1', '-M', '1', '-d'], 'a\nb\nc\nd\n');
    expect(r.code).toBe(0);
    // Each PUBLISH waits for the previous PUBACK.
    const flow = r.stderr
      .split('\n')
      .filter((l) => /^(->|<-) PUB(LISH|ACK)/.test(l))
      .map((l) => l.split(' ')[1]);
    expect(flow).toEqual([
      'PUBLISH',
      'PUBACK',
      'PUBLISH',
      'PUBACK',
      'PUBLISH',
      'PUBACK',
      'PUBLISH',
      'PUBACK',
    ]);
    expect((await o.next(4)).map((m) => m.payload.toString())).toEqual(['a', 'b', 'c', 'd']);
  });

  it('--topic-alias sends a v5 Topic Alias; the message arrives under its topic', async () => {
    const o = await observe(port, 'alias/x');
    closers.push(o.close);
    const r = await pub(['-t', 'alias/x', '-m', 'aliased', '--topic-alias', '1', '--repeat', '2', '-d']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/-> PUBLISH .*topicAlias=1/);
    const got = await o.next(2);
    expect(got.map((m) => `${m.topic} ${m.payload}`)).toEqual(['alias/x aliased', 'alias/x aliased']);
  });

  it('-d (mosquitto) / --trace prints every packet on stderr', async () => {
    const r = await pub(['-t', 'trace/x', '-m', 'x', '-q', '1', '-d']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^-> CONNECT .*\n<- CONNACK .*\n-> PUBLISH .*\n<- PUBACK .*\n-> DISCONNECT/);
  });

  it('--json prints one result line per message', async () => {
    const r = await pub(['-t', 'json/a', '-t', 'json/b', '-m', 'x', '-q', '1', '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    // No subscriber: the broker says so (v5 PUBACK 0x10), which is still a success.
    expect(lines[0]).toMatchObject({
      topic: 'json/a',
      qos: 1,
      reasonCode: 16,
      reason: 'No matching subscribers',
    });
    expect(typeof lines[0].packetId).toBe('number');
  });
});

describe('mq pub: failures', () => {
  it.each([
    [['-t', 'a'], /no message: give one of -m/],
    [['-m', 'x'], /no topic: give -t TOPIC/],
    [['-t', 'a', '-m', 'x', '-n'], /-m and -n cannot be combined/],
    [['-t', 'a/#', '-m', 'x'], /^mq: -t: .*wildcard/],
    [['-t', 'a', '-m', 'x', '-q', '3'], /-q: '3' is not a whole number from 0 to 2/],
    [['-t', 'a', '-m', 'x', '-V', '3.1.1', '--content-type', 't'], /--content-type .* needs -V 5/],
    [['-t', 'a', '-l', '--repeat', '2'], /--repeat works with -m, -f, -s and -n/],
    [['-t', 'a', '-m', 'x', '--user-property', 'novalue'], /--user-property: 'novalue' is not KEY=VALUE/],
    [['-t', 'a', '-f', '/nonexistent/file'], /-f: cannot read \/nonexistent\/file: no such file/],
    [['-t', 'a', '-m', 'x', '--will-payload', 'p'], /no will topic \(--will-topic\)/],
    [['-t', 'a', '-m', 'x', '--repeat-delay', '1'], /--repeat-delay needs --repeat COUNT/],
  ])('%j is a usage error: one line, exit 1', async (args, message) => {
    const r = await pub(args as string[]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a refused connection exits 2 with the reason by name', async () => {
    const r = await spawnMq(['pub', '-p', String(refusing.port), '-t', 'a', '-m', 'x']).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/0x86 Bad User Name or Password/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('nothing listening: exit 2, said plainly', async () => {
    const r = await spawnMq(['pub', '-p', '1', '-t', 'a', '-m', 'x']).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/connection refused/);
  });

  it.each([1, 2])('a QoS %i message the broker refuses: exit 5 with the reason code by name', async (qos) => {
    const r = await pub(['-t', 'forbidden/x', '-m', 'x', '-q', String(qos)]);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe("mq: broker refused message on 'forbidden/x': 0x87 Not authorized\n");
  });

  it.each([
    [['-q', '2'], /the broker accepts at most QoS 1 .*use -q 1/],
    [['-r'], /the broker does not support retained messages/],
  ])('what the broker said it cannot take (%j) fails before sending: exit 5', async (args, message) => {
    const r = await spawnMq([
      'pub',
      '-p',
      String(limited.port),
      '-t',
      'a',
      '-m',
      'x',
      ...(args as string[]),
    ]).exit(10_000);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help shows examples and exit codes', async () => {
    const r = await spawnMq(['pub', '--help']).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/-h, --host/);
    expect(r.stdout).toMatch(/Exit codes:/);
  });
});
