/** mq broker's --bridge flags: grouped per --bridge in command-line order, resolved, checked. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addBridgeOptions, resolveBridges } from '../../src/cli/bridge-options.js';
import { newCommand } from '../../src/cli/command.js';
import { UsageError } from '../../src/cli/errors.js';

/** Parses `args` as mq broker would (only the bridge flags) and resolves them. */
async function bridges(args: string[], env: NodeJS.ProcessEnv = {}) {
  const cmd = newCommand('broker').exitOverride();
  const collected = addBridgeOptions(cmd);
  cmd.action(() => {});
  await cmd.parseAsync(args, { from: 'user' });
  return resolveBridges(collected(), env);
}

describe('--bridge flags', () => {
  it('each --bridge takes the --bridge-* flags after it', async () => {
    const [a, b] = await bridges([
      '--bridge',
      'mqtt://alice:s3cret@prod.example.com',
      '--bridge-topic',
      'sensors/# in 1',
      '--bridge-topic',
      'cmd/# out 2 "" site1/',
      '--bridge',
      'ws://edge:8080/mqtt',
      '--bridge-topic',
      '# both 0',
      '--bridge-protocol-version',
      '3.1.1',
      '--bridge-client-id',
      'edge-bridge',
      '--bridge-clean',
    ]);
    expect(a?.topics.map((t) => (typeof t === 'string' ? t : t.spec))).toEqual([
      'sensors/# in 1',
      'cmd/# out 2 "" site1/',
    ]);
    expect(a?.remote).toMatchObject({
      transport: 'mqtt',
      host: 'prod.example.com',
      port: 1883,
      version: 5,
      clientId: `mq-bridge.${hostname()}`,
      clean: false,
      sessionExpiry: 3600,
      username: 'alice',
      password: Buffer.from('s3cret'),
    });
    expect(b?.remote).toMatchObject({
      transport: 'ws',
      host: 'edge',
      port: 8080,
      path: '/mqtt',
      version: 4,
      clientId: 'edge-bridge',
      clean: true,
      bridge: true,
    });
    expect(b?.remote.sessionExpiry).toBeUndefined();
  });

  it('a second bridge gets its own default client id; MQ_BRIDGE_PASSWORD when a user name is given', async () => {
    const [a, b] = await bridges(
      [
        '--bridge',
        'mqtt://h1',
        '--bridge-topic',
        'a',
        '--bridge',
        'mqtt://h2',
        '--bridge-topic',
        'b',
        '--bridge-username',
        'u',
      ],
      { MQ_BRIDGE_PASSWORD: 'from-env' },
    );
    expect(a?.remote.clientId).toBe(`mq-bridge.${hostname()}`);
    expect(a?.remote.password).toBeUndefined();
    expect(b?.remote.clientId).toBe(`mq-bridge-2.${hostname()}`);
    expect(b?.remote.password).toEqual(Buffer.from('from-env'));
  });

  it('3.1.1 carries the bridge flag unless --no-bridge-try-private', async () => {
    const [a, b] = await bridges([
      '--bridge',
      'mqtt://h1',
      '--bridge-topic',
      'a',
      '--bridge-protocol-version',
      '311',
      '--bridge',
      'mqtt://h2',
      '--bridge-topic',
      'a',
      '--bridge-protocol-version',
      'mqttv311',
      '--no-bridge-try-private',
    ]);
    expect(a?.remote.bridge).toBe(true);
    expect(b?.remote.bridge).toBeUndefined();
    expect(b?.remote.version).toBe(4);
  });

  it('TLS flags turn mqtt:// into mqtts:// (port 8883) and read the files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mq-bridge-flags-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), 'CA');
      const [a] = await bridges([
        '--bridge',
        'mqtt://secure.example.com',
        '--bridge-topic',
        'a',
        '--bridge-cafile',
        join(dir, 'ca.pem'),
        '--bridge-servername',
        'broker.example.com',
        '--bridge-session-expiry',
        'never',
        '--bridge-reconnect',
        '0.5..5',
      ]);
      expect(a?.remote).toMatchObject({ transport: 'mqtts', port: 8883, sessionExpiry: 0xffffffff });
      expect(a?.remote.tls).toMatchObject({ ca: Buffer.from('CA'), servername: 'broker.example.com' });
      expect(a?.reconnect).toEqual({ minMs: 500, maxMs: 5000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [['--bridge-topic', 'a', '--bridge', 'mqtt://h'], /--bridge-topic before --bridge/],
    [['--bridge', 'mqtt://h'], /--bridge mqtt:\/\/h: no --bridge-topic/],
    [
      ['--bridge', 'mqtt://h', '--bridge-topic', 'a/# nowhere'],
      /--bridge-topic 'a\/# nowhere': direction 'nowhere'/,
    ],
    [['--bridge', 'mqtt://h/a/b', '--bridge-topic', 'a'], /names a topic/],
    [['--bridge', 'gopher://h', '--bridge-topic', 'a'], /unknown scheme/],
    [
      ['--bridge', 'mqtt://h', '--bridge-topic', 'a', '--bridge-protocol-version', '4.2'],
      /--bridge-protocol-version: unknown MQTT version/,
    ],
    [
      [
        '--bridge',
        'mqtt://h',
        '--bridge-topic',
        'a',
        '--bridge-protocol-version',
        '3.1.1',
        '--bridge-session-expiry',
        '60',
      ],
      /needs --bridge-protocol-version 5/,
    ],
    [
      ['--bridge', 'mqtt://h', '--bridge-topic', 'a', '--bridge-cafile', '/nonexistent/ca.pem'],
      /--bridge-cafile: cannot read/,
    ],
    [
      ['--bridge', 'mqtt://h', '--bridge-topic', 'a', '--bridge-cert', 'c.pem'],
      /--bridge-cert needs --bridge-key/,
    ],
    [
      [
        '--bridge',
        'mqtt://h',
        '--bridge-topic',
        'a',
        '--bridge-protocol-version',
        '3.1',
        '--bridge-client-id',
        'x'.repeat(24),
      ],
      /23 characters/,
    ],
  ])('%j: %s', async (args, message) => {
    const attempt = bridges(args);
    await expect(attempt).rejects.toThrow(UsageError);
    await expect(bridges(args)).rejects.toThrow(message);
  });
});
