/** --trace, --record and the fault-injection knobs. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Broker } from '../../src/broker/index.js';
import { formatPacketLine } from '../../src/cli/render.js';
import { decode } from '../../src/protocol/index.js';
import { brokerHarness } from '../helpers/mqtt-test-client.js';

const { broker, client, subscribe, pub, track } = brokerHarness();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mq-broker-trace-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('--trace', () => {
  async function traced(mode: 'line' | 'full'): Promise<{ port: number; lines: string[] }> {
    const lines: string[] = [];
    const b = new Broker({
      port: 0,
      sysInterval: 0,
      trace: mode,
      log: () => {},
      traceOut: (l) => lines.push(l),
    });
    b.setTraceFormatter((packet, version) => formatPacketLine(packet, version));
    track(b);
    const port = (await b.listen()).tcp!.port;
    return { port, lines };
  }

  test('one line per packet in and out, prefixed with the client id and direction', async () => {
    const { port, lines } = await traced('line');
    const c = await client(port, { version: 5, clientId: 'tracer' });
    await subscribe(c, 't/x', 1);
    c.send(pub('t/x', 'hello', 1));
    await c.nextPacket('PUBACK');
    const m = await c.nextPacket('PUBLISH');
    c.send({ type: 'PUBACK', packetId: m.packetId! });
    c.send({ type: 'PINGREQ' });
    await c.nextPacket('PINGRESP');
    expect(lines[0]).toMatch(/^\[tracer\] -> CONNECT v5\.0 clientId="tracer"/);
    expect(lines[1]).toMatch(/^\[tracer\] <- CONNACK/);
    expect(lines).toContainEqual(
      expect.stringMatching(/^\[tracer\] -> PUBLISH .*topic="t\/x".*payload="hello"/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^\[tracer\] <- PUBLISH .*topic="t\/x"/));
    expect(lines).toContainEqual(expect.stringMatching(/^\[tracer\] <- PUBACK/));
    expect(lines.at(-1)).toMatch(/^\[tracer\] <- PINGRESP/);
  });

  test('the formatter gets every field in full mode', async () => {
    const lines: string[] = [];
    const b = new Broker({
      port: 0,
      sysInterval: 0,
      trace: 'full',
      log: () => {},
      traceOut: (l) => lines.push(l),
    });
    const modes: string[] = [];
    b.setTraceFormatter((packet, _v, mode) => {
      modes.push(mode);
      return packet.type;
    });
    track(b);
    const port = (await b.listen()).tcp!.port;
    await client(port, { version: 4, clientId: 'full' });
    expect(lines.slice(0, 2)).toEqual(['[full] -> CONNECT', '[full] <- CONNACK']);
    expect(new Set(modes)).toEqual(new Set(['full']));
  });
});

describe('--record', () => {
  test('NDJSON {time, client, direction, hex}; the hex decodes back to the packets', async () => {
    const file = join(dir, 'traffic.ndjson');
    const b = await broker({ recordFile: file });
    const c = await client(b.port, { version: 5, clientId: 'rec' });
    await subscribe(c, 'r/1');
    c.send(pub('r/1', 'recorded'));
    await c.nextPacket('PUBLISH');
    await b.broker.close();
    const records = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; client: string; direction: string; hex: string });
    const view = records.map((r) => [r.client, r.direction, decode(Buffer.from(r.hex, 'hex'), 5).type]);
    expect(view).toEqual([
      ['rec', 'in', 'CONNECT'],
      ['rec', 'out', 'CONNACK'],
      ['rec', 'in', 'SUBSCRIBE'],
      ['rec', 'out', 'SUBACK'],
      ['rec', 'in', 'PUBLISH'],
      ['rec', 'out', 'PUBLISH'],
      ['rec', 'out', 'DISCONNECT'],
    ]);
    expect(Number.isNaN(Date.parse(records[0]!.time))).toBe(false);
  });
});

describe('fault injection', () => {
  test('--refuse-connect CODE: v5 gets the code, 3.1.1 the nearest return code', async () => {
    const b = await broker({ refuseConnect: 0x87 });
    const c5 = await client(b.port, { version: 5, expectSuccess: false });
    expect(c5.connack?.reasonCode).toBe(0x87);
    const c4 = await client(b.port, { version: 4, expectSuccess: false });
    expect(c4.connack?.reasonCode).toBe(5);
    await c4.closed();
  });

  test('--max-qos 1: advertised, subscriptions granted at most 1, a QoS 2 PUBLISH gets DISCONNECT 0x9B', async () => {
    const b = await broker({ maxQoS: 1 });
    const c = await client(b.port, { version: 5 });
    expect(c.connack?.properties?.maximumQoS).toBe(1);
    expect(await subscribe(c, 'mq/x', 2)).toBe(1);
    c.send(pub('mq/x', 'x', 2));
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x9b);
  });

  test('--no-retain: Retain Available 0; a retained PUBLISH gets DISCONNECT 0x9A', async () => {
    const b = await broker({ noRetain: true });
    const c = await client(b.port, { version: 5 });
    expect(c.connack?.properties?.retainAvailable).toBe(0);
    c.send(pub('nr', 'x', 0, true));
    expect((await c.nextPacket('DISCONNECT')).reasonCode).toBe(0x9a);
  });

  test('--receive-maximum and --topic-alias-max are advertised in CONNACK', async () => {
    const b = await broker({ receiveMaximum: 7, topicAliasMax: 3 });
    const c = await client(b.port, { version: 5 });
    expect(c.connack?.properties?.receiveMaximum).toBe(7);
    expect(c.connack?.properties?.topicAliasMaximum).toBe(3);
  });

  test('--drop-every N: every Nth packet the broker sends is lost', async () => {
    const b = await broker({ dropEvery: 2 });
    const s = await client(b.port, { version: 4 });
    await subscribe(s, 'drop'); // SUBACK: packet 1
    const p = await client(b.port, { version: 4 });
    for (let i = 0; i < 4; i++) p.send(pub('drop', String(i))); // packets 2..5 to s
    const got = [await s.nextPacket('PUBLISH'), await s.nextPacket('PUBLISH')];
    expect(got.map((m) => m.payload.toString())).toEqual(['1', '3']);
  });

  test('--delay MS: everything the broker sends is late by MS', async () => {
    const b = await broker({ delayMs: 300 });
    const c = await client(b.port, { version: 4 });
    const start = Date.now();
    c.send({ type: 'PINGREQ' });
    await c.nextPacket('PINGRESP');
    expect(Date.now() - start).toBeGreaterThanOrEqual(280);
    // What is sent just before a close arrives too.
    c.send({ type: 'CONNECT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'again' });
    await c.closed(2000);
  });

  test('--delay: a refusal CONNACK still arrives before the close', async () => {
    const b = await broker({ delayMs: 200, refuseConnect: 0x86 });
    const c = await client(b.port, { version: 5, expectSuccess: false });
    expect(c.connack?.reasonCode).toBe(0x86);
  });

  test('--disconnect-after S --reason CODE', async () => {
    const b = await broker({ disconnectAfterS: 0.3, disconnectReason: 0x9c });
    const start = Date.now();
    const c = await client(b.port, { version: 5 });
    const d = await c.nextPacket('DISCONNECT', 2000);
    expect(d.reasonCode).toBe(0x9c);
    expect(Date.now() - start).toBeGreaterThanOrEqual(250);
    await c.closed();
  });
});
