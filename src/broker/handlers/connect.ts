/**
 * CONNECT: the admission checks as a list of steps (the first refusal answers with a CONNACK and
 * closes), the user name and password checked (scrypt ones off the event loop: the connection holds
 * what the client sends meanwhile), then the connection takes the client's limits, the session is
 * opened, resumed or taken over [MQTT-3.1.4-3], the CONNACK goes out and whatever the session held
 * is sent again.
 */
import { randomBytes } from 'node:crypto';
import {
  type ConnectPacket,
  decode,
  formatReasonCode,
  type Packet,
  type Properties,
  packetSize,
  ReasonCode,
  type Will,
} from '../../protocol/index.js';
import { quoteTopic } from '../../protocol/topic.js';
import type { AuthVerdict } from '../auth.js';
import { type Connection, ConnState } from '../connection.js';
import type { BrokerCore } from '../core.js';
import { publishRefusal } from '../may-publish.js';
import { responseInformation } from '../response-info.js';
import { dropUnreadable, pump, resend } from '../routing.js';
import { NEVER_EXPIRES, Session } from '../session.js';
import { endSession } from '../session-end.js';
import { beginAuthentication } from './auth.js';

/** What the admission steps settle about a CONNECT. */
interface Admission {
  clientId: string;
  /** The broker made the client id up (a v5 client is told it in the CONNACK). */
  assigned: boolean;
  /** Seconds, as granted. */
  keepalive: number;
  /** --max-keepalive changed the keepalive: the v5 CONNACK says so. */
  serverKeepAlive: number | undefined;
  /** Enhanced authentication succeeded: the CONNACK carries its method and last data [MQTT-4.12.0-5]. */
  auth: { method: string; data: Buffer } | undefined;
  /** Who the client is is settled without a password check (identity). */
  trusted: boolean;
}

/** Why a CONNECT is refused: a v5 reason code (3.1.1 clients get the nearest return code). */
export interface Refusal {
  code: number;
  why: string;
}

/** A step's answer when admission waits for more packets (an enhanced authentication exchange). */
const WAIT = 'wait';

/** One admission check: a refusal, WAIT, or undefined to go on to the next. */
type AdmissionStep = (
  core: BrokerCore,
  c: Connection,
  p: ConnectPacket,
  a: Admission,
) => Refusal | typeof WAIT | undefined;

/** --refuse-connect (fault injection) refuses everyone. */
const refuseConnectFault: AdmissionStep = (core) => {
  const code = core.opts.refuseConnect;
  return code === undefined ? undefined : { code, why: '--refuse-connect' };
};

/** --max-connections was reached, or the broker is shutting down, when the connection came. */
const connectionLimit: AdmissionStep = (core, c) => {
  if (!c.overLimit) return undefined;
  const why = core.closing ? 'shutting down' : `--max-connections ${core.opts.maxConnections} reached`;
  return { code: ReasonCode.ServerBusy, why };
};

/**
 * Enhanced authentication (v5 Authentication Method): SCRAM sends its challenge (AUTH 0x18) and
 * admission waits for the answer (handlers/auth.ts); another method is refused with 0x8C
 * [MQTT-4.12.0-1].
 */
const authenticationMethod: AdmissionStep = (core, c, p) => {
  const method = p.protocolVersion === 5 ? p.properties?.authenticationMethod : undefined;
  if (method === undefined) return undefined;
  return beginAuthentication(core, c, method, p.properties?.authenticationData, p.username) ?? WAIT;
};

/** An empty client id is assigned one, where the protocol level allows it. */
const clientIdentifier: AdmissionStep = (_core, _c, p, a) => {
  if (p.clientId !== '') return undefined;
  // [MQTT-3.1.3-8] 3.1.1: an empty id needs clean session; 3.1 requires an id.
  if (p.protocolVersion === 3 || (p.protocolVersion === 4 && !p.clean)) {
    return { code: ReasonCode.ClientIdentifierNotValid, why: 'empty client id without clean session' };
  }
  a.clientId = `mq-${randomBytes(8).toString('hex')}`;
  a.assigned = true;
  return undefined;
};

