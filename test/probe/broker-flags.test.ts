/**
 * mq broker's fault and limit flags as the probe's fixture: `mq probe --json` against a default
 * `mq broker` and against one started with a flag; the report lines that differ must be exactly
 * the ones the flag is about (times and random names masked, see probe-json.ts), and say what the
 * flag does.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';
import { type CheckJson, changedLines, checks, type ProbeJson, probeJson } from './probe-json.js';

let broker: MqBroker;
let baseline: ProbeJson;
/** The same, probed with -u/-P (the --auth case compares against it). */
let baselineWithUser: ProbeJson;
const USER = ['-u', 'alice', '-P', 'secret'];

beforeAll(async () => {
  broker = await startMqBroker(['-q']);
  [baseline, baselineWithUser] = await Promise.all([probeJson(broker.port), probeJson(broker.port, USER)]);
}, 60_000);

afterAll(async () => {
  await broker?.stop();
  await killAll();
});

/** Probes a broker started with `flags`; the report and its lines that differ from `base`. */
async function probeWith(flags: string[], args: string[] = [], base = baseline) {
  const flagged = await startMqBroker(['-q', ...flags]);
  try {
    const report = await probeJson(flagged.port, args);
    return { report, changed: changedLines(base, report), get: (key: string) => checks(report).get(key)! };
  } finally {
    await flagged.stop();
  }
}

describe('mq probe against a default mq broker', () => {
  test('everything passes but what mq broker does not offer by default', () => {
    const notPassing = [...checks(baseline)].filter(([, c]) => c.status !== 'pass' && c.status !== 'info');
    expect(notPassing.map(([key, c]) => `${key} ${c.status}`)).toEqual([
      'delivery.topicAliasFromBroker unsupported', // only with --topic-alias-out
      'identity.tls skipped', // plain TCP
    ]);
    expect(baseline.summary.fail).toBe(0);
    expect(baseline.version).toBe('5.0');
    // Measured limits are numbers; the search stops at --max-probe (1 MiB) or the protocol's maximum.
    expect(checks(baseline).get('limits.maximumPacketSize')).toMatchObject({
      value: 1_048_576,
      bounded: true,
    });
    expect(checks(baseline).get('limits.maximumTopicLength')).toMatchObject({
      value: 65_535,
      bounded: false,
    });
    expect(checks(baseline).get('limits.inflight')).toMatchObject({ status: 'pass', value: 256 });
  });

  test('a second run of the same broker gives the same lines (the comparison below is meaningful)', () => {
    const again = changedLines(baseline, baselineWithUser).filter((k) => k !== 'identity.anonymous');
    expect(again).toEqual([]);
  });

  test('a full probe of a local broker takes well under 15 s', () => {
    expect(baseline.durationMs).toBeLessThan(15_000);
  });
});

