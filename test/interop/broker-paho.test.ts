/**
 * `mq broker` against Python paho-mqtt 1.6 (Debian's python3-paho-mqtt, run with /usr/bin/python3),
 * MQTT 3.1.1 and 5.0. Each case is a small inline Python script that prints one JSON object.
 * MQ_INTEROP_BROKER=mosquitto runs the same assertions against a real Mosquitto.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerUnderTest, killAll, spawnProcess, startBrokerUnderTest } from '../helpers/spawn.js';

const PYTHON = '/usr/bin/python3';

let broker: BrokerUnderTest;

beforeAll(async () => {
  broker = await startBrokerUnderTest();
});

afterAll(async () => {
  await killAll();
  await broker?.stop();
});

/** Shared Python prelude: a blocking wrapper over paho with bounded waits. */
const PRELUDE = `
import json, sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

PORT = int(sys.argv[1])
V5 = sys.argv[2] == '5'
PROTO = mqtt.MQTTv5 if V5 else mqtt.MQTTv311
TIMEOUT = 10

def fail(msg):
    print(json.dumps({'error': msg}))
    sys.exit(1)

class C:
    def __init__(self, cid, clean=True, will=None, expiry=None):
        self.msgs = []
        self.cond = threading.Condition()
        self.events = {}
        if V5:
            self.c = mqtt.Client(client_id=cid, protocol=PROTO)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=PROTO)
        self.clean = clean
        self.expiry = expiry
        if will:
            self.c.will_set(*will)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda c, u, mid, *a: self._event(('sub', mid), a[0] if a else None)
        self.c.on_unsubscribe = lambda c, u, mid, *a: self._event(('unsub', mid), None)
        self.c.on_publish = lambda c, u, mid: self._event(('pub', mid), None)

    def _event(self, key, value):
        with self.cond:
            self.events[key] = value
            self.cond.notify_all()

    def _on_connect(self, c, u, flags, rc, props=None):
        self._event('connack', {'rc': int(rc) if not hasattr(rc, 'value') else rc.value, 'session_present': bool(flags.get('session present'))})

    def _on_message(self, c, u, m):
        p = getattr(m, 'properties', None)
        props = {}
        if V5 and p is not None:
            for name in ['UserProperty', 'ContentType', 'ResponseTopic', 'CorrelationData', 'PayloadFormatIndicator', 'MessageExpiryInterval']:
                if hasattr(p, name):
                    v = getattr(p, name)
                    if isinstance(v, bytes): v = v.decode()
                    if isinstance(v, list): v = [list(x) for x in v]
                    props[name] = v
        with self.cond:
            self.msgs.append({'topic': m.topic, 'payload': m.payload.decode(), 'qos': m.qos, 'retain': bool(m.retain), 'props': props})
            self.cond.notify_all()

    def wait(self, key, what):
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.events, TIMEOUT):
                fail('timed out waiting for ' + what)
            return self.events.pop(key)

    def connect(self):
        if V5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            self.c.connect('127.0.0.1', PORT, 60, clean_start=self.clean, properties=props)
        else:
            self.c.connect('127.0.0.1', PORT, 60)
        self.c.loop_start()
        return self.wait('connack', 'CONNACK')

    def subscribe(self, topic, qos):
        rc, mid = self.c.subscribe(topic, qos)
        return self.wait(('sub', mid), 'SUBACK for ' + topic)

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        self.wait(('unsub', mid), 'UNSUBACK for ' + topic)

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos > 0:
            self.wait(('pub', info.mid), 'acknowledgement of ' + topic)

    def wait_msgs(self, n):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.msgs) >= n, TIMEOUT):
                fail('expected %d messages, got %s' % (n, json.dumps(self.msgs)))
            return list(self.msgs)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def die(self):
        # Drop the TCP connection without DISCONNECT.
        self.c.loop_stop()
        self.c.socket().close()
`;

