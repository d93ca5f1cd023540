/**
 * inspectPacket: the decoding of one observed packet (proxy, broker --trace/--record). Secrets (CONNECT password,
 * Authentication Data) never survive into the packet or the bytes it returns, the forwarded bytes
 * are never changed, and malformed input gives violations with offsets, never an exception.
 */
import { describe, expect, it } from 'vitest';
import { type ConnectPacket, decode, encode } from '../../src/protocol/index.js';
import { inspectPacket } from '../../src/protocol/inspect.js';

const SECRET = 'hunter2-secret';
const AUTH = 'auth-data-secret';

const connect: ConnectPacket = {
  type: 'CONNECT',
  protocolVersion: 5,
  clientId: 'insp',
  clean: true,
  keepalive: 10,
  username: 'alice',
  password: Buffer.from(SECRET),
  properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from(AUTH) },
};

const hasSecret = (b: Buffer) => b.includes(SECRET) || b.includes(AUTH);

describe('inspectPacket', () => {
  it('masks the password and authentication data in the packet and in a copy of the bytes', () => {
    const raw = encode(connect, 5);
    const before = Buffer.from(raw);
    const r = inspectPacket(raw, 4);
    expect(r.violations).toEqual([]);
    expect(raw.equals(before)).toBe(true); // the bytes being forwarded are untouched
    expect(hasSecret(r.bytes)).toBe(false);
    const p = r.packet as ConnectPacket;
    expect(p.password?.toString()).toBe('*'.repeat(SECRET.length));
    expect(p.properties?.authenticationData?.toString()).toBe('*'.repeat(AUTH.length));
    // The masked bytes still decode, to the same packet but the secrets.
    const again = decode(r.bytes, 5) as ConnectPacket;
    expect(again.username).toBe('alice');
    expect(again.password?.toString()).toBe('*'.repeat(SECRET.length));
  });

  it('masks AUTH and CONNACK authentication data', () => {
    for (const packet of [
      {
        type: 'AUTH',
        reasonCode: 0x18,
        properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from(AUTH) },
      },
      {
        type: 'CONNACK',
        sessionPresent: false,
        reasonCode: 0,
        properties: { authenticationData: Buffer.from(AUTH) },
      },
    ] as const) {
      const r = inspectPacket(encode(packet, 5), 5);
      expect(r.violations).toEqual([]);
      expect(hasSecret(r.bytes)).toBe(false);
    }
  });

  it('a CONNECT whose structure breaks before its end: everything from the break on is masked', () => {
    const raw = encode(connect, 5);
    // Announce a password 200 bytes longer than what follows: a structural error at its length.
    const at = raw.indexOf(Buffer.from(SECRET)) - 2;
    const broken = Buffer.from(raw);
    broken.writeUInt16BE(SECRET.length + 200, at);
    const r = inspectPacket(broken, 5);
    expect(r.packet).toBeUndefined();
    expect(r.violations.length).toBeGreaterThan(0);
    expect(r.violations.at(-1)!.offset).toBe(at);
    expect(hasSecret(r.bytes)).toBe(false);
  });

  it('a wildcard in a PUBLISH topic: decoded, with the violation, offset and rule', () => {
    const raw = Buffer.from([0x30, 0x06, 0x00, 0x03, 0x61, 0x2f, 0x2b, 0x78]); // topic "a/+", payload "x"
    const r = inspectPacket(raw, 4);
    expect(r.packet?.type).toBe('PUBLISH');
    expect(r.violations[0]).toMatchObject({ offset: 6, rule: 'MQTT-3.3.2-2' });
    expect(r.bytes).toBe(raw);
  });

  it('never throws on garbage', () => {
    for (const hex of ['00', '0000', 'f0', 'f001', '2002', '3001', '82020001', '10ffffff7f', 'e0']) {
      const r = inspectPacket(Buffer.from(hex, 'hex'), 5);
      expect(r.violations.length).toBeGreaterThan(0);
    }
  });
});
