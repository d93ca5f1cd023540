/**
 * --persist FILE holding records that are not what the broker wrote (issue 12 item 9): valid JSON
 * of the wrong shape, records the codec could not send, a torn or garbage last line (kill -9 in the
 * middle of a write). Each is skipped with a warning naming the file and the line; the good records
 * are kept; the broker starts and serves.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { brokerCore } from '../../src/broker/broker.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

let dir: string;
const h = brokerHarness();
const { client, subscribe } = h;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-persist-bad-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const rec = (o: unknown) => JSON.stringify(o);
const message = (id: number, t: string, extra: Record<string, unknown> = {}) =>
  rec({ o: 'M', id, t, p: Buffer.from(t).toString('base64'), q: 1, r: true, ...extra });

/** Writes `lines` as a --persist log and starts a broker on it. */
async function brokerOn(name: string, lines: string[], tail = '\n') {
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n') + tail);
  return { file, b: await h.broker({ persistFile: file }) };
}

describe('--persist: bad records are skipped with a warning, good ones kept', () => {
  test('valid JSON of the wrong shape (null, "subs":5, a number, an array): file and line named, the rest restored', async () => {
    const { file, b } = await brokerOn('shape.log', [
      message(1, 'keep/a'),
      rec({ o: 'R', t: 'keep/a', m: 1 }),
      'null',
      rec({ o: 'S', c: 'bad', v: 4, e: 60, subs: 5 }),
      '5',
      '[]',
      rec({ o: 'S', c: 'good', v: 4, e: 4294967295, subs: [['g/#', 1, 0, 0, 0, null]] }),
      message(2, 'keep/b'),
      rec({ o: 'R', t: 'keep/b', m: 2 }),
    ]);
    for (const [line, why] of [
      [3, 'not a JSON object'],
      [4, "field 'subs' is not an array"],
      [5, 'not a JSON object'],
      [6, 'not a JSON object'],
    ] as const) {
      expect(b.logs).toContain(`--persist ${file}: skipping line ${line}: ${why}`);
    }
    const core = brokerCore(b.broker);
    expect([...core.sessions.keys()]).toEqual(['good']);
    expect([...core.retained.keys()].sort()).toEqual(['keep/a', 'keep/b']);
  });

  test('records the broker could not send: bad properties, a wildcard topic, an invalid filter (skipped, never sent)', async () => {
    const { file, b } = await brokerOn('unsendable.log', [
      message(1, 'keep/a'),
      rec({ o: 'R', t: 'keep/a', m: 1 }),
      message(2, 'keep/props', { x: { userProperties: 5 } }),
      rec({ o: 'R', t: 'keep/props', m: 2 }),
      message(3, 'keep/+'),
      rec({ o: 'R', t: 'keep/+', m: 3 }),
      rec({ o: 'S', c: 'filters', v: 4, e: 60, subs: [['a/#/b', 1, 0, 0, 0, null]] }),
      message(4, 'keep/z'),
      rec({ o: 'R', t: 'keep/z', m: 4 }),
    ]);
    await b.waitForLog(new RegExp(`--persist ${file}: skipping line 3: `));
    await b.waitForLog(new RegExp(`--persist ${file}: skipping line 5: `));
    await b.waitForLog(new RegExp(`--persist ${file}: skipping line 7: `));
    // What is left is delivered, and the subscriber stays connected.
    const s = await client(b.port, { version: 5 });
    await subscribe(s, 'keep/#', 1);
    const got = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')].map((m) => m.topic).sort();
    expect(got).toEqual(['keep/a', 'keep/z']);
    s.send({ type: 'PINGREQ' });
    await s.nextPacket('PINGRESP');
    expect(brokerCore(b.broker).sessions.has('filters')).toBe(false);
  });

  test('a torn last line (kill -9 mid-write) is dropped with a warning, not silently', async () => {
    const { file, b } = await brokerOn(
      'torn.log',
      [message(1, 'keep/a'), rec({ o: 'R', t: 'keep/a', m: 1 }), '{"o":"R","t":"keep/to'],
      '',
    );
    await b.waitForLog(new RegExp(`--persist ${file}: line 3 is incomplete .*dropped`));
    expect([...brokerCore(b.broker).retained.keys()]).toEqual(['keep/a']);
  });

  test('a garbage last line is dropped with a warning; garbage in the middle is skipped with one', async () => {
    const { file, b } = await brokerOn('garbage.log', [
      message(1, 'keep/a'),
      '\u0000\u0000garbage',
      rec({ o: 'R', t: 'keep/a', m: 1 }),
      'not json at all',
    ]);
    await b.waitForLog(new RegExp(`--persist ${file}: skipping line 2: `));
    await b.waitForLog(new RegExp(`--persist ${file}: line 4 is incomplete .*dropped`));
    expect([...brokerCore(b.broker).retained.keys()]).toEqual(['keep/a']);
  });
});