/**
 * Who the client is, when no password needs checking: the client certificate's CN on a listener
 * with --use-identity-as-username (the CONNECT's user name and password are then ignored, as
 * Mosquitto does); else the user enhanced authentication proved; else --allow-anonymous decides for
 * clients that give no user name. Otherwise the user name and password are checked next (--auth,
 * --passwd; handleConnect).
 */
const identity: AdmissionStep = (core, c, p, a) => {
  const certUser = c.transport.certUser;
  if (certUser !== undefined) {
    if (certUser === '') return { code: ReasonCode.NotAuthorized, why: 'the client certificate has no CN' };
    p.username = certUser;
    delete p.password;
    a.trusted = true;
    return undefined;
  }
  if (a.auth !== undefined) {
    a.trusted = true;
    return undefined;
  }
  const anonymous = core.opts.allowAnonymous;
  // Mosquitto's allow_anonymous (its refusal is Not authorized): with false and no users at all,
  // every client is refused, named or not.
  if (anonymous !== undefined && (p.username === undefined || (!anonymous && !core.auth.enabled))) {
    if (anonymous) {
      a.trusted = true;
      return undefined;
    }
    const why = p.username === undefined ? 'anonymous clients are not allowed' : 'no users are configured';
    return { code: ReasonCode.NotAuthorized, why: `${why} (allow anonymous: false)` };
  }
  return undefined;
};

/** A --bridge's local session is its own: no client may take it over. */
const bridgeSession: AdmissionStep = (core, _c, _p, a) => {
  if (core.sessions.get(a.clientId)?.conn?.listener !== 'bridge') return undefined;
  return { code: ReasonCode.ClientIdentifierNotValid, why: `client id '${a.clientId}' is a bridge's` };
};

/** --max-keepalive: keepalive 0 or above it becomes the maximum (v5 Server Keep Alive). */
const keepaliveLimit: AdmissionStep = (core, _c, p, a) => {
  const max = core.opts.maxKeepalive;
  if (max === undefined || (p.keepalive !== 0 && p.keepalive <= max)) return undefined;
  if (p.protocolVersion !== 5) {
    // Like Mosquitto: 3.1.1 cannot be told another keepalive, so it is refused.
    return {
      code: ReasonCode.ClientIdentifierNotValid,
      why: `keepalive ${p.keepalive} s above --max-keepalive ${max}`,
    };
  }
  a.keepalive = max;
  a.serverKeepAlive = max;
  return undefined;
};

/**
 * The will must be one the broker would accept as a PUBLISH from this client (may-publish.ts):
 * else the CONNACK says which rule it breaks (0x90 too many topic levels, 0x9B QoS, 0x9A retain,
 * 0x99 payload format, 0x87 $SYS / --deny-publish / --acl).
 */
const willAllowed: AdmissionStep = (core, _c, p, a) => {
  const will = p.will;
  if (will === undefined) return undefined;
  const refusal = publishRefusal(core, p.username, a.clientId, will);
  if (refusal === undefined) return undefined;
  return { code: refusal.code, why: `will to ${quoteTopic(will.topic)} ${refusal.why}` };
};

/**
 * The admission checks, in the order they run: those before the user name and password
 * (--auth, --passwd) are checked, and those after it (they depend on who the user is).
 */
const BEFORE_AUTH: readonly AdmissionStep[] = [
  refuseConnectFault,
  connectionLimit,
  authenticationMethod,
  clientIdentifier,
  identity,
];
const AFTER_AUTH: readonly AdmissionStep[] = [bridgeSession, keepaliveLimit, willAllowed];