describe.concurrent('each flag changes exactly the lines it should', () => {
  const expectLine = (
    c: CheckJson | undefined,
    want: Omit<Partial<CheckJson>, 'detail'> & { detail?: RegExp },
  ) => {
    const { detail, ...rest } = want;
    expect(c).toMatchObject(rest);
    if (detail !== undefined) expect(c?.detail).toMatch(detail);
  };

  test('--max-qos 1', async () => {
    const r = await probeWith(['--max-qos', '1']);
    expect(r.changed).toEqual(['announces.maximumQoS', 'announces.receiveMaximum', 'delivery.qos2']);
    expectLine(r.get('announces.maximumQoS'), {
      status: 'pass',
      value: 1,
      announced: true,
      detail: /granted QoS 1; a QoS 2 PUBLISH got DISCONNECT 0x9b QoS not supported/,
    });
    expectLine(r.get('announces.receiveMaximum'), {
      status: 'skipped',
      detail: /needs QoS 2 \(Maximum QoS 1\)/,
    });
    expectLine(r.get('delivery.qos2'), { status: 'unsupported', detail: /Maximum QoS is 1/ });
  });

  test('--no-retain', async () => {
    const r = await probeWith(['--no-retain']);
    expect(r.changed).toEqual([
      'announces.retainAvailable',
      'delivery.retainAsPublished',
      'delivery.retainHandling',
      'delivery.retained',
    ]);
    expectLine(r.get('announces.retainAvailable'), {
      status: 'pass',
      value: false,
      announced: true,
      detail: /announced 0: a retained PUBLISH got DISCONNECT 0x9a Retain not supported/,
    });
    for (const key of ['delivery.retained', 'delivery.retainAsPublished', 'delivery.retainHandling']) {
      expectLine(r.get(key), { status: 'unsupported', detail: /Retain Available 0/ });
    }
  });

  test('--receive-maximum 5', async () => {
    const r = await probeWith(['--receive-maximum', '5']);
    expect(r.changed).toEqual(['announces.receiveMaximum']);
    expectLine(r.get('announces.receiveMaximum'), {
      status: 'pass',
      value: 5,
      announced: true,
      detail: /took 5 unreleased QoS 2 messages; one more got DISCONNECT 0x93 Receive Maximum exceeded/,
    });
  });

  test('--max-packet-size 10000: the packet limit, and the topic and client id limits it bounds', async () => {
    const r = await probeWith(['--max-packet-size', '10000']);
    expect(r.changed).toEqual([
      'announces.maximumPacketSize',
      'limits.maximumClientIdLength',
      'limits.maximumPacketSize',
      'limits.maximumTopicLength',
    ]);
    expectLine(r.get('announces.maximumPacketSize'), {
      status: 'pass',
      value: 10_000,
      announced: true,
      detail: /a 10000-byte PUBLISH taken, a 10001-byte one got DISCONNECT 0x95 Packet too large/,
    });
    expectLine(r.get('limits.maximumPacketSize'), { status: 'pass', value: 10_000, bounded: false });
    // 10000 - 1 (type) - 2 (remaining length) - 2 (topic length) - 1 (properties) - 1 (payload)
    expectLine(r.get('limits.maximumTopicLength'), { status: 'pass', value: 9993 });
    // 10000 - 1 - 2 - 10 (variable header) - 1 (properties) - 2 (client id length)
    expectLine(r.get('limits.maximumClientIdLength'), { status: 'pass', value: 9984 });
  });

  test('--topic-alias-max 0', async () => {
    const r = await probeWith(['--topic-alias-max', '0']);
    expect(r.changed).toEqual(['announces.topicAliasMaximum', 'delivery.topicAliasToBroker']);
    expectLine(r.get('announces.topicAliasMaximum'), {
      status: 'pass',
      value: 0,
      announced: false,
      detail: /alias 1 got DISCONNECT 0x94 Topic Alias invalid/,
    });
    expectLine(r.get('delivery.topicAliasToBroker'), {
      status: 'unsupported',
      detail: /Topic Alias Maximum 0/,
    });
  });

  test("--deny-subscribe '$SYS/#'", async () => {
    const r = await probeWith(['--deny-subscribe', '$SYS/#']);
    expect(r.changed).toEqual(['identity.sysVersion']);
    expectLine(r.get('identity.sysVersion'), { status: 'unsupported', detail: /0x87 Not authorized/ });
    expectLine(checks(baseline).get('identity.sysVersion'), { status: 'info', value: 'mq broker' });
  });

  test('--max-keepalive 30: Server Keep Alive, and 3.1/3.1.1 clients asking for 60 s refused', async () => {
    const r = await probeWith(['--max-keepalive', '30']);
    expect(r.changed).toEqual(['announces.serverKeepAlive', 'versions.mqtt31', 'versions.mqtt311']);
    expectLine(r.get('announces.serverKeepAlive'), { status: 'info', value: 30, announced: true });
    for (const key of ['versions.mqtt31', 'versions.mqtt311']) {
      expectLine(r.get(key), {
        status: 'pass',
        detail:
          /accepted with keepalive 10 s; keepalive 60 s refused \(return code 2 \(identifier rejected\)/,
      });
    }
  });

  test('--auth alice:secret: anonymous clients refused (probed with -u/-P)', async () => {
    const r = await probeWith(['--auth', 'alice:secret'], USER, baselineWithUser);
    expect(r.changed).toEqual(['identity.anonymous']);
    expectLine(r.get('identity.anonymous'), {
      status: 'info',
      value: false,
      detail: /refused: 0x86 Bad User Name or Password/,
    });
    expectLine(checks(baselineWithUser).get('identity.anonymous'), { status: 'info', value: true });
  });

  test('--auth alice:secret, probed without credentials: exit 2 with the reason', async () => {
    const b = await startMqBroker(['-q', '--auth', 'alice:secret']);
    try {
      const r = await spawnMq(['probe', '-p', String(b.port)]).exit(15_000);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `mq: connection refused by localhost:${b.port}: 0x86 Bad User Name or Password: check -u/-P (or MQ_USERNAME/MQ_PASSWORD, or the profile)\n`,
      );
    } finally {
      await b.stop();
    }
  });
});
