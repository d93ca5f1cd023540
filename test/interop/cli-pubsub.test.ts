import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testPki } from '../helpers/certs.js';
import { freePort, type MosquittoHandle, startMosquitto } from '../helpers/mosquitto.js';
import { killAll, type Spawned, spawnMq, spawnProcess } from '../helpers/spawn.js';

let mosq: MosquittoHandle;
let port: string;
let tlsPort: string;
let dir: string;

/** A test CA and a server certificate valid for the name localhost only (not 127.0.0.1). */
function makeCertificates(): void {
  const pki = testPki(dir);
  pki.ca('ca', 'mq cli test CA');
  pki.ca('other-ca', 'other CA');
  pki.server('server', 'DNS:localhost');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mq-cli-tls-'));
  makeCertificates();
  // Mosquitto started as root drops to the mosquitto user: it must be able to read the key.
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  chmodSync(dir, 0o755);
  tlsPort = String(await freePort());
  mosq = await startMosquitto({
    websockets: true,
    extraConfig: [
      `listener ${tlsPort} 127.0.0.1`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
    ],
  });
  port = String(mosq.port);
});

afterAll(async () => {
  await killAll();
  await mosq?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** mosquitto_sub ARGS, resolved once it has subscribed (-d prints the SUBACK line). */
async function mosquittoSub(args: string[]): Promise<Spawned> {
  // -d prints through stdio, block-buffered on a pipe: stdbuf makes it line-buffered.
  const p = spawnProcess('stdbuf', ['-oL', 'mosquitto_sub', '-p', port, '-d', ...args]);
  await p.waitForLine(/received SUBACK/, 10_000);
  return p;
}

/** `mq sub ARGS --trace`, resolved once its SUBACK arrived. */
async function mqSub(args: string[]): Promise<Spawned> {
  const p = spawnMq(['sub', '-p', port, '--trace', ...args]);
  await p.waitForLine(/^<- SUBACK/, 10_000, 'stderr');
  return p;
}

/** stdout without mosquitto_sub's -d debug lines. */
function payloadLines(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '' && !/^Client \S+ (sending|received) /.test(l) && !/^Subscribed \(mid/.test(l));
}

describe('mq pub -> mosquitto_sub', () => {
  it.each([0, 1, 2])('QoS %i arrives at the QoS asked for', async (qos) => {
    const s = await mosquittoSub(['-t', `mp/${qos}`, '-q', '2', '-C', '1', '-V', '5', '-F', '%q %p']);
    const r = await spawnMq(['pub', '-p', port, '-t', `mp/${qos}`, '-m', `q${qos}`, '-q', String(qos)]).exit(
      10_000,
    );
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const out = await s.exit(10_000);
    expect(payloadLines(out.stdout)).toEqual([`${qos} q${qos}`]);
  });

  it('retained messages reach a later mosquitto_sub, flagged retained', async () => {
    expect(
      (await spawnMq(['pub', '-p', port, '-t', 'mp/ret', '-m', 'kept', '-r', '-q', '1']).exit(10_000)).code,
    ).toBe(0);
    const r = await spawnProcess('mosquitto_sub', [
      '-p',
      port,
      '-t',
      'mp/ret',
      '-C',
      '1',
      '-F',
      '%r %p',
    ]).exit(10_000);
    expect(r.stdout).toBe('1 kept\n');
    expect((await spawnMq(['pub', '-p', port, '-t', 'mp/ret', '-n', '-r']).exit(10_000)).code).toBe(0);
  });

  it('v5 properties arrive as mosquitto_sub prints them', async () => {
    const s = await mosquittoSub(['-t', 'mp/props', '-C', '1', '-V', '5', '-F', '%C|%R|%D|%E|%F|%P|%p']);
    const r = await spawnMq([
      'pub',
      '-p',
      port,
      '-t',
      'mp/props',
      '-m',
      'body',
      '--content-type',
      'text/plain',
      '--response-topic',
      'r/t',
      '--correlation-data',
      'corr',
      '--message-expiry',
      '100',
      '--payload-format-indicator',
      '1',
      '--user-property',
      'a=1',
      '--user-property',
      'b=2',
    ]).exit(10_000);
    expect(r.code).toBe(0);
    const out = await s.exit(10_000);
    const [line] = payloadLines(out.stdout);
    expect(line).toMatch(/^text\/plain\|r\/t\|corr\|(100|99)\|1\|a:1 b:2\|body$/);
  });

  it('binary payloads arrive byte for byte (-l lines too)', async () => {
    const s = await mosquittoSub(['-t', 'mp/bin', '-C', '2', '-F', '%x']);
    const r = await spawnMq(['pub', '-p', port, '-t', 'mp/bin', '-m', 'hex:00ff80']).exit(10_000);
    expect(r.code).toBe(0);
    const l = await spawnMq(['pub', '-p', port, '-t', 'mp/bin', '-l'], {
      input: Buffer.from([0xc3, 0x28, 0x0a]),
    }).exit(10_000);
    expect(l.code).toBe(0);
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['00ff80', 'c328']);
  });

  it('a will set by mq sub is published by Mosquitto when mq sub dies', async () => {
    const s = await mosquittoSub(['-t', 'mp/will', '-C', '1', '-v']);
    const victim = await mqSub([
      '-t',
      'mp/nothing',
      '--will-topic',
      'mp/will',
      '--will-payload',
      'gone',
      '-k',
      '5',
    ]);
    await victim.kill('SIGKILL');
    const out = await s.exit(15_000);
    expect(payloadLines(out.stdout)).toEqual(['mp/will gone']);
  });
});

describe('mosquitto_pub -> mq sub', () => {
  it.each([0, 1, 2])('QoS %i, printed payload-only like mosquitto_sub', async (qos) => {
    const s = await mqSub(['-t', `pm/${qos}`, '-q', '2', '-C', '1']);
    const r = await spawnProcess('mosquitto_pub', [
      '-p',
      port,
      '-t',
      `pm/${qos}`,
      '-m',
      `hello ${qos}`,
      '-q',
      String(qos),
    ]).exit(10_000);
    expect(r.code).toBe(0);
    const out = await s.exit(10_000);
    expect(out).toMatchObject({ code: 0, stdout: `hello ${qos}\n` });
  });

  it('QoS, retain and v5 properties show in --json', async () => {
    await spawnProcess('mosquitto_pub', ['-p', port, '-t', 'pm/json', '-m', 'r', '-r', '-q', '1']).exit(
      10_000,
    );
    const s = await mqSub(['-t', 'pm/json', '-q', '2', '--json', '-C', '2']);
    const r = await spawnProcess('mosquitto_pub', [
      '-p',
      port,
      '-t',
      'pm/json',
      '-m',
      '{"x":1}',
      '-q',
      '2',
      '-V',
      '5',
      '-D',
      'publish',
      'content-type',
      'application/json',
      '-D',
      'publish',
      'user-property',
      'k',
      'v',
      '-D',
      'publish',
      'correlation-data',
      'abc',
    ]).exit(10_000);
    expect(r.code).toBe(0);
    const [retained, live] = (await s.exit(10_000)).stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(retained).toMatchObject({ topic: 'pm/json', qos: 1, retain: true, payload: 'r' });
    expect(live).toMatchObject({
      qos: 2,
      retain: false,
      payload: '{"x":1}',
      encoding: 'utf8',
      properties: {
        contentType: 'application/json',
        userProperties: [['k', 'v']],
        correlationData: 'abc',
        correlationDataEncoding: 'utf8',
      },
    });
    await spawnProcess('mosquitto_pub', ['-p', port, '-t', 'pm/json', '-n', '-r']).exit(10_000);
  });

  it('binary payloads stay binary-safe in --output hex and ndjson', async () => {
    const s = await mqSub(['-t', 'pm/bin', '--output', 'hex', '-C', '1']);
    const p = spawnProcess('mosquitto_pub', ['-p', port, '-t', 'pm/bin', '-s'], {
      input: Buffer.from([0, 0xff, 0x10]),
    });
    expect((await p.exit(10_000)).code).toBe(0);
    expect((await s.exit(10_000)).stdout).toBe('00ff10\n');
  });

  it('a will sent by mosquitto_sub reaches mq sub', async () => {
    const s = await mqSub(['-t', 'pm/will', '-C', '1', '-v']);
    const victim = spawnProcess('stdbuf', [
      '-oL',
      'mosquitto_sub',
      '-p',
      port,
      '-t',
      'pm/x',
      '-d',
      '--will-topic',
      'pm/will',
      '--will-payload',
      'bye',
      '-k',
      '5',
    ]);
    await victim.waitForLine(/received SUBACK/, 10_000);
    await victim.kill('SIGKILL');
    expect((await s.exit(15_000)).stdout).toBe('pm/will bye\n');
  });
});

describe('mq req <-> mosquitto_rr', () => {
  it('mq req gets the answer of a responder built from mosquitto_sub | mosquitto_pub', async () => {
    // A one-shot responder: read the request's response topic and correlation data, answer.
    const responder = spawnProcess('sh', [
      '-c',
      `mosquitto_sub -p ${port} -V 5 -t rr/svc -C 1 -F '%R %D' | { read topic corr; mosquitto_pub -p ${port} -V 5 -t "$topic" -m pong -D publish correlation-data "$corr"; }`,
    ]);
    // mosquitto_sub gives no subscribed signal here: retry the request until the responder answers.
    let r = await spawnMq(['req', '-p', port, '-t', 'rr/svc', '-m', 'ping', '-W', '1']).exit(10_000);
    for (let i = 0; i < 5 && r.code !== 0; i++) {
      r = await spawnMq(['req', '-p', port, '-t', 'rr/svc', '-m', 'ping', '-W', '1']).exit(10_000);
    }
    expect(r).toMatchObject({ code: 0, stdout: 'pong\n' });
    await responder.exit(5000);
  });
});

describe('TLS and WebSocket from the command line', () => {
  it('mq pub over TLS with --cafile (-L mqtts://host:port/topic) reaches mosquitto_sub', async () => {
    const s = await mosquittoSub(['-t', 'tls/x', '-C', '1']);
    const r = await spawnMq([
      'pub',
      '-L',
      `mqtts://localhost:${tlsPort}/tls/x`,
      '--cafile',
      join(dir, 'ca.pem'),
      '-m',
      'secure',
    ]).exit(10_000);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(payloadLines((await s.exit(10_000)).stdout)).toEqual(['secure']);
  });

  it('a server certificate from an unknown CA: exit 2, says which flag fixes it', async () => {
    const r = await spawnMq([
      'pub',
      '-L',
      `mqtts://localhost:${tlsPort}`,
      '--cafile',
      join(dir, 'other-ca.pem'),
      '-t',
      'x',
      '-m',
      'x',
    ]).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not signed by a CA you trust/);
    expect(r.stderr).toMatch(/--cafile/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it("a certificate for another name: exit 2, names the certificate's names and --servername", async () => {
    const r = await spawnMq([
      'sub',
      '-h',
      '127.0.0.1',
      '-p',
      tlsPort,
      '--cafile',
      join(dir, 'ca.pem'),
      '-t',
      'x',
      '-E',
    ]).exit(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/valid for localhost, not 127\.0\.0\.1/);
    expect(r.stderr).toMatch(/--servername/);
  });

  it('mq sub over WebSocket (-L ws://) gets what mosquitto_pub sends', async () => {
    const s = mqSubUrl(`ws://127.0.0.1:${mosq.wsPort}`, ['-t', 'ws/x', '-C', '1', '-v']);
    await s.waitForLine(/^<- SUBACK/, 10_000, 'stderr');
    expect(
      (await spawnProcess('mosquitto_pub', ['-p', port, '-t', 'ws/x', '-m', 'over ws']).exit(10_000)).code,
    ).toBe(0);
    expect((await s.exit(10_000)).stdout).toBe('ws/x over ws\n');
  });
});

function mqSubUrl(url: string, args: string[]): Spawned {
  return spawnMq(['sub', '-L', url, '--trace', ...args]);
}