/** `raw`: the CONNECT's bytes (kept, copied, while a password check runs). */
export function handleConnect(core: BrokerCore, c: Connection, p: ConnectPacket, raw: Buffer): void {
  const a: Admission = {
    clientId: p.clientId,
    assigned: false,
    keepalive: p.keepalive,
    serverKeepAlive: undefined,
    auth: undefined,
    trusted: false,
  };
  // A --bridge's in-process link is part of the broker's configuration: nothing to check.
  if (c.listener === 'bridge') {
    connected(core, c, p, a);
    return;
  }
  if (admit(core, c, p, a, BEFORE_AUTH, 0) !== ADMITTED) return;
  if (a.trusted) {
    authenticated(core, c, p, a, 'accepted');
    return;
  }
  const verdict = core.auth.quick(p.username, p.password);
  if (verdict !== undefined) {
    authenticated(core, c, p, a, verdict);
    return;
  }
  // A scrypt check, off the event loop: the CONNECT outlives this read (a copy of its bytes, decoded
  // again), and what the client sends meanwhile waits in the connection, in order.
  const own = decode(Buffer.from(raw), p.protocolVersion) as ConnectPacket;
  const job = core.auth.start(own.username ?? '', own.password, (v) =>
    c.afterAuth(() => authenticated(core, c, own, a, v)),
  );
  if (job === 'busy') authenticated(core, c, p, a, 'busy');
  else c.awaitAuth(job);
}

const ADMITTED = 'admitted';

/**
 * Runs admission `steps` from `from` on: ADMITTED when every one passed; undefined when one refused
 * (the CONNECT is answered) or waits for an enhanced authentication exchange (it resumes them).
 */
function admit(
  core: BrokerCore,
  c: Connection,
  p: ConnectPacket,
  a: Admission,
  steps: readonly AdmissionStep[],
  from: number,
): typeof ADMITTED | undefined {
  for (let i = from; i < steps.length; i++) {
    const result = steps[i]!(core, c, p, a);
    if (result === WAIT) {
      waitForAuthentication(core, c, p, a, steps, i + 1);
      return undefined;
    }
    if (result !== undefined) {
      refuse(core, c, result);
      return undefined;
    }
  }
  return ADMITTED;
}

/**
 * The CONNECT waits for its enhanced authentication exchange, kept out of the read buffer (its
 * will copied, its password dropped); the exchange's success carries on from step `next` with the
 * user SCRAM proved as the connection's user (no password check then).
 */
function waitForAuthentication(
  core: BrokerCore,
  c: Connection,
  p: ConnectPacket,
  a: Admission,
  steps: readonly AdmissionStep[],
  next: number,
): void {
  const exchange = c.authExchange!;
  const kept: ConnectPacket = { ...p };
  delete kept.password;
  if (p.will !== undefined) kept.will = ownWill(p.will);
  if (p.properties !== undefined) {
    kept.properties = { ...p.properties };
    delete kept.properties.authenticationData;
  }
  exchange.resume = (success) => {
    kept.username = success.username;
    a.auth = { method: exchange.method, data: success.data };
    if (admit(core, c, kept, a, steps, next) === ADMITTED) authenticated(core, c, kept, a, 'accepted');
  };
}

/** The password check's verdict: refused (bad credentials, or too many checks waiting) or go on. */
function authenticated(
  core: BrokerCore,
  c: Connection,
  p: ConnectPacket,
  a: Admission,
  v: AuthVerdict,
): void {
  if (v === 'busy') {
    const why = `${core.auth.pending} password checks waiting (--max-auth-pending)`;
    refuse(core, c, { code: ReasonCode.ServerBusy, why });
    return;
  }
  if (v === 'refused') {
    const why = `bad user name or password (user ${p.username ?? '(none)'})`;
    refuse(core, c, { code: ReasonCode.BadUserNameOrPassword, why });
    return;
  }
  if (admit(core, c, p, a, AFTER_AUTH, 0) === ADMITTED) connected(core, c, p, a);
}

