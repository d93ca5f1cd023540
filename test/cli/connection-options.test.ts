/**
 * The shared connection flags as a user types them: defaults, -L URLs, env, profiles and their
 * precedence (flags > env > profile > defaults), -D properties, TLS files, will, reconnect, trace.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { parseBrokerUrl } from '../../src/cli/broker-url.js';
import { newCommand } from '../../src/cli/command.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  parseVersion,
  type ResolvedConnection,
  resolveConnectionOptions,
  traceWriter,
} from '../../src/cli/connection-options.js';
import { PAYLOAD_LIMIT, readStdin } from '../../src/cli/io.js';
import { configPath } from '../../src/cli/profile.js';
import { parsePropertyFlags } from '../../src/cli/properties-flag.js';
import { parseBinaryValue } from '../../src/cli/values.js';
import { usageError } from '../helpers/usage-error.js';

const dir = mkdtempSync(join(tmpdir(), 'mq-conn-opts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function parse(args: string[], reconnectDefault = false): ConnectionFlags {
  const cmd = newCommand('t').exitOverride();
  addConnectionOptions(cmd, { reconnect: reconnectDefault });
  cmd.parse(args, { from: 'user' });
  return cmd.opts<ConnectionFlags>();
}

function resolve(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  reconnectDefault = false,
): Promise<ResolvedConnection> {
  return resolveConnectionOptions(parse(args, reconnectDefault), env);
}

function writeConfig(name: string, data: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(data));
  return file;
}

describe('defaults', () => {
  test('localhost:1883, MQTT 5, random mq- id, keepalive 60, clean, no reconnect for pub', async () => {
    const o = await resolve([]);
    expect(o).toMatchObject({
      transport: 'mqtt',
      host: 'localhost',
      port: 1883,
      version: 5,
      keepalive: 60,
      clean: true,
      reconnect: false,
    });
    expect(o.clientId).toMatch(/^mq-[0-9a-f]{8}$/);
    expect((await resolve([])).clientId).not.toBe(o.clientId);
    expect(o.trace).toBeUndefined();
    expect(o.username).toBeUndefined();
  });

  test('sub reconnects by default (1..30 s); --no-reconnect turns it off', async () => {
    expect((await resolve([], {}, true)).reconnect).toEqual({ minMs: 1000, maxMs: 30_000 });
    expect((await resolve(['--no-reconnect'], {}, true)).reconnect).toBe(false);
  });
});

describe('-L URLs', () => {
  test('mqtt://user:pass@host:port/topic: credentials, host, port and the topic', async () => {
    const o = await resolve(['-L', 'mqtt://alice:s%40cret@broker.example:1884/sensors/+/temp']);
    expect(o).toMatchObject({ transport: 'mqtt', host: 'broker.example', port: 1884, username: 'alice' });
    expect(o.password?.toString()).toBe('s@cret');
    expect(o.topic).toBe('sensors/+/temp');
  });

  test("'#' in the topic is kept (not a URL fragment)", () => {
    expect(parseBrokerUrl('mqtt://h/a/#').topic).toBe('a/#');
  });

  test('default ports per scheme; ws path; unix path; IPv6', () => {
    expect(parseBrokerUrl('mqtts://h')).toEqual({ transport: 'mqtts', host: 'h' });
    expect(parseBrokerUrl('ws://h:9001/custom')).toEqual({
      transport: 'ws',
      host: 'h',
      port: 9001,
      path: '/custom',
    });
    expect(parseBrokerUrl('unix:///run/mq.sock')).toEqual({ transport: 'unix', path: '/run/mq.sock' });
    expect(parseBrokerUrl('mqtt://[::1]:1999')).toEqual({ transport: 'mqtt', host: '::1', port: 1999 });
  });

  test('resolved ports: 8883 for mqtts, 443 and /mqtt for wss', async () => {
    expect(await resolve(['-L', 'mqtts://h'])).toMatchObject({ transport: 'mqtts', port: 8883 });
    expect(await resolve(['-L', 'wss://h'])).toMatchObject({ transport: 'wss', port: 443, path: '/mqtt' });
    expect(await resolve(['-L', 'ws://h', '--ws-path', 'x'])).toMatchObject({ port: 80, path: '/x' });
  });

  test('bad URLs are usage errors that say what is wrong', async () => {
    expect(await usageError(resolve(['-L', 'http://h']))).toMatch(/unknown scheme 'http:\/\/'/);
    expect(await usageError(resolve(['-L', 'localhost:1883']))).toMatch(/is not a broker URL/);
    expect(await usageError(resolve(['-L', 'mqtt://h:99999']))).toMatch(/-L port: '99999'/);
  });
});

describe('precedence: flags > env > profile > defaults', () => {
  const config = writeConfig('config.json', {
    profiles: {
      work: { url: 'mqtt://profhost:1000', username: 'profuser', password: 'profpass', version: '3.1.1' },
      tls: { url: 'mqtts://secure.example', cafile: join(dir, 'ca.pem') },
    },
  });
  writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');

  test('a profile alone supplies host, port, credentials, version', async () => {
    const o = await resolve(['--profile', 'work'], { MQ_CONFIG: config });
    expect(o).toMatchObject({ host: 'profhost', port: 1000, username: 'profuser', version: 4 });
    expect(o.password?.toString()).toBe('profpass');
  });

  test('env beats the profile, flags beat env', async () => {
    const env = { MQ_CONFIG: config, MQ_URL: 'mqtt://envhost:2000', MQ_USERNAME: 'envuser' };
    const o = await resolve(['--profile', 'work'], env);
    expect(o).toMatchObject({ host: 'envhost', port: 2000, username: 'envuser' });
    expect(o.password?.toString()).toBe('profpass');
    const f = await resolve(['--profile', 'work', '-h', 'flaghost', '-u', 'flaguser', '-V', '5'], {
      ...env,
      MQ_PASSWORD: 'envpass',
    });
    expect(f).toMatchObject({ host: 'flaghost', port: 2000, username: 'flaguser', version: 5 });
    expect(f.password?.toString()).toBe('envpass');
  });

  test('-L replaces the whole address of MQ_URL (its port does not leak through)', async () => {
    const o = await resolve(['-L', 'mqtts://other'], { MQ_URL: 'mqtt://envhost:2000' });
    expect(o).toMatchObject({ transport: 'mqtts', host: 'other', port: 8883 });
  });

  test('MQ_PROFILE selects a profile; a profile cafile turns TLS on', async () => {
    const o = await resolve([], { MQ_CONFIG: config, MQ_PROFILE: 'tls' });
    expect(o).toMatchObject({ transport: 'mqtts', host: 'secure.example', port: 8883 });
    expect(o.tls?.ca?.toString()).toMatch(/BEGIN CERTIFICATE/);
    expect(o.tls?.caFile).toBe(join(dir, 'ca.pem'));
  });

  test('config location: MQ_CONFIG, else XDG_CONFIG_HOME/mq/config.json, else ~/.config/mq', () => {
    expect(configPath({ MQ_CONFIG: '/x/c.json' })).toBe('/x/c.json');
    expect(configPath({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/mq/config.json');
    expect(configPath({ HOME: '/home/u' })).toBe('/home/u/.config/mq/config.json');
  });

  test('profile mistakes are one clear usage error each', async () => {
    expect(await usageError(resolve(['--profile', 'nope'], { MQ_CONFIG: config }))).toMatch(
      /--profile nope: no such profile in .*config\.json \(profiles: work, tls\)/,
    );
    expect(await usageError(resolve(['--profile', 'x'], { MQ_CONFIG: join(dir, 'missing.json') }))).toMatch(
      /no config file at .*missing\.json/,
    );
    const bad = writeConfig('bad.json', { profiles: { p: { url: 'mqtt://h', colour: 'red' } } });
    expect(await usageError(resolve(['--profile', 'p'], { MQ_CONFIG: bad }))).toMatch(
      /unknown field "colour"/,
    );
    const badType = writeConfig('bad-type.json', { profiles: { p: { port: '1883' } } });
    expect(await usageError(resolve(['--profile', 'p'], { MQ_CONFIG: badType }))).toMatch(
      /"port" .* must be a number/,
    );
  });
});

describe('flags', () => {
  test('-V accepts every spelling mosquitto users type', () => {
    for (const v of ['3.1', '31', 'mqttv31']) expect(parseVersion(v)).toBe(3);
    for (const v of ['3.1.1', '311', 'mqttv311']) expect(parseVersion(v)).toBe(4);
    for (const v of ['5', '5.0', 'mqttv5']) expect(parseVersion(v)).toBe(5);
    expect(() => parseVersion('4.0')).toThrow(/unknown MQTT version '4.0' \(use 3.1, 3.1.1 or 5\)/);
  });

  test('-i, -I prefix, and their conflicts', async () => {
    expect((await resolve(['-i', 'me'])).clientId).toBe('me');
    expect((await resolve(['-I', 'dev-'])).clientId).toMatch(/^dev-[0-9a-f]{8}$/);
    expect(await usageError(resolve(['-i', 'a', '-I', 'b']))).toMatch(/-i and -I cannot be used together/);
    expect(await usageError(resolve(['-V', '3.1', '-i', 'x'.repeat(24)]))).toMatch(/1 to 23 characters/);
  });

  test('-c: persistent session; in v5 the session never expires unless -x says otherwise', async () => {
    expect(await resolve(['-c'])).toMatchObject({ clean: false, sessionExpiry: 0xffffffff });
    expect(await resolve(['-c', '-x', '30'])).toMatchObject({ clean: false, sessionExpiry: 30 });
    expect((await resolve(['-x', 'never'])).sessionExpiry).toBe(0xffffffff);
    const v4 = await resolve(['-c', '-V', '3.1.1']);
    expect(v4).toMatchObject({ clean: false, version: 4 });
    expect(v4.sessionExpiry).toBeUndefined();
    expect(await usageError(resolve(['-x', '30', '-V', '311']))).toMatch(
      /-x \(session expiry\) needs MQTT 5/,
    );
    expect(await usageError(resolve(['-k', 'often']))).toMatch(
      /-k: 'often' is not a whole number from 0 to 65535/,
    );
  });

  test('will flags build the will; payload takes hex:; a will without topic is refused', async () => {
    const o = await resolve([
      '--will-topic',
      'dead/me',
      '--will-payload',
      'hex:00ff',
      '--will-qos',
      '1',
      '--will-retain',
    ]);
    expect(o.will).toEqual({ topic: 'dead/me', payload: Buffer.from([0, 255]), qos: 1, retain: true });
    expect(await usageError(resolve(['--will-payload', 'x']))).toMatch(/no will topic \(--will-topic\)/);
    expect(await usageError(resolve(['--will-topic', 'a/#']))).toMatch(/--will-topic: .*wildcard '#'/);
  });

  test('TLS flags turn TLS on and read the files; mistakes name the flag', async () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'CA');
    const o = await resolve([
      '-h',
      'h',
      '--cafile',
      ca,
      '--servername',
      'broker',
      '--alpn',
      'mqtt',
      '--tls-version',
      'tlsv1.3',
    ]);
    expect(o).toMatchObject({ transport: 'mqtts', port: 8883 });
    expect(o.tls).toMatchObject({
      servername: 'broker',
      alpn: ['mqtt'],
      minVersion: 'TLSv1.3',
      insecure: false,
    });
    expect(o.tls?.ca?.toString()).toBe('CA');
    expect((await resolve(['-L', 'ws://h', '--insecure'])).transport).toBe('wss');
    expect(await usageError(resolve(['--cafile', join(dir, 'nope.pem')]))).toMatch(
      /--cafile: cannot read .*nope\.pem: no such file/,
    );
    expect(await usageError(resolve(['--cert', ca]))).toMatch(/--cert needs --key/);
    expect(await usageError(resolve(['--insecure', '--tls-version', '1.1']))).toMatch(/--tls-version: '1.1'/);
  });

  test('--ws-header on a WebSocket URL; refused without one', async () => {
    const o = await resolve([
      '-L',
      'ws://h',
      '--ws-header',
      'Authorization=Bearer x',
      '--ws-header',
      'X-A=1',
    ]);
    expect(o.wsHeaders).toEqual({ Authorization: 'Bearer x', 'X-A': '1' });
    expect(await usageError(resolve(['--ws-header', 'a=b']))).toMatch(/--ws-header needs a WebSocket URL/);
  });

  test('--reconnect [min..max]', async () => {
    expect((await resolve(['--reconnect'])).reconnect).toEqual({ minMs: 1000, maxMs: 30_000 });
    expect((await resolve(['--reconnect', '0.5..10'])).reconnect).toEqual({ minMs: 500, maxMs: 10_000 });
    expect(await usageError(resolve(['--reconnect', '10..1']))).toMatch(/MIN\.\.MAX/);
  });

  test('-P without -u is refused in 3.1.1 only', async () => {
    expect(await usageError(resolve(['-V', '311', '-P', 'x']))).toMatch(/-P needs -u/);
    expect((await resolve(['-P', 'x'])).password?.toString()).toBe('x');
  });
});

describe('-D PACKET NAME VALUE', () => {
  test('properties by spec name land on their packet; connect ones are applied', async () => {
    const o = await resolve([
      '-D',
      'connect',
      'session-expiry-interval',
      '60',
      '-D',
      'publish',
      'user-property',
      'k',
      'v',
      '-D',
      'publish',
      'content-type',
      'text/plain',
      '-D',
      'publish',
      'User Property',
      'k2',
      'v2',
      '-D',
      'publish',
      'correlation-data',
      'hex:0a0b',
    ]);
    expect(o.properties.publish).toEqual({
      userProperties: [
        ['k', 'v'],
        ['k2', 'v2'],
      ],
      contentType: 'text/plain',
      correlationData: Buffer.from([10, 11]),
    });
    expect(o.connectProperties).toEqual({ sessionExpiryInterval: 60 });
    expect(o.sessionExpiry).toBe(60);
  });

  test('will properties go into the will', async () => {
    const o = await resolve(['--will-topic', 'w', '-D', 'will', 'will-delay-interval', '5']);
    expect(o.will?.properties).toEqual({ willDelayInterval: 5 });
  });

  test('each mistake is one usage error', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['publish', 'session-expiry-interval', '1'],
        /Session Expiry Interval is not allowed in PUBLISH \(only in connect, connack, disconnect\)/,
      ],
      [['puback', 'reason-string', 'x'], /unknown packet 'puback'/],
      [['publish', 'colour', 'red'], /unknown property 'colour'/],
      [['publish', 'user-property', 'k'], /needs a key and a value/],
      [['publish', 'message-expiry-interval', 'soon'], /'soon' is not a whole number/],
      [['publish', 'payload-format-indicator', '2'], /must be 0 or 1/],
      [['publish', 'subscription-identifier', '1'], /must not send a Subscription Identifier in PUBLISH/],
      [['publish', 'content-type', 'a', 'publish', 'content-type', 'b'], /given twice/],
      [['connect', 'receive-maximum', '0'], /from 1 to 65535/],
    ];
    for (const [args, re] of cases) expect(await usageError(parsePropertyFlags(args))).toMatch(re);
    expect(await usageError(resolve(['-V', '3.1.1', '-D', 'publish', 'content-type', 'x']))).toMatch(
      /-D sets MQTT 5 properties: it needs -V 5/,
    );
  });

  test('grouped input (one array per occurrence) works the same', async () => {
    const p = await parsePropertyFlags([
      ['subscribe', 'subscription-identifier', '42'],
      ['disconnect', 'reason-string', 'bye'],
    ]);
    expect(p.subscribe).toEqual({ subscriptionIdentifiers: [42] });
    expect(p.disconnect).toEqual({ reasonString: 'bye' });
  });
});

describe('binary values', () => {
  test('hex:, base64:, @file, plain text', async () => {
    expect(await parseBinaryValue('hex:de ad:be:ef')).toEqual(Buffer.from('deadbeef', 'hex'));
    expect(await parseBinaryValue('base64:AAEC')).toEqual(Buffer.from([0, 1, 2]));
    const f = join(dir, 'blob.bin');
    writeFileSync(f, Buffer.from([9, 8, 7]));
    expect(await parseBinaryValue(`@${f}`)).toEqual(Buffer.from([9, 8, 7]));
    expect(await parseBinaryValue('héllo')).toEqual(Buffer.from('héllo'));
    expect(await usageError(parseBinaryValue('hex:abc', '--correlation-data'))).toMatch(
      /--correlation-data: 'hex:abc' has an odd number of hex digits/,
    );
    expect(await usageError(parseBinaryValue('hex:zz'))).toMatch(/not valid hex/);
    expect(await usageError(parseBinaryValue(`@${join(dir, 'none')}`, '-f'))).toMatch(
      /-f: cannot read .*none: no such file/,
    );
  });

  test('- reads stdin to the end, within a limit', async () => {
    const stdin = () => Readable.from([Buffer.from('a'), Buffer.from('b')]);
    expect(await readStdin(PAYLOAD_LIMIT, '-s', stdin())).toEqual(Buffer.from('ab'));
    expect(await usageError(readStdin({ bytes: 1, why: 'a test' }, '-s', stdin()))).toMatch(
      /-s: stdin is larger than 1 bytes \(a test\)/,
    );
  });
});

describe('--trace', () => {
  test('one line per packet with its direction; =hex adds the bytes', async () => {
    const lines: string[] = [];
    const trace = await traceWriter({ trace: 'hex' }, 5, (l) => lines.push(l));
    trace?.('out', { type: 'PINGREQ' }, Buffer.from([0xc0, 0x00]));
    trace?.('in', { type: 'PINGRESP' }, Buffer.from([0xd0, 0x00]));
    const text = lines.join('');
    expect(text).toMatch(/^-> .*PINGREQ.*\n {3}c0 00\n<- .*PINGRESP.*\n {3}d0 00\n$/);
    expect(await traceWriter({}, 5)).toBeUndefined();
    expect(await usageError(traceWriter({ trace: 'loud' }, 5))).toMatch(/--trace: 'loud'/);
    expect((await resolve(['--trace'])).trace).toBeTypeOf('function');
  });
});
