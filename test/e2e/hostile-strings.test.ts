/**
 * Strings from the network reach a terminal escaped (issue 12, item 7): topics, client ids, user
 * properties, content types, reason strings carrying ESC sequences (window title, clear screen,
 * colours), CR/LF (forged lines), C1 controls (U+009B is a CSI) and bidi overrides. What a user
 * sees is checked on a real pseudo-terminal (spawnMqOnTty), on stderr (traces, broker logs, error
 * lines) and on stdout of decode; payload-only and -v output on a pipe stays byte-exact.
 */
import mqtt, { type MqttClient as JsClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../src/protocol/index.js';
import { startFakeBroker } from '../helpers/fake-broker.js';
import { killAll, type MqBroker, spawnMq, spawnMqOnTty, startMqBroker } from '../helpers/spawn.js';

/** What a terminal would act on: C0 (but LF), DEL, C1, bidi controls, U+2028/9. */
const ACTIVE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

/** The terminal's output with its CR LF line ends as LF: what is left must hold no control character. */
function activeIn(text: string): string | undefined {
  const m = ACTIVE.exec(text.replace(/\r\n/g, '\n'));
  return m === null ? undefined : `U+${m[0].codePointAt(0)!.toString(16).padStart(4, '0')} at ${m.index}`;
}

const TITLE = '\x1b]0;pwned\x07';
const CLEAR = '\x1b[2J';
const TOPIC = `esc/${TITLE}x\r\nFAKE LINE\u202egnp.exe`;
const PAYLOAD = `hi${CLEAR}there\u009b31m\nsecond line`;
const USER_KEY = 'k\x1b[31m';
const USER_VALUE = 'v\u009b2J';
const CONTENT_TYPE = 'text/\x1b[8mhidden';
const RESPONSE_TOPIC = `r/\u202eevil`;
const EVIL_ID = `evil${TITLE}\nFAKE 00:00:00.000 [admin] connected`;

let broker: MqBroker;
let publisher: JsClient;

beforeAll(async () => {
  broker = await startMqBroker();
  publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  await publisher.publishAsync(TOPIC, PAYLOAD, {
    qos: 1,
    retain: true,
    properties: {
      userProperties: { [USER_KEY]: USER_VALUE },
      contentType: CONTENT_TYPE,
      responseTopic: RESPONSE_TOPIC,
    },
  });
});

afterAll(async () => {
  await publisher?.endAsync().catch(() => undefined);
  await broker?.stop();
  await killAll();
});

/** `mq sub` for the retained hostile message, one message, on a terminal. */
async function subOnTty(extra: string[]): Promise<string> {
  const p = spawnMqOnTty(['sub', '-p', String(broker.port), '-t', 'esc/#', '-C', '1', ...extra]);
  const r = await p.exit(15_000);
  expect(r.code).toBe(0);
  return r.stdout;
}

describe('mq sub on a terminal escapes what the network sent', () => {
  it('the coloured view: topic, user properties, content type, response topic, payload', async () => {
    const out = await subOnTty([]);
    expect(activeIn(out)).toBeUndefined();
    expect(out).toContain('esc/\\x1b]0;pwned\\x07x\\r\\nFAKE LINE\\u202egnp.exe');
    expect(out).toContain('k\\x1b[31m=v\\x9b2J');
    expect(out).toContain('text/\\x1b[8mhidden');
    expect(out).toContain('hi\\x1b[2Jthere\\x9b31m');
    // The payload keeps its lines.
    expect(out).toMatch(/\r\n +second line/);
  });

  it('-F: every code that prints from the message (%t %p %P %C %R %j)', async () => {
    const out = await subOnTty(['-F', '%t|%p|%P|%C|%R|%j']);
    expect(activeIn(out)).toBeUndefined();
    expect(out).toContain('esc/\\x1b]0;pwned\\x07x\\r\\nFAKE LINE\\u202egnp.exe|hi\\x1b[2Jthere\\x9b31m');
    expect(out).toContain('|k\\x1b[31m:v\\x9b2J|text/\\x1b[8mhidden|r/\\u202eevil|{');
  });

  it("-F's own escapes still reach the terminal (\\e is the user's, not the network's)", async () => {
    const out = await subOnTty(['-F', '\\e[1m%l\\e[0m']);
    expect(out).toContain(`\x1b[1m${Buffer.byteLength(PAYLOAD)}\x1b[0m`);
  });

  it('--output text -v and --output hex -v escape the topic', async () => {
    for (const mode of ['text', 'hex']) {
      const out = await subOnTty(['--output', mode, '-v']);
      expect(activeIn(out), mode).toBeUndefined();
      expect(out).toContain('esc/\\x1b]0;pwned\\x07x\\r\\nFAKE LINE\\u202egnp.exe ');
    }
  });

  it('--output ndjson is valid JSON with the terminal-active characters as \\u escapes', async () => {
    const out = await subOnTty(['--output', 'ndjson']);
    expect(activeIn(out)).toBeUndefined();
    const line = out.split('\r\n').find((l) => l.startsWith('{'));
    expect(JSON.parse(line!)).toMatchObject({ topic: TOPIC, payload: PAYLOAD });
  });
});

describe('on a pipe the output is data: byte-exact, like mosquitto_sub', () => {
  it('payload only, and -v (topic and payload)', async () => {
    const plain = await spawnMq(['sub', '-p', String(broker.port), '-t', 'esc/#', '-C', '1']).exit(15_000);
    expect(plain.stdout).toBe(`${PAYLOAD}\n`);
    const verbose = await spawnMq(['sub', '-p', String(broker.port), '-t', 'esc/#', '-C', '1', '-v']).exit(
      15_000,
    );
    expect(verbose.stdout).toBe(`${TOPIC} ${PAYLOAD}\n`);
  });
});

describe('traces, decode and diagnostics escape what the network sent', () => {
  it("the client's --trace (-d) lines on stderr", async () => {
    const r = await spawnMq(['sub', '-p', String(broker.port), '-t', 'esc/#', '-C', '1', '-d']).exit(15_000);
    expect(r.code).toBe(0);
    expect(activeIn(r.stderr)).toBeUndefined();
    expect(r.stderr).toContain('topic="esc/\\u001b]0;pwned\\u0007x\\r\\nFAKE LINE\\u202egnp.exe"');
    expect(r.stderr).toContain('"k\\u001b[31m"="v\\u009b2J"');
  });

  it('mq decode: the block, --line and --bytes', async () => {
    const bytes = encode(
      {
        type: 'PUBLISH',
        dup: false,
        qos: 0,
        retain: false,
        topic: TOPIC,
        payload: Buffer.from('x'),
        properties: { userProperties: [[USER_KEY, USER_VALUE]], contentType: CONTENT_TYPE },
      },
      5,
    ).toString('hex');
    for (const flags of [[], ['--line'], ['--bytes']]) {
      const r = await spawnMq(['decode', '-V', '5', ...flags, bytes]).exit(15_000);
      expect(r.code, flags.join(' ')).toBe(0);
      expect(activeIn(r.stdout), flags.join(' ')).toBeUndefined();
      expect(r.stdout).toContain('FAKE LINE');
    }
  });

  it('mq decode of a recording: client, direction and time come from the file', async () => {
    const line = JSON.stringify({ time: `t${CLEAR}`, client: EVIL_ID, direction: `in\u009b`, hex: 'c000' });
    for (const flags of [[], ['--line']]) {
      const r = await spawnMq(['decode', ...flags], { input: `${line}\n` }).exit(15_000);
      expect(r.code).toBe(0);
      expect(activeIn(r.stdout)).toBeUndefined();
    }
  });
});

describe('mq broker log and trace lines', () => {
  it('a client id with ESC and a newline cannot forge a line or retitle the terminal, before authentication too', async () => {
    const b = await startMqBroker(['--auth', 'alice:secret', '--trace=full']);
    try {
      const c = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, {
        clientId: EVIL_ID,
        username: 'mallory',
        password: 'guess',
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      await new Promise<void>((resolve) => {
        c.once('error', () => resolve());
        c.once('close', () => resolve());
      });
      c.end(true);
      await b.proc.waitForLine(/connection refused/, 10_000, 'stderr');
    } finally {
      await b.stop();
    }
    const err = b.proc.stderr;
    expect(activeIn(err)).toBeUndefined();
    expect(err).toContain('evil\\x1b]0;pwned\\x07\\nFAKE 00:00:00.000 [admin] connected');
    expect(err.split('\n').some((l) => l.startsWith('FAKE'))).toBe(false);
  });
});

describe("a broker's reason strings", () => {
  const REASON = `go away${TITLE}\r\nmq: FAKE everything is fine${CLEAR}`;

  it('a CONNACK refusal: one escaped line, exit 2', async () => {
    const refusal = encode(
      { type: 'CONNACK', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: REASON } },
      5,
    );
    const fake = await startFakeBroker(
      (packet, session) => {
        if (packet.type === 'CONNECT') session.socket.end(refusal);
      },
      { autoConnack: false },
    );
    try {
      const r = await spawnMq(['pub', '-p', String(fake.port), '-t', 't', '-m', 'x']).exit(15_000);
      expect(r.code).toBe(2);
      expect(activeIn(r.stderr)).toBeUndefined();
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('go away\\x1b]0;pwned\\x07\\r\\nmq: FAKE');
    } finally {
      await fake.stop();
    }
  });

  it('a DISCONNECT: the reconnect notice of mq sub is escaped', async () => {
    const fake = await startFakeBroker((packet, session) => {
      if (packet.type !== 'CONNECT') return;
      session.socket.end(
        encode({ type: 'DISCONNECT', reasonCode: 0x89, properties: { reasonString: REASON } }, 5),
      );
    });
    const p = spawnMq(['sub', '-p', String(fake.port), '-t', 't', '--reconnect', '5']);
    try {
      await p.waitForLine(/reconnecting/, 10_000, 'stderr');
      expect(activeIn(p.stderr)).toBeUndefined();
      expect(p.stderr).toContain('go away\\x1b]0;pwned\\x07\\r\\nmq: FAKE');
    } finally {
      await p.kill('SIGINT');
      await fake.stop();
    }
  });
});