/** The CONNECT is admitted: the connection takes the client's limits, its session, the CONNACK. */
function connected(core: BrokerCore, c: Connection, p: ConnectPacket, a: Admission): void {
  // [MQTT-3.2.2-2] a session is present when the broker kept it: one that ends with its
  // connection (3.1.1 Clean Session 1, v5 Session Expiry 0) is not, even while that connection is
  // still open to be taken over [MQTT-3.2.2-3].
  const present = !p.clean && (core.sessions.get(a.clientId)?.expiryInterval ?? 0) > 0;
  const ack = connack(core, p, a, present);
  const maxOut = p.protocolVersion === 5 ? p.properties?.maximumPacketSize : undefined;
  // Response Information is optional: it goes before the CONNACK would exceed the client's limit.
  if (maxOut !== undefined && packetSize(ack, 5) > maxOut && ack.type === 'CONNACK')
    delete ack.properties?.responseInformation;
  if (maxOut !== undefined && packetSize(ack, 5) > maxOut) {
    // [MQTT-3.1.2-24] not even a CONNACK larger than the client allows: close without it.
    core.log(
      `[${c.label}] CONNACK of ${packetSize(ack, 5)} bytes exceeds the client's Maximum Packet Size ${maxOut}: closing without it [MQTT-3.1.2-24]`,
    );
    c.closeNow();
    return;
  }
  if (p.will !== undefined) c.will = ownWill(p.will);
  c.authMethod = a.auth?.method;
  takeClientLimits(core, c, p, a);
  const session = openSession(core, p, a.clientId, present);
  session.conn = c;
  c.session = session;
  c.state = ConnState.Connected;
  if (++core.counters.clientsConnected > core.counters.clientsMaximum)
    core.counters.clientsMaximum = core.counters.clientsConnected;
  if (core.opts.disconnectAfterS !== undefined && c.listener !== 'bridge')
    c.disconnectAt = core.now() + core.opts.disconnectAfterS * 1000;

  c.writePacket(ack, true);
  if (core.logging) {
    // (Not made under -q: the peer's address is a system call, the line a few allocations.)
    const v = p.protocolVersion;
    const how = `${v === 5 ? 'MQTT 5.0' : v === 4 ? 'MQTT 3.1.1' : 'MQTT 3.1'}, ${p.clean ? 'clean' : present ? 'session resumed' : 'new session'}, keepalive ${a.keepalive}`;
    core.log(
      `[${a.clientId}] connected from ${c.transport.remoteAddress ?? '?'} over ${c.listener} (${how}${p.username !== undefined ? `, user ${p.username}` : ''})`,
    );
  }
  const persist = core.persist;
  if (persist !== undefined) {
    persist.session(session);
    if (c.will !== undefined) persist.will(session, c.will);
    else persist.willGone(session);
  }

  // Resume: in-flight messages again (PUBLISH with DUP, PUBREL) in their order, then the queue.
  if (session.inflightSize > 0) for (const out of session.inflight.values()) resend(core, session, c, out);
  pump(core, session);
}

/** The will as the connection keeps it: its bytes copied out of the read buffer. */
function ownWill(will: Will): Will {
  const wp = will.properties;
  return {
    ...will,
    payload: Buffer.from(will.payload),
    ...(wp !== undefined
      ? {
          properties: {
            ...wp,
            ...(wp.correlationData !== undefined ? { correlationData: Buffer.from(wp.correlationData) } : {}),
          },
        }
      : {}),
  };
}

/** The connection takes the client's identity, keepalive and (v5) limits on what it is sent. */
function takeClientLimits(core: BrokerCore, c: Connection, p: ConnectPacket, a: Admission): void {
  const props = p.properties;
  c.clientId = a.clientId;
  c.username = p.username;
  c.keepaliveMs = a.keepalive * 1000;
  c.lastRx = core.now();
  if (p.protocolVersion === 5) {
    c.inflightLimit = Math.min(props?.receiveMaximum ?? 65_535, core.maxInflight);
    c.maxOut = props?.maximumPacketSize ?? c.maxOut;
    c.aliasOutMax = props?.topicAliasMaximum ?? 0;
    if (core.opts.topicAliasOut === true && c.aliasOutMax > 0) c.aliasesOut = new Map();
  } else c.inflightLimit = core.maxInflight;
}

/**
 * The session for client `id`: taken over from another connection [MQTT-3.1.4-3] (v5: with
 * DISCONNECT 0x8E); resumed when `present` (kept past its connection, and the CONNECT is not
 * clean), else new.
 */
