/**
 * Strings from the network in the broker's log and trace lines (issue 12 item 7): client ids, user
 * names, topics, filters, WebSocket header values are escaped for a terminal at the source, before
 * authentication too, so a client cannot set the terminal's title, clear it, or forge a log line.
 */
import { connect } from 'node:net';
import { describe, expect, test } from 'vitest';
import { Broker } from '../../src/broker/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, client, subscribe, pub, track } = brokerHarness();

/** What a terminal acts on: C0 (newline included), DEL, C1, bidi controls, U+2028/9. */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
/** Set the window title, a forged log line, CSI clear screen (C1), a right-to-left override. */
const EVIL = '\x1b]0;pwned\x07\n12:00:00.000 [admin] connected\u009b2J\u202e';

describe('log and trace lines escape what the network sent', () => {
  test('client id, user name, will topic, topics and filters: escaped, one line each', async () => {
    const traced: string[] = [];
    const b = await broker({
      users: { alice: 'pw' },
      denyPublish: ['deny/#'],
      trace: 'line',
      traceOut: (l) => traced.push(l),
    });
    // Refused before authentication: client id and user name in the refusal line.
    const refused = await client(b.port, {
      version: 5,
      clientId: `id${EVIL}`,
      username: `user${EVIL}`,
      password: 'wrong',
      expectSuccess: false,
    });
    expect(refused.connack?.reasonCode).toBe(0x86);
    await b.waitForLog(/connection refused/);
    // Accepted: its client id in every line about it; a denied topic; an invalid filter; a will.
    const c = await client(b.port, {
      version: 5,
      clientId: `ok${EVIL}`,
      username: 'alice',
      password: 'pw',
      will: { topic: `will${EVIL}`, payload: Buffer.from('x'), qos: 0, retain: false },
    });
    c.send(pub(`deny/${EVIL}`, 'x', 1));
    await c.nextPacket('PUBACK');
    expect(await subscribe(c, `bad#${EVIL}`)).toBe(0x8f);
    c.destroy();
    await b.waitForLog(/connection lost/);

    const lines = [...b.logs, ...traced];
    for (const line of lines) expect(line).not.toMatch(UNSAFE);
    // Escaped, not dropped: the text is still there to read.
    const log = b.logs.join('\n');
    expect(log).toContain('ok\\x1b]0;pwned\\x07\\n12:00:00.000 [admin] connected\\x9b2J\\u202e');
    expect(log).toContain('user\\x1b]0;pwned');
    expect(log).toContain('deny/\\x1b]0;pwned');
    expect(traced.join('\n')).toContain('[ok\\x1b]0;pwned');
  });

  test('a WebSocket subprotocol header with a C1 control (bytes 0x9b) is escaped in the refusal line', async () => {
    const logs: string[] = [];
    const own = track(new Broker({ port: null, wsPort: 0, sysInterval: 0, log: (l) => logs.push(l) }));
    const wsPort = (await own.listen()).ws?.port ?? 0;
    const sock = connect(wsPort, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.on('error', () => {});
    sock.write(
      Buffer.concat([
        Buffer.from(
          'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x',
        ),
        Buffer.from([0x9b, 0x32, 0x4a]),
        Buffer.from('\r\n\r\n'),
      ]),
    );
    // The refusal (HTTP 400) is written after the log line.
    await new Promise<void>((resolve) => sock.once('data', () => resolve()));
    sock.destroy();
    const line = logs.find((l) => /WebSocket upgrade refused/.test(l)) ?? '';
    expect(line).not.toMatch(UNSAFE);
    expect(line).toContain('\\x9b2J');
  });
});