async function python(body: string, version: '3.1.1' | '5'): Promise<Record<string, unknown>> {
  const p = spawnProcess(PYTHON, [
    '-c',
    `${PRELUDE}\n${body}`,
    String(broker.port),
    version === '5' ? '5' : '4',
  ]);
  const r = await p.exit(20_000);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown>;
  try {
    out = JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`python printed no JSON (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  expect(out.error, r.stderr).toBeUndefined();
  expect(r.code).toBe(0);
  return out;
}

describe.each(['3.1.1', '5'] as const)('paho %s', (v) => {
  const t = (s: string) => `paho${v}/${s}`;

  it('stops delivering a filter after UNSUBSCRIBE, keeps the others', async () => {
    const out = await python(
      `
c = C('')
c.connect()
c.subscribe('${t('u/a')}', 1)
c.subscribe('${t('u/b')}', 1)
c.publish('${t('u/a')}', 'one', 1)
c.wait_msgs(1)
c.unsubscribe('${t('u/a')}')
c.publish('${t('u/a')}', 'two', 1)
c.publish('${t('u/b')}', 'sentinel', 1)
msgs = c.wait_msgs(2)
c.close()
print(json.dumps({'got': [m['topic'] + ':' + m['payload'] for m in msgs]}))
`,
      v,
    );
    expect(out.got).toEqual([`${t('u/a')}:one`, `${t('u/b')}:sentinel`]);
  });

  it('QoS 2 exactly once, in order', async () => {
    const out = await python(
      `
sub = C('')
sub.connect()
sub.subscribe('${t('q2/#')}', 2)
pub = C('')
pub.connect()
for i in range(20):
    pub.publish('${t('q2/x')}', 'm%d' % i, 2)
msgs = sub.wait_msgs(20)
pub.close()
sub.close()
print(json.dumps({'got': [m['payload'] for m in msgs], 'qos': sorted(set(m['qos'] for m in msgs))}))
`,
      v,
    );
    expect(out.got).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(out.qos).toEqual([2]);
  });

  it('keeps a persistent session and its queued QoS 1 messages while the client is away', async () => {
    const out = await python(
      `
cid = 'paho-ps-${v.replace('.', '')}-%d' % int(time.time() * 1000 % 100000)
a = C(cid, clean=False, expiry=300)
a.connect()
a.subscribe('${t('ps/#')}', 1)
a.close()
p = C('')
p.connect()
for i in range(5):
    p.publish('${t('ps/x')}', 'q%d' % i, 1)
p.close()
b = C(cid, clean=False, expiry=300)
ack = b.connect()
msgs = b.wait_msgs(5)
b.close()
print(json.dumps({'session_present': ack['session_present'], 'got': [m['payload'] for m in msgs]}))
`,
      v,
    );
    expect(out.session_present).toBe(true);
    expect(out.got).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
  });

  it('publishes the will of a client that drops its connection', async () => {
    const out = await python(
      `
w = C('')
w.connect()
w.subscribe('${t('will/#')}', 1)
d = C('', will=('${t('will/x')}', 'bye', 1, False))
d.connect()
d.die()
msgs = w.wait_msgs(1)
w.close()
print(json.dumps({'got': [m['topic'] + ':' + m['payload'] for m in msgs]}))
`,
      v,
    );
    expect(out.got).toEqual([`${t('will/x')}:bye`]);
  });

  it('delivers retained messages with the retain flag, live ones without', async () => {
    const out = await python(
      `
p = C('')
p.connect()
p.publish('${t('ret/x')}', 'old', 1, True)
s = C('')
s.connect()
s.subscribe('${t('ret/#')}', 1)
p.publish('${t('ret/x')}', 'new', 1, False)
msgs = s.wait_msgs(2)
p.publish('${t('ret/x')}', '', 1, True)
p.close()
s.close()
print(json.dumps({'got': [[m['payload'], m['retain']] for m in msgs]}))
`,
      v,
    );
    expect(out.got).toEqual([
      ['old', true],
      ['new', false],
    ]);
  });
});

describe('paho 5: properties', () => {
  it('forwards PUBLISH properties unchanged', async () => {
    const out = await python(
      `
s = C('')
s.connect()
s.subscribe('paho5/props', 1)
pr = Properties(PacketTypes.PUBLISH)
pr.UserProperty = ('k1', 'v1')
pr.UserProperty = ('k2', 'v2')
pr.UserProperty = ('k1', 'again')
pr.ContentType = 'application/json'
pr.ResponseTopic = 'paho5/reply'
pr.CorrelationData = b'corr-7'
pr.PayloadFormatIndicator = 1
pr.MessageExpiryInterval = 60
p = C('')
p.connect()
p.publish('paho5/props', '{"a":1}', 1, props=pr)
m = s.wait_msgs(1)[0]
p.close()
s.close()
print(json.dumps(m))
`,
      '5',
    );
    const props = out.props as Record<string, unknown>;
    expect(out.payload).toBe('{"a":1}');
    expect(props.UserProperty).toEqual([
      ['k1', 'v1'],
      ['k2', 'v2'],
      ['k1', 'again'],
    ]);
    expect(props.ContentType).toBe('application/json');
    expect(props.ResponseTopic).toBe('paho5/reply');
    expect(props.CorrelationData).toBe('corr-7');
    expect(props.PayloadFormatIndicator).toBe(1);
    expect(props.MessageExpiryInterval).toBeLessThanOrEqual(60);
    expect(props.MessageExpiryInterval).toBeGreaterThanOrEqual(55);
  });
});

describe('paho 5: request/response', () => {
  it('Request Response Information: the CONNACK Response Information is a prefix paho can subscribe to and be answered on', async (ctx) => {
    if (broker.name === 'mosquitto') ctx.skip(); // Mosquitto 2.0 sends no Response Information
    const out = await python(
      `
got = {}
ready = threading.Event()
def on_connect(c, u, flags, rc, props=None):
    got['info'] = getattr(props, 'ResponseInformation', None)
    ready.set()
req = mqtt.Client(client_id='paho/req+1', protocol=mqtt.MQTTv5)
req.on_connect = on_connect
cp = Properties(PacketTypes.CONNECT)
cp.RequestResponseInformation = 1
req.connect('127.0.0.1', PORT, 60, properties=cp)
req.loop_start()
if not ready.wait(TIMEOUT): fail('no CONNACK')
w = C('')
w.c = req
w.c.on_message = w._on_message
w.c.on_subscribe = lambda c, u, mid, *a: w._event(('sub', mid), None)
w.c.on_publish = lambda c, u, mid: w._event(('pub', mid), None)
topic = got['info'] + 'answer'
w.subscribe(topic, 1)
r = C('')
r.connect()
r.publish(topic, 'pong', 1)
m = w.wait_msgs(1)[0]
r.close()
req.disconnect()
req.loop_stop()
print(json.dumps({'info': got['info'], 'topic': m['topic'], 'payload': m['payload']}))
`,
      '5',
    );
    expect(out).toEqual({
      info: 'resp/paho%2Freq%2B1/',
      topic: 'resp/paho%2Freq%2B1/answer',
      payload: 'pong',
    });
  });
});