function openSession(core: BrokerCore, p: ConnectPacket, id: string, present: boolean): Session {
  const v = p.protocolVersion;
  let session = core.sessions.get(id);
  const old = session?.conn;
  if (old !== undefined) {
    core.log(`[${id}] session taken over by a new connection`);
    old.takenOver = true;
    old.disconnect(ReasonCode.SessionTakenOver, 'another connection with the same client id');
  }
  if (session !== undefined) {
    // [MQTT-3.1.3-9] a new connection with this client id before the Will Delay Interval ended:
    // the will waiting for it is not published, whether the session is resumed or not (as
    // Mosquitto does; a will without a delay was published as the old connection ended).
    clearTimeout(session.willTimer);
    session.willTimer = undefined;
    session.pendingWill = undefined;
  }
  if (session !== undefined && present) {
    clearTimeout(session.expiryTimer);
    session.expiryTimer = undefined;
    if (session.version !== v) {
      session.version = v;
      core.trie.invalidate();
    }
  } else {
    if (session !== undefined) endSession(core, session);
    session = new Session(id, v);
    core.sessions.set(id, session);
  }
  session.expiryInterval = v === 5 ? (p.properties?.sessionExpiryInterval ?? 0) : p.clean ? 0 : NEVER_EXPIRES;
  const userChanged = present && session.username !== p.username;
  session.username = p.username;
  session.bridge = p.bridge === true;
  // Like Mosquitto: a session resumed under another user keeps only what that user may read.
  if (userChanged && core.aclReads) dropUnreadable(core, session);
  return session;
}

function connack(core: BrokerCore, p: ConnectPacket, a: Admission, present: boolean): Packet {
  const v = p.protocolVersion;
  const ack: Packet = { type: 'CONNACK', sessionPresent: present && v !== 3, reasonCode: 0 };
  if (v !== 5) return ack;
  const cp: Properties = {};
  if (a.assigned) cp.assignedClientIdentifier = a.clientId;
  if (a.serverKeepAlive !== undefined) cp.serverKeepAlive = a.serverKeepAlive;
  if (core.receiveMaximum < 65_535) cp.receiveMaximum = core.receiveMaximum;
  if (core.opts.maxPacketSize !== undefined) cp.maximumPacketSize = core.opts.maxPacketSize;
  if (core.topicAliasMax > 0) cp.topicAliasMaximum = core.topicAliasMax;
  if (core.maxQoS < 2) cp.maximumQoS = core.maxQoS;
  if (core.noRetain) cp.retainAvailable = 0;
  if (a.auth !== undefined) {
    cp.authenticationMethod = a.auth.method;
    cp.authenticationData = a.auth.data;
  }
  // Only when asked: Request Response Information 0 (or none) forbids it [MQTT-3.1.2-28].
  if (p.properties?.requestResponseInformation === 1 && core.responseTemplate !== undefined) {
    const info = responseInformation(core.responseTemplate, a.clientId);
    if (info !== undefined) cp.responseInformation = info;
  }
  if (Object.keys(cp).length > 0) ack.properties = cp;
  return ack;
}

/** CONNACK with the refusal's code (in the client's protocol level), then the close. */
export function refuse(core: BrokerCore, c: Connection, r: Refusal): void {
  const v5 = c.version === 5;
  const rc = v5 ? toV5ConnackCode(r.code) : toV4ReturnCode(r.code);
  c.writePacket({ type: 'CONNACK', sessionPresent: false, reasonCode: rc }, true);
  core.log(`[${c.label}] connection refused: ${formatReasonCode(rc, 'CONNACK', v5 ? 5 : 4)} (${r.why})`);
  c.closeNow();
}

/** 3.1.1 CONNACK return code for a v5 reason code (codes 1-5 pass through). */
function toV4ReturnCode(code: number): number {
  if (code <= 5) return code;
  switch (code) {
    case ReasonCode.UnsupportedProtocolVersion:
      return 1;
    case ReasonCode.ClientIdentifierNotValid:
      return 2;
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
      return 4;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return 5;
    default:
      return 3;
  }
}

/** v5 CONNACK reason code for a 3.1.1 return code (codes >= 0x80 pass through). */
function toV5ConnackCode(code: number): number {
  const map = [0, 0x84, 0x85, 0x88, 0x86, 0x87];
  return code < map.length ? map[code]! : code;
}
