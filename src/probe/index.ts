/**
 * mq's broker probe: what a broker supports and whether it behaves as it announces, measured.
 *
 *   const report = await runProbe({ client, timeoutMs: 5000, maxProbe: 1 << 20 });
 *   for (const r of report.results) console.log(r.section, r.id, r.status, r.value, r.detail);
 *
 * The first connection's CONNACK is what the broker announces; then every check runs on its own
 * connections, concurrently, each within its time limit, under a topic prefix no one else uses, and
 * cleans up what it leaves (retained messages, sessions). A refused first CONNECT rejects with the
 * client's ConnectError (the reason by name); anything a check meets ends up in its result.
 */
import { randomBytes } from 'node:crypto';
import { ConnectError, connackRefusal, describeTarget } from '../client/index.js';
import type { ConnackPacket, ConnectPacket, ProtocolVersion } from '../protocol/index.js';
import type { Check } from './check.js';
import { announceChecks, presentChecks } from './checks/announces.js';
import { deliveryChecks } from './checks/delivery.js';
import { identityChecks } from './checks/identity.js';
import { limitChecks } from './checks/limits.js';
import { routingChecks } from './checks/routing.js';
import { sessionChecks } from './checks/sessions.js';
import { versionChecks } from './checks/versions.js';
import { SourceClosed } from './inbox.js';
import { RawConnection } from './raw.js';
import { runChecks } from './runner.js';
import type { ProbeContext } from './scope.js';
import type { ProbeOptions, ProbeReport } from './types.js';

export { formatReport, reportJson, summarize } from './report.js';
export * from './types.js';

/** Every check for this broker, in report order. */
function allChecks(ctx: ProbeContext): Check[] {
  return [
    ...versionChecks,
    ...announceChecks,
    ...presentChecks(ctx.connack.properties),
    ...deliveryChecks,
    ...routingChecks,
    ...sessionChecks,
    ...limitChecks,
    ...identityChecks(ctx),
  ];
}

export async function runProbe(options: ProbeOptions): Promise<ProbeReport> {
  const started = performance.now();
  const prefix = options.prefix ?? `mq-probe/${randomBytes(4).toString('hex')}`;
  // Short enough for MQTT 3.1's 23 characters with a counter.
  const idPrefix = options.idPrefix ?? `mqp${randomBytes(4).toString('hex')}`;
  let counter = 0;
  const newClientId = () => `${idPrefix}-${(counter++).toString(36)}`;
  const first = await firstConnect(options, newClientId());
  const ctx: ProbeContext = {
    client: { ...options.client, version: first.version },
    version: first.version,
    connack: first.connack,
    prefix,
    timeoutMs: options.timeoutMs,
    maxProbe: options.maxProbe,
    newClientId,
    shared: new Map(),
  };
  if (options.trace !== undefined) ctx.trace = options.trace;
  const wanted = new Set(options.sections ?? allChecks(ctx).map((c) => c.section));
  const checks = allChecks(ctx).filter((c) => wanted.has(c.section));
  const results = await runChecks(checks, ctx, {
    concurrency: options.concurrency ?? 8,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    ...(options.onResult !== undefined ? { onResult: options.onResult } : {}),
  });
  const report: ProbeReport = {
    target: describeTarget(options.client),
    transport: options.client.transport,
    version: first.version,
    prefix,
    connack: first.connack,
    results,
    durationMs: Math.round(performance.now() - started),
    interrupted: options.signal?.aborted === true,
  };
  if (first.fallback !== undefined) report.fallback = first.fallback;
  return report;
}

/**
 * The first CONNECT, in -V's version (default 5, with Request Response Information): its CONNACK
 * is what the broker announces. Without -V, a broker that refuses MQTT 5 is probed in 3.1.1.
 */
async function firstConnect(
  options: ProbeOptions,
  clientId: string,
): Promise<{ connack: ConnackPacket; version: ProtocolVersion; fallback?: string }> {
  const version = options.version ?? 5;
  const answer = await connectOnce(options, version, clientId);
  if (answer.connack !== undefined && answer.connack.reasonCode === 0)
    return { connack: answer.connack, version };
  const where = describeTarget(options.client);
  const refusedV5 =
    version === 5 &&
    options.version === undefined &&
    (answer.v4Answer || answer.connack === undefined || answer.connack.reasonCode === 0x84);
  if (refusedV5) {
    const retry = await connectOnce(options, 4, clientId);
    if (retry.connack?.reasonCode === 0) {
      const why =
        answer.connack === undefined
          ? 'closed the connection'
          : answer.v4Answer
            ? 'answered in 3.1.1'
            : 'refused it (0x84)';
      return { connack: retry.connack, version: 4, fallback: `the broker ${why} to an MQTT 5 CONNECT` };
    }
  }
  if (answer.connack === undefined) {
    throw new ConnectError(`${where} closed the connection without answering CONNECT (${answer.closed})`);
  }
  const rc = answer.connack.reasonCode;
  throw connackRefusal(rc, answer.v4Answer ? 4 : version, where, answer.connack.properties?.reasonString);
}

async function connectOnce(
  options: ProbeOptions,
  version: ProtocolVersion,
  clientId: string,
): Promise<{ connack?: ConnackPacket; v4Answer: boolean; closed?: string }> {
  const o = options.client;
  const timeoutMs = o.connectTimeoutMs ?? 10_000;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const onStop = () => controller.abort();
  options.signal?.addEventListener('abort', onStop, { once: true });
  const signal = controller.signal;
  const trace = options.trace;
  let conn: RawConnection | undefined;
  try {
    conn = await RawConnection.open(o, version, signal, {
      autoAck: true,
      ...(trace !== undefined ? { trace: (d, p, raw) => trace('connect', version, d, p, raw) } : {}),
    });
    const packet: ConnectPacket = {
      type: 'CONNECT',
      protocolVersion: version,
      clean: true,
      keepalive: o.keepalive,
      clientId,
    };
    if (o.username !== undefined) packet.username = o.username;
    if (o.password !== undefined) packet.password = o.password;
    if (version === 5) packet.properties = { ...o.connectProperties, requestResponseInformation: 1 };
    const connack = await conn.handshake(packet);
    if (connack.reasonCode === 0) await conn.end();
    return { connack, v4Answer: conn.v4Answer !== undefined };
  } catch (err) {
    if (err instanceof SourceClosed) return { v4Answer: false, closed: err.message };
    if (options.signal?.aborted) throw new ConnectError('interrupted while connecting');
    if (signal.aborted)
      throw new ConnectError(`no CONNACK within ${timeoutMs / 1000} s from ${describeTarget(o)}`);
    throw err;
  } finally {
    conn?.destroy();
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onStop);
  }
}
