/** Connection failures in plain words: what failed, and which flag or file fixes it. */
import { describe, expect, test } from 'vitest';
import { connackRefusal, explainConnectError } from '../../src/client/index.js';

const sysErr = (code: string, message = code, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), { code }, extra);
const ctx = { target: 'broker.example:8883', host: 'broker.example' };

describe('explainConnectError', () => {
  test.each([
    [
      'ECONNREFUSED',
      'could not connect to broker.example:8883: connection refused (is a broker running there?)',
    ],
    ['ENOTFOUND', 'could not connect to broker.example:8883: unknown host broker.example'],
    ['EHOSTUNREACH', 'could not connect to broker.example:8883: host unreachable'],
  ])('%s', (code, message) => {
    const err = explainConnectError(sysErr(code), ctx);
    expect(err.message).toBe(message);
    expect(err.code).toBe(code);
  });

  test('unknown CA, with and without --cafile', () => {
    expect(explainConnectError(sysErr('SELF_SIGNED_CERT_IN_CHAIN'), { ...ctx, tls: {} }).message).toBe(
      "could not connect to broker.example:8883: TLS: the server's certificate is not signed by a CA you trust (SELF_SIGNED_CERT_IN_CHAIN): pass --cafile FILE (or --insecure to skip the check)",
    );
    expect(
      explainConnectError(sysErr('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), { ...ctx, tls: { caFile: 'ca.pem' } })
        .message,
    ).toMatch(/it is not signed by the CA in ca\.pem: pass the CA that signed it with --cafile FILE/);
  });

  test('name mismatch lists the names the certificate is valid for', () => {
    const err = sysErr('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames", {
      cert: { subjectaltname: 'DNS:mqtt.example, IP Address:10.0.0.1' },
    });
    expect(explainConnectError(err, ctx).message).toBe(
      "could not connect to broker.example:8883: TLS: the server's certificate is valid for mqtt.example, 10.0.0.1, not broker.example: connect by that name or pass --servername NAME (or --insecure to skip the check)",
    );
  });

  test('expired certificate', () => {
    expect(explainConnectError(sysErr('CERT_HAS_EXPIRED'), ctx).message).toMatch(
      /the server's certificate has expired \(CERT_HAS_EXPIRED\): renew it on the broker, or pass --insecure/,
    );
  });

  test('a reset during the TLS handshake means a plain port', () => {
    expect(explainConnectError(sysErr('ECONNRESET'), { ...ctx, secure: true }).message).toMatch(
      /TLS handshake failed: the server did not answer in TLS \(is broker\.example:8883 a TLS port\?/,
    );
  });
});

describe('connackRefusal', () => {
  test('names the reason and says what to try', () => {
    expect(connackRefusal(0x84, 5, 'h:1883').message).toBe(
      'connection refused by h:1883: 0x84 Unsupported Protocol Version: the broker does not speak MQTT 5; try -V 3.1.1',
    );
    expect(connackRefusal(1, 4, 'h:1883').message).toMatch(
      /0x01 unacceptable protocol version: .*try -V 3\.1/,
    );
    expect(connackRefusal(5, 4, 'h:1883').message).toBe('connection refused by h:1883: 0x05 not authorized');
    expect(connackRefusal(0x86, 5, 'h:1883').reasonCode).toBe(0x86);
  });
});
