/**
 * `mq req` end to end against `mq broker --port 0`, with an MQTT.js responder: what the user sees
 * (stdout, stderr, exit code).
 */
import mqtt, { type MqttClient as JsClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, type MqBroker, spawnMq, startMqBroker } from '../helpers/spawn.js';

let broker: MqBroker;
let responder: JsClient;
const requests: { topic: string; payload: string; responseTopic?: string; correlation?: Buffer }[] = [];

beforeAll(async () => {
  broker = await startMqBroker();
  responder = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  responder.on('message', (topic, payload, packet) => {
    const responseTopic = packet.properties?.responseTopic;
    const correlation = packet.properties?.correlationData;
    requests.push({ topic, payload: payload.toString(), responseTopic, correlation });
    if (responseTopic === undefined) return;
    const reply = (body: string, correlationData: Buffer | undefined) =>
      responder.publish(responseTopic, body, {
        qos: 1,
        properties: correlationData !== undefined ? { correlationData, contentType: 'text/plain' } : {},
      });
    switch (topic) {
      case 'svc/echo':
        reply(`echo: ${payload.toString()}`, correlation);
        break;
      case 'svc/noisy':
        // Someone else's answer first (wrong correlation data), then ours.
        reply('not for you', Buffer.from('someone-else'));
        reply('for you', correlation);
        break;
      default:
        break; // svc/silent: no answer
    }
  });
  await responder.subscribeAsync('svc/#', { qos: 1 });
});

afterAll(async () => {
  await responder?.endAsync().catch(() => undefined);
  await broker?.stop();
  await killAll();
});

function req(args: string[]) {
  return spawnMq(['req', '-p', String(broker.port), ...args]).exit(15_000);
}

describe('mq req', () => {
  it("publishes with a response topic and correlation data and prints the reply; the response topic is built on the broker's Response Information", async () => {
    const r = await req(['-t', 'svc/echo', '-m', 'ping', '-i', 'rr-client', '-d']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('echo: ping\n');
    expect(r.stderr).toMatch(/^-> CONNECT .*requestResponseInformation=1/m);
    expect(r.stderr).toMatch(/^<- CONNACK .*responseInformation="resp\/rr-client\/"/m);
    const sent = requests.find((q) => q.payload === 'ping');
    expect(sent?.responseTopic).toMatch(/^resp\/rr-client\/[0-9a-f]{8}$/);
    expect(sent?.correlation?.length).toBeGreaterThan(0);
  });

  it('a broker without Response Information (or -D connect request-response-information 0): mq/rr/<client id>/<random>', async () => {
    const plain = await startMqBroker(['--no-response-information']);
    try {
      const r = await spawnMq([
        'req',
        '-p',
        String(plain.port),
        '-t',
        'svc/x',
        '-m',
        'none',
        '-W',
        '0.3',
      ]).exit(15_000);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/^mq: no response on 'mq\/rr\/mq-[0-9a-f]{8}\/[0-9a-f]{8}' within 0\.3 s$/m);
    } finally {
      await plain.stop();
    }
    const r = await req([
      '-t',
      'svc/silent',
      '-m',
      'x',
      '-W',
      '0.3',
      '-D',
      'connect',
      'request-response-information',
      '0',
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no response on 'mq\/rr\//);
  });

  it('ignores responses whose correlation data does not match', async () => {
    const r = await req(['-t', 'svc/noisy', '-m', 'q', '-v']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^resp\/mq-[0-9a-f]{8}\/[0-9a-f]{8} for you\n$/);
    expect(r.stderr).toMatch(/ignoring a message on 'resp\/.*': its correlation data does not match/);
  });

  it('-e sets the response topic, --correlation-data the correlation data', async () => {
    const r = await req([
      '-t',
      'svc/echo',
      '-m',
      'x',
      '-e',
      'replies/me',
      '--correlation-data',
      'hex:c0ffee',
      '-v',
    ]);
    expect(r).toMatchObject({ code: 0, stdout: 'replies/me echo: x\n' });
    const sent = requests.find((q) => q.responseTopic === 'replies/me');
    expect(sent?.correlation).toEqual(Buffer.from([0xc0, 0xff, 0xee]));
  });

  it('--json prints the response as a JSON line with its properties', async () => {
    const r = await req(['-t', 'svc/echo', '-m', 'j', '--json']);
    expect(r.code).toBe(0);
    const line = JSON.parse(r.stdout);
    expect(line).toMatchObject({
      payload: 'echo: j',
      encoding: 'utf8',
      properties: { contentType: 'text/plain' },
    });
  });

  it('-F formats the response like mosquitto_rr', async () => {
    const r = await req(['-t', 'svc/echo', '-m', 'f', '-F', '%C|%p']);
    expect(r.stdout).toBe('text/plain|echo: f\n');
  });

  it('-W: no response in time exits 3 and says where it waited', async () => {
    const r = await req(['-t', 'svc/silent', '-m', 'x', '-W', '0.5', '-e', 'nobody/answers']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("mq: no response on 'nobody/answers' within 0.5 s\n");
  });

  it('Ctrl-C while waiting: exit 130, says it was interrupted', async () => {
    const p = spawnMq(['req', '-p', String(broker.port), '-t', 'svc/silent', '-m', 'x', '--trace']);
    await p.waitForLine(/^-> PUBLISH/, 10_000, 'stderr');
    const r = await p.kill('SIGINT', 5000);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^mq: interrupted before a response arrived$/m);
  });

  it.each([
    [['-t', 'svc/echo', '-m', 'x', '-V', '3.1.1'], /mq req needs MQTT 5/],
    [['-m', 'x'], /no request topic: give -t TOPIC/],
    [['-t', 'svc/echo'], /no request payload: give one of -m, -f, -s or -n/],
    [['-t', 'svc/echo', '-m', 'x', '-e', 'bad/#/x'], /^mq: -e: .*wildcard/],
  ])('%j is a usage error: one line, exit 1', async (args, message) => {
    const r = await req(args as string[]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help shows examples and the default timeout', async () => {
    const r = await spawnMq(['req', '--help']).exit(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/Default timeout 10 s/);
  });
});
