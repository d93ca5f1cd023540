/**
 * mq as a library, from its package entry (`import ... from 'mq'`: package.json's exports, the
 * built dist/), as a user's program imports it: the codec, the client, the broker, and the
 * libraries behind `mq proxy`, `mq probe` and `mq bench`, used together in one run.
 */
import { describe, expect, test } from 'vitest';
import { spawnProcess } from '../helpers/spawn.js';

// Run in the package's own folder: Node resolves 'mq' to it by name (package self-reference).
const PROGRAM = `
import * as mq from 'mq';
const { Broker, MqttClient, MqttProxy, runProbe, formatReport, runBench, decode, encode } = mq;

const broker = new Broker({ port: 0, log: () => {} });
const { tcp } = await broker.listen();
const proxy = new MqttProxy({ port: 0, upstream: { transport: 'mqtt', host: '127.0.0.1', port: tcp.port } });
const through = (await proxy.listen()).tcp;
const at = { transport: 'mqtt', host: '127.0.0.1', port: through.port };

const client = await MqttClient.connect({ ...at, version: 5, clientId: 'lib', keepalive: 30, clean: true });
const got = new Promise((resolve) => client.on('message', (p) => resolve(p.payload.toString())));
await client.subscribe([{ topicFilter: 'lib/#', qos: 1 }]);
await client.publish('lib/x', 'hello', { qos: 1 });
const message = await got;
await client.end();

const probe = await runProbe({
  client: { ...at, version: 5, clientId: 'unused', keepalive: 30, clean: true },
  timeoutMs: 5000,
  maxProbe: 4096,
  sections: ['versions'],
});
const bench = await runBench({ mode: 'e2e', target: at, workers: 0, warmupSec: 0, count: 50, qos: 1 });
const packet = decode(encode({ type: 'PINGREQ' }, 5), 5);

await proxy.close();
await broker.close();
console.log(JSON.stringify({
  message,
  probeVersions: probe.results.filter((r) => r.section === 'versions').map((r) => r.status),
  probeText: formatReport(probe).length > 0,
  benchReceived: bench.messages.received,
  benchLost: bench.messages.lost,
  packet: packet.type,
  exports: ['Broker', 'MqttClient', 'MqttProxy', 'runProbe', 'runBench', 'BenchSession',
    'startBuiltinBroker', 'mergeReports', 'compareReports', 'readReport', 'ConnectError',
    'reportJson', 'summarize', 'SECTIONS', 'NO_FAULTS', 'makePasswdLine', 'Framer']
    .filter((name) => mq[name] === undefined),
}));
`;

describe("import from 'mq' (the package entry, built)", () => {
  test('client, broker, proxy, probe and bench work together through the entry', async () => {
    const r = await spawnProcess(process.execPath, ['--input-type=module', '-e', PROGRAM]).exit(60_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      message: 'hello',
      probeText: true,
      benchReceived: 50,
      benchLost: 0,
      packet: 'PINGREQ',
      exports: [],
    });
    expect(out.probeVersions.length).toBeGreaterThan(0);
    expect(out.probeVersions).not.toContain('fail');
  });
});
