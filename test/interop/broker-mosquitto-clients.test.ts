/**
 * `mq broker` against Debian's mosquitto_pub / mosquitto_sub, for MQTT 3.1, 3.1.1 and 5.0.
 * MQ_INTEROP_BROKER=mosquitto runs the same assertions against a real Mosquitto (to check the test).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerUnderTest,
  killAll,
  type Spawned,
  spawnProcess,
  startBrokerUnderTest,
} from '../helpers/spawn.js';

const VERSIONS = ['mqttv31', 'mqttv311', 'mqttv5'] as const;
type Version = (typeof VERSIONS)[number];

let broker: BrokerUnderTest;

beforeAll(async () => {
  broker = await startBrokerUnderTest();
});

afterAll(async () => {
  await killAll();
  await broker?.stop();
});

const FORMAT = 'MSG %t|%p|%q|%r';

/**
 * mosquitto_sub (line-buffered through stdbuf: it block-buffers a pipe) with debug output;
 * resolves once the broker has acknowledged the subscription. */
async function sub(version: Version, args: string[], format = FORMAT): Promise<Spawned> {
  const p = spawnProcess('stdbuf', [
    '-oL',
    'mosquitto_sub',
    '-p',
    String(broker.port),
    '-V',
    version,
    '-d',
    '-F',
    format,
    ...args,
  ]);
  await p.waitForLine(/received SUBACK/, 10_000);
  return p;
}

/** Message lines (without the MSG prefix) printed so far. */
function messages(p: Spawned): string[] {
  return p
    .lines()
    .filter((l) => l.startsWith('MSG '))
    .map((l) => l.slice(4));
}

