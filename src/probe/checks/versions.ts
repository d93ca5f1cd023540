/**
 * Versions: does the broker accept a CONNECT in MQTT 3.1 (protocol name MQIsdp, level 3), 3.1.1
 * (MQTT, 4) and 5.0 (MQTT, 5)? Raw connections, so each version's CONNECT is exactly what that
 * version's clients send.
 */
import type { ProtocolVersion } from '../../protocol/index.js';
import type { Check } from '../check.js';
import { SourceClosed } from '../inbox.js';
import { type CheckScope, fail, pass, unsupported } from '../scope.js';
import { code } from '../text.js';
import type { Outcome } from '../types.js';

const VERSIONS: readonly { id: string; title: string; version: ProtocolVersion }[] = [
  { id: 'mqtt31', title: 'MQTT 3.1 (MQIsdp)', version: 3 },
  { id: 'mqtt311', title: 'MQTT 3.1.1', version: 4 },
  { id: 'mqtt5', title: 'MQTT 5.0', version: 5 },
];

export const versionChecks: Check[] = VERSIONS.map(({ id, title, version }) => ({
  section: 'versions',
  id,
  title,
  run: (scope) => tryVersion(scope, version),
}));

/** How a CONNECT in `version` with `keepalive` was answered. */
async function attempt(
  scope: CheckScope,
  version: ProtocolVersion,
  keepalive: number,
): Promise<{ rc: number; v4Answer?: boolean } | { closed: string }> {
  const conn = await scope.raw(version, { autoAck: true });
  try {
    const connack = await scope.wait(
      conn.handshake(scope.connectPacket(version, { keepalive })),
      `the CONNACK to an MQTT ${label(version)} CONNECT`,
    );
    if (connack.reasonCode === 0) await scope.wait(conn.end(), 'the connection to close');
    else conn.destroy();
    return conn.v4Answer !== undefined
      ? { rc: connack.reasonCode, v4Answer: true }
      : { rc: connack.reasonCode };
  } catch (err) {
    if (err instanceof SourceClosed) return { closed: scope.describeClose(await conn.closed) };
    throw err;
  }
}

async function tryVersion(scope: CheckScope, version: ProtocolVersion): Promise<Outcome> {
  const keepalive = scope.ctx.client.keepalive;
  const first = await attempt(scope, version, keepalive);
  if ('closed' in first) return unsupported(`no CONNACK: ${first.closed}`);
  if (first.rc === 0) return pass('accepted');
  if (first.v4Answer === true) {
    return unsupported(`answered in MQTT 3.1.1: ${code(first.rc, 'CONNACK', 4)}`);
  }
  const refusal = code(first.rc, 'CONNACK', version === 5 ? 5 : 4);
  if ((version === 5 && first.rc === 0x84) || (version !== 5 && first.rc === 1)) {
    return unsupported(`refused: ${refusal}`);
  }
  // 3.1/3.1.1 cannot be told another keepalive: brokers refuse one above their maximum with
  // "identifier rejected" (Mosquitto's max_keepalive, mq broker --max-keepalive). Try a short one.
  const shorter = Math.min(scope.ctx.connack.properties?.serverKeepAlive ?? 10, 10);
  if (version !== 5 && first.rc === 2 && keepalive > shorter) {
    const second = await attempt(scope, version, shorter);
    if (!('closed' in second) && second.rc === 0) {
      return pass(
        `accepted with keepalive ${shorter} s; keepalive ${keepalive} s refused (${refusal}: above the broker's maximum keepalive)`,
      );
    }
  }
  return fail(`refused: ${refusal}`);
}

function label(version: ProtocolVersion): string {
  return version === 3 ? '3.1' : version === 4 ? '3.1.1' : '5.0';
}
