/** mosquitto.conf as `mq broker -c` reads it: directives, Mosquitto's scoping and defaults, errors with file:line. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseMosquittoConf } from '../../src/cli/mosquitto-conf.js';
import { type ConfFlags, confFlags } from '../../src/cli/mosquitto-conf-flags.js';

/** The flags and warnings `lines` stand for (nothing given on the command line unless `cli`). */
function read(lines: string[], cli: (keyof ConfFlags)[] = []) {
  return confFlags(parseMosquittoConf(lines.join('\n'), 'my.conf'), (f) => cli.includes(f));
}

function error(lines: string[], cli: (keyof ConfFlags)[] = []): string {
  try {
    read(lines, cli);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('no error');
}

describe('mosquitto.conf: directives', () => {
  test('every supported directive becomes the flag it stands for', () => {
    const { flags, warnings } = read([
      '# a comment',
      '',
      'per_listener_settings false',
      'allow_anonymous true',
      'password_file /etc/mosquitto/passwd',
      'acl_file /etc/mosquitto/acl',
      'persistence true',
      'persistence_location /var/lib/mq/',
      'persistence_file broker.db',
      'max_packet_size 1000',
      'max_inflight_messages 64',
      'max_queued_messages 500',
      'max_keepalive 120',
      'retain_available false',
      'sys_interval 0',
      'listener 1883 127.0.0.1',
      'max_connections 50',
      'max_qos 1',
      'max_topic_alias 4',
      'listener 8080 127.0.0.1',
      'protocol websockets',
      'max_connections 50',
      'max_qos 1',
      'max_topic_alias 4',
      'listener 8883 127.0.0.1',
      'certfile /tls/server.pem',
      'keyfile /tls/server.key',
      'cafile /tls/ca.pem',
      'require_certificate true',
      'use_identity_as_username true',
      'max_connections 50',
      'max_qos 1',
      'max_topic_alias 4',
    ]);
    expect(warnings).toEqual([]);
    expect(flags).toEqual({
      host: '127.0.0.1',
      port: '1883',
      wsPort: '8080',
      tlsPort: '8883',
      cert: '/tls/server.pem',
      key: '/tls/server.key',
      cafile: '/tls/ca.pem',
      requireCertificate: true,
      useIdentityAsUsername: true,
      maxConnections: '50',
      maxQos: '1',
      topicAliasMax: '4',
      allowAnonymous: 'true',
      passwd: '/etc/mosquitto/passwd',
      acl: '/etc/mosquitto/acl',
      persist: '/var/lib/mq/broker.db',
      maxPacketSize: '1000',
      maxInflight: '64',
      maxQueued: '500',
      maxKeepalive: '120',
      retain: false,
      sysInterval: '0',
    } satisfies ConfFlags);
  });

  test("certfile after a websockets listener makes it wss; the TLS settings are that listener's", () => {
    const { flags } = read([
      'listener 9001 127.0.0.1',
      'protocol websockets',
      'certfile c.pem',
      'keyfile k.pem',
      'listener 1883 127.0.0.1',
    ]);
    expect(flags).toMatchObject({ wssPort: '9001', port: '1883', cert: 'c.pem', key: 'k.pem' });
    expect(flags.wsPort).toBeUndefined();
    expect(flags.tlsPort).toBeUndefined();
  });

  test('listeners without a plain mqtt one: no TCP listener (port null)', () => {
    expect(read(['listener 8883 ::1', 'certfile c', 'keyfile k']).flags).toMatchObject({
      port: null,
      tlsPort: '8883',
      host: '::1',
    });
  });

  test('port and bind_address configure the default listener; listener without an address binds every interface', () => {
    expect(read(['port 1999', 'bind_address 127.0.0.2']).flags).toMatchObject({
      port: '1999',
      host: '127.0.0.2',
    });
    expect(read(['listener 1883']).flags).toMatchObject({ port: '1883', host: '0.0.0.0' });
  });

  test("an interface name as the address binds the interface's address (Mosquitto's websockets 'lo')", () => {
    const { flags } = read(['listener 1883 127.0.0.1', 'listener 9001 lo', 'protocol websockets']);
    expect(flags).toMatchObject({ host: '127.0.0.1', port: '1883', wsPort: '9001' });
  });

  test('no listener: local-only mode keeps loopback and allows anonymous clients, as Mosquitto 2 does', () => {
    const { flags, warnings } = read(['password_file p', 'allow_anonymous false']);
    expect(flags.host).toBeUndefined();
    expect(flags.port).toBeUndefined();
    expect(flags.allowAnonymous).toBe('true');
    // Without a password_file in the file, mq's own rule stays (users given by flags refuse anonymous clients).
    expect(read(['sys_interval 5']).flags.allowAnonymous).toBeUndefined();
    expect(warnings).toEqual([
      "my.conf:2: allow_anonymous false has no effect without a listener (Mosquitto's local-only mode allows anonymous clients; so does mq broker)",
    ]);
  });

  test('with a listener, allow_anonymous defaults to false', () => {
    expect(read(['listener 1883 127.0.0.1']).flags.allowAnonymous).toBe('false');
    expect(read(['listener 1883 127.0.0.1', 'allow_anonymous true']).flags.allowAnonymous).toBe('true');
  });

  test('Mosquitto\'s "no maximum" values: max_inflight_messages 0, max_queued_messages 0, max_keepalive 0, max_connections -1', () => {
    const { flags } = read([
      'listener 1883 127.0.0.1',
      'max_connections -1',
      'max_inflight_messages 0',
      'max_queued_messages 0',
      'max_keepalive 0',
      'max_packet_size 500000000',
    ]);
    expect(flags.maxInflight).toBe('65535');
    expect(flags.maxQueued).toBe('100000000');
    expect(flags.maxKeepalive).toBeUndefined();
    expect(flags.maxConnections).toBeUndefined();
    expect(flags.maxPacketSize).toBeUndefined();
  });

  test('persistence without a location or file: mosquitto.db in the current directory', () => {
    expect(read(['persistence true']).flags.persist).toBe('mosquitto.db');
    expect(read(['persistence false', 'persistence_file x.db']).flags.persist).toBeUndefined();
  });

  test("Mosquitto's own database is refused (mq would overwrite it with its own format)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'mq-conf-'));
    try {
      writeFileSync(join(dir, 'mosquitto.db'), Buffer.from('00b5006d6f7371756974746f206462000000', 'hex'));
      expect(error(['persistence true', `persistence_location ${dir}`])).toMatch(
        /^my\.conf:1: .*mosquitto\.db is Mosquitto's own database/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('comments after values, tabs between words and CRLF line ends are read', () => {
    const { flags } = confFlags(
      parseMosquittoConf('listener\t1883 127.0.0.1  # mqtt\r\nallow_anonymous true # yes\r\n', 'x'),
      () => false,
    );
    expect(flags).toMatchObject({ port: '1883', host: '127.0.0.1', allowAnonymous: 'true' });
  });
});

describe('mosquitto.conf: warnings', () => {
  test('an unimplemented directive: one warning line naming it and its line (repeats listed)', () => {
    const { warnings } = read([
      'listener 1883 127.0.0.1',
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      'include_dir /etc/mosquitto/conf.d',
      'connection remote',
      'address example.com:1883',
      'topic # both 0',
    ]);
    expect(warnings).toEqual([
      'my.conf:2: log_dest is not implemented by mq broker: ignored',
      'my.conf:3: log_type is not implemented by mq broker: ignored (also on line 4)',
      'my.conf:5: include_dir is not implemented by mq broker: ignored',
      'my.conf:6: bridges (connection, address, topic...) are not implemented by mq broker: ignored (also on lines 7, 8)',
    ]);
  });

  test('a listener setting given for one of several listeners applies to all in mq: said once', () => {
    const { flags, warnings } = read([
      'listener 1883 127.0.0.1',
      'max_qos 1',
      'listener 8080 127.0.0.1',
      'protocol websockets',
    ]);
    expect(flags.maxQos).toBe('1');
    expect(warnings).toEqual([
      'my.conf:2: max_qos applies to every listener in mq broker, not just this listener',
    ]);
  });
});

describe('mosquitto.conf: errors name file:line', () => {
  test.each([
    [
      ['allow_anonymus true'],
      "my.conf:1: unknown directive 'allow_anonymus' (not a Mosquitto option either)",
    ],
    [
      ['listener 1883', 'max_packet_size big'],
      "my.conf:2: max_packet_size: 'big' is not a whole number from 20 to 2147483647",
    ],
    [['max_packet_size 10'], "my.conf:1: max_packet_size: '10' is not a whole number from 20 to 2147483647"],
    [['max_qos 3'], "my.conf:1: max_qos: '3' is not a whole number from 0 to 2"],
    [['allow_anonymous yes'], "my.conf:1: allow_anonymous: 'yes' is not true or false"],
    [['allow_anonymous'], 'my.conf:1: allow_anonymous needs true or false'],
    [['allow_anonymous true false'], "my.conf:1: allow_anonymous: unexpected 'false' after the value"],
    [['password_file'], 'my.conf:1: password_file needs a value'],
    [['password_file a', 'password_file b'], 'my.conf:2: password_file given twice (first on line 1)'],
    [['listener'], 'my.conf:1: listener needs a port: listener PORT [ADDRESS]'],
    [['listener 70000'], "my.conf:1: listener: '70000' is not a port (0-65535)"],
    [
      ['listener 0 /run/mq.sock'],
      'my.conf:1: listener 0 PATH (a unix socket) is not supported by mq broker: give a TCP port',
    ],
    [['listener 1883', 'protocol mqttsn'], "my.conf:2: protocol: 'mqttsn' is not mqtt or websockets"],
    [
      ['listener 1883', 'crlfile revoked.pem'],
      'my.conf:2: crlfile: certificate revocation lists are not supported by mq broker',
    ],
    [
      ['auth_plugin /usr/lib/x.so'],
      'my.conf:1: auth_plugin: authentication plugins are not supported by mq broker',
    ],
    [
      ['listener 8883', 'tls_version tlsv1.3'],
      'my.conf:2: tls_version tlsv1.3 is not supported by mq broker (it accepts TLS 1.2 and 1.3)',
    ],
  ])('%j', (lines, message) => {
    expect(error(lines)).toBe(message);
  });

  test('two listeners of one kind: mq has one of each', () => {
    expect(error(['listener 1883 127.0.0.1', 'listener 1884 127.0.0.1'])).toBe(
      'my.conf:2: a second mqtt listener (the first is on line 1): mq broker opens one listener of each kind (mqtt, websockets, mqtt over TLS, websockets over TLS)',
    );
  });

  test('two bind addresses: refused unless --host settles it', () => {
    const lines = ['listener 1883 127.0.0.1', 'listener 9001', 'protocol websockets'];
    expect(error(lines)).toBe(
      'my.conf:2: this listener binds every interface, the one on line 1 127.0.0.1: mq broker binds every listener to one address (give both the same, or --host)',
    );
    expect(read(lines, ['host']).flags.wsPort).toBe('9001');
  });

  test('TLS settings: certfile needs keyfile; cafile only on a TLS listener; require_certificate needs cafile; identity needs require_certificate', () => {
    expect(error(['listener 8883', 'certfile c'])).toBe(
      'my.conf:2: certfile and keyfile go together (this listener has one of them)',
    );
    expect(error(['listener 1883', 'cafile ca'])).toBe(
      'my.conf:2: this listener has no certfile and keyfile: it is not a TLS listener',
    );
    expect(error(['listener 8883', 'certfile c', 'keyfile k', 'require_certificate true'])).toBe(
      'my.conf:4: require_certificate needs a cafile on this listener (the CA of the client certificates)',
    );
    expect(error(['listener 8883', 'certfile c', 'keyfile k', 'use_identity_as_username true'])).toBe(
      'my.conf:4: use_identity_as_username needs require_certificate true on this listener',
    );
  });

  test('TLS listeners with different certificates', () => {
    expect(
      error([
        'listener 8883 127.0.0.1',
        'certfile a.pem',
        'keyfile k',
        'listener 8884 127.0.0.1',
        'protocol websockets',
        'certfile b.pem',
        'keyfile k',
      ]),
    ).toBe(
      'my.conf:6: the TLS listeners on lines 1 and 4 differ in certfile: mq broker gives both the same TLS settings',
    );
  });

  test('per_listener_settings: the same settings everywhere are fine, different ones are refused', () => {
    const same = read([
      'per_listener_settings true',
      'listener 1883 127.0.0.1',
      'password_file p',
      'listener 8080 127.0.0.1',
      'protocol websockets',
      'password_file p',
    ]);
    expect(same.flags).toMatchObject({ passwd: 'p', allowAnonymous: 'false' });
    expect(
      error([
        'per_listener_settings true',
        'listener 1883 127.0.0.1',
        'allow_anonymous true',
        'listener 8883 127.0.0.1',
        'certfile c',
        'keyfile k',
      ]),
    ).toBe(
      'my.conf:4: per_listener_settings: the listeners on lines 2 and 4 have different allow_anonymous: mq broker applies one to every listener',
    );
    expect(error(['password_file p', 'per_listener_settings true'])).toBe(
      'my.conf:2: per_listener_settings must come before allow_anonymous, password_file and acl_file',
    );
  });

  test('per-listener limits with different values', () => {
    expect(
      error([
        'listener 1883 127.0.0.1',
        'max_connections 5',
        'listener 8080 127.0.0.1',
        'protocol websockets',
        'max_connections 6',
      ]),
    ).toBe(
      'my.conf:5: max_connections 6 differs from 5 on line 2: mq broker has one max_connections for all its listeners',
    );
  });
});