async function waitForMessages(p: Spawned, count: number, timeoutMs = 10_000): Promise<string[]> {
  await p.waitForLine(/^MSG /, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  while (messages(p).length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} messages, got ${messages(p).join('\n')}`);
    // Wait for the next line of output rather than a fixed time.
    const seen = p.lines().length;
    await p.waitForLines(seen + 1, Math.max(1, deadline - Date.now()));
  }
  return messages(p);
}

/** mosquitto_pub; resolves when it exited 0 (for QoS>0: after the broker acknowledged). */
async function pub(version: Version, args: string[]): Promise<void> {
  const p = spawnProcess('mosquitto_pub', ['-p', String(broker.port), '-V', version, ...args]);
  const r = await p.exit(10_000);
  expect(r.code, `mosquitto_pub ${args.join(' ')}: ${r.stderr}`).toBe(0);
}

describe.each(VERSIONS)('mosquitto clients, %s', (v) => {
  const t = (s: string) => `${v}/${s}`;

  it('routes + and # wildcards, and nothing else', async () => {
    const s = await sub(v, ['-t', t('wild/+/x'), '-t', t('deep/#'), '-q', '1']);
    await pub(v, ['-t', t('wild/a/y'), '-m', 'no1', '-q', '1']);
    await pub(v, ['-t', t('wild/a/b/x'), '-m', 'no2', '-q', '1']);
    await pub(v, ['-t', t('deepest'), '-m', 'no3', '-q', '1']);
    await pub(v, ['-t', t('wild/a/x'), '-m', 'yes1', '-q', '1']);
    await pub(v, ['-t', t('wild//x'), '-m', 'yes2', '-q', '1']);
    await pub(v, ['-t', t('deep'), '-m', 'yes3', '-q', '1']); // '#' also matches the parent level
    await pub(v, ['-t', t('deep/1/2'), '-m', 'yes4', '-q', '1']);
    const got = await waitForMessages(s, 4);
    expect(got.map((l) => l.split('|').slice(0, 2).join('|'))).toEqual([
      `${t('wild/a/x')}|yes1`,
      `${t('wild//x')}|yes2`,
      `${t('deep')}|yes3`,
      `${t('deep/1/2')}|yes4`,
    ]);
  });

  it('delivers a retained message on subscribe, and forgets it after an empty retained publish', async () => {
    await pub(v, ['-t', t('ret/a'), '-m', 'kept', '-r', '-q', '1']);
    const s1 = spawnProcess('stdbuf', [
      '-oL',
      'mosquitto_sub',
      '-p',
      String(broker.port),
      '-V',
      v,
      '-t',
      t('ret/a'),
      '-C',
      '1',
      '-F',
      FORMAT,
    ]);
    const r1 = await s1.exit(10_000);
    expect(r1.stdout.trim()).toBe(`MSG ${t('ret/a')}|kept|0|1`);

    await pub(v, ['-t', t('ret/a'), '-n', '-r', '-q', '1']);
    const s2 = await sub(v, ['-t', t('ret/#')]);
    await pub(v, ['-t', t('ret/sentinel'), '-m', 'live', '-q', '1']);
    const got = await waitForMessages(s2, 1);
    // Had the retained message survived, it would have come first, on subscribe.
    expect(got[0]).toBe(`${t('ret/sentinel')}|live|0|0`);
  });

  it('publishes the will when a client dies, not when it disconnects', async () => {
    const watcher = await sub(v, ['-t', t('will/#')]);
    // A clean disconnect: mosquitto_pub sends DISCONNECT, so its will must not be published.
    await pub(v, ['-t', t('other'), '-m', 'x', '--will-topic', t('will/polite'), '--will-payload', 'no']);
    const doomed = await sub(v, [
      '-t',
      t('nothing'),
      '--will-topic',
      t('will/dead'),
      '--will-payload',
      'gone',
      '--will-qos',
      '1',
    ]);
    await doomed.kill('SIGKILL');
    const got = await waitForMessages(watcher, 1);
    expect(got).toEqual([`${t('will/dead')}|gone|0|0`]);
  });

  it('QoS 1 and 2 end to end, downgraded to the subscription QoS', async () => {
    const s2 = await sub(v, ['-t', t('qos/#'), '-q', '2']);
    const s1 = await sub(v, ['-t', t('qos/#'), '-q', '1']);
    await pub(v, ['-t', t('qos/one'), '-m', 'm1', '-q', '1']);
    await pub(v, ['-t', t('qos/two'), '-m', 'm2', '-q', '2']);
    await pub(v, ['-t', t('qos/zero'), '-m', 'm0', '-q', '0']);
    // Sorted: libmosquitto hands a QoS 2 message to the app on PUBREL, so print order may differ.
    expect((await waitForMessages(s2, 3)).sort()).toEqual([
      `${t('qos/one')}|m1|1|0`,
      `${t('qos/two')}|m2|2|0`,
      `${t('qos/zero')}|m0|0|0`,
    ]);
    expect((await waitForMessages(s1, 3)).sort()).toEqual([
      `${t('qos/one')}|m1|1|0`,
      `${t('qos/two')}|m2|1|0`,
      `${t('qos/zero')}|m0|0|0`,
    ]);
  });

  it('queues QoS 1 messages for an offline persistent session and delivers them in order on return', async () => {
    const id = `ps-${v}-${process.pid}`;
    // -E: exit (with DISCONNECT) once subscribed; the session stays (clean session off / expiry never).
    const first = spawnProcess('mosquitto_sub', [
      '-p',
      String(broker.port),
      '-V',
      v,
      '-c',
      '-i',
      id,
      '-q',
      '1',
      '-t',
      t('ps/#'),
      '-E',
    ]);
    expect((await first.exit(10_000)).code).toBe(0);
    for (let i = 1; i <= 5; i++) await pub(v, ['-t', t(`ps/${i}`), '-m', `queued ${i}`, '-q', '1']);
    const again = spawnProcess('stdbuf', [
      '-oL',
      'mosquitto_sub',
      '-p',
      String(broker.port),
      '-V',
      v,
      '-c',
      '-i',
      id,
      '-q',
      '1',
      '-t',
      t('ps/#'),
      '-C',
      '5',
      '-F',
      FORMAT,
    ]);
    const r = await again.exit(10_000);
    expect(r.stdout.trim().split('\n')).toEqual(
      [1, 2, 3, 4, 5].map((i) => `MSG ${t(`ps/${i}`)}|queued ${i}|1|0`),
    );
  });

  it('does not match $-topics with a leading # or +', async () => {
    const all = await sub(v, ['-t', '#', '-t', '+/dollar']);
    const dollar = await sub(v, ['-t', '$mqtest/#']);
    await pub(v, ['-t', '$mqtest/dollar', '-m', 'hidden', '-q', '1']);
    await pub(v, ['-t', t('sentinel'), '-m', 'visible', '-q', '1']);
    await all.waitForLine(new RegExp(`^MSG ${t('sentinel')}\\|visible`), 10_000);
    expect(await waitForMessages(dollar, 1)).toEqual(['$mqtest/dollar|hidden|0|0']);
    // '#' also sees other tests' retained messages; none of them (nor $SYS) may start with '$'.
    expect(messages(all).filter((l) => l.startsWith('$'))).toEqual([]);
  });
});

describe('mosquitto clients, MQTT 5 properties', () => {
  it('forwards user properties, content type, response topic, correlation data, format indicator, expiry', async () => {
    const s = await sub('mqttv5', ['-t', 'v5/props', '-q', '1'], 'MSG %t|%p|%P|%C|%R|%D|%F|%E');
    await pub('mqttv5', [
      '-t',
      'v5/props',
      '-m',
      'payload',
      '-q',
      '1',
      '-D',
      'publish',
      'user-property',
      'k1',
      'v1',
      '-D',
      'publish',
      'user-property',
      'k2',
      'v2',
      '-D',
      'publish',
      'content-type',
      'text/plain',
      '-D',
      'publish',
      'response-topic',
      'v5/reply',
      '-D',
      'publish',
      'correlation-data',
      'corr-42',
      '-D',
      'publish',
      'payload-format-indicator',
      '1',
      '-D',
      'publish',
      'message-expiry-interval',
      '100',
    ]);
    const [line] = await waitForMessages(s, 1);
    const [topic, payload, userProps, contentType, responseTopic, corr, pfi, expiry] = (line ?? '').split(
      '|',
    );
    expect({ topic, payload, userProps, contentType, responseTopic, corr, pfi }).toEqual({
      topic: 'v5/props',
      payload: 'payload',
      userProps: 'k1:v1 k2:v2',
      contentType: 'text/plain',
      responseTopic: 'v5/reply',
      corr: 'corr-42',
      pfi: '1',
    });
    // The remaining lifetime is forwarded: at most what was sent, and not much less.
    expect(Number(expiry)).toBeLessThanOrEqual(100);
    expect(Number(expiry)).toBeGreaterThanOrEqual(95);
  });

  it('gives a v5 client with an empty client id an assigned one', async () => {
    // mosquitto_sub -V mqttv5 without -i connects with an empty id; -d prints the id it was given.
    const s = await sub('mqttv5', ['-t', 'v5/assigned']);
    const line = await s.waitForLine(/received CONNACK/, 1000);
    expect(line).not.toMatch(/Client \(null\)/);
  });
});
