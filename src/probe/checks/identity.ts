/**
 * Identity: does the broker take anonymous clients, what does $SYS/broker/version say, and over
 * TLS: protocol version, cipher, certificate chain, expiry, host name match, ALPN.
 */
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import { type Check, checksOf } from '../check.js';
import { subscribeFate } from '../flows.js';
import { type CheckScope, fail, info, type ProbeContext, pass, skipped, unsupported } from '../scope.js';
import { code, quoted } from '../text.js';
import type { Outcome } from '../types.js';

async function anonymous(scope: CheckScope): Promise<Outcome> {
  const o = scope.ctx.client;
  if (o.username === undefined && o.password === undefined) {
    return info('accepted: the probe itself connects without credentials', { value: true });
  }
  const version = scope.ctx.version;
  const conn = await scope.raw(version, { autoAck: true });
  const connect = scope.connectPacket(version);
  delete connect.username;
  delete connect.password;
  try {
    const connack = await scope.wait(conn.handshake(connect), 'CONNACK');
    if (connack.reasonCode === 0) {
      await scope.wait(conn.end(), 'the connection to close');
      return info('accepted: a client without user name and password may connect', { value: true });
    }
    return info(`refused: ${code(connack.reasonCode, 'CONNACK', version === 5 ? 5 : 4)}`, { value: false });
  } catch (err) {
    if (conn.isClosed === undefined) throw err;
    return info(`refused: ${scope.describeClose(conn.isClosed)}`, { value: false });
  }
}

async function sysVersion(scope: CheckScope): Promise<Outcome> {
  const topic = '$SYS/broker/version';
  const { conn } = await scope.rawSession();
  const sub = await subscribeFate(scope, conn, [{ topicFilter: topic, qos: 0 }]);
  if (!sub.ok) return unsupported(`SUBSCRIBE ${topic}: ${scope.describeClose(sub.close)}`);
  const rc = sub.suback.reasonCodes[0] ?? 0x80;
  if (rc >= 0x80)
    return unsupported(`not readable: SUBSCRIBE ${topic} got ${code(rc, 'SUBACK', scope.ctx.version)}`);
  // A retained message comes right after the SUBACK: a PINGRESP behind it means there is none.
  await scope.wait(conn.ping(), 'PINGRESP');
  const m = conn.inbox.all.find((p) => p.type === 'PUBLISH' && p.topic === topic);
  if (m?.type !== 'PUBLISH') {
    const why =
      scope.ctx.connack.properties?.retainAvailable === 0
        ? '; the broker keeps none: Retain Available 0'
        : '';
    return unsupported(`${topic} is not published (no retained message${why})`);
  }
  const text = m.payload.toString('utf8');
  return info(quoted(text), { value: text });
}

// --- TLS ------------------------------------------------------------------------------------

interface TlsFacts {
  protocol: string | null;
  cipher: { name: string; standardName?: string; version: string };
  chain: PeerCertificate[];
  authorized: boolean;
  authorizationError?: string;
  hostError?: string;
  host: string;
  alpn: string | false;
  offeredAlpn: string[];
}

/** One TLS handshake to the broker's port, not verified (so an invalid chain can be described too). */
async function handshake(scope: CheckScope): Promise<TlsFacts> {
  const tls = await import('node:tls');
  const o = scope.ctx.client;
  const t = o.tls ?? {};
  const host = t.servername ?? o.host;
  const isIp = /^[\d.]+$/.test(o.host) || o.host.includes(':');
  const socket: TLSSocket = tls.connect({
    host: o.host,
    port: o.port,
    rejectUnauthorized: false,
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    ...(t.minVersion ? { minVersion: t.minVersion } : {}),
    ...(t.alpn ? { ALPNProtocols: t.alpn } : {}),
    ...(t.servername !== undefined ? { servername: t.servername } : isIp ? {} : { servername: o.host }),
  });
  // An error after the handshake (a reset) must not go unheard.
  socket.on('error', () => {});
  scope.onCleanup(async () => {
    socket.destroy();
  });
  await scope.wait(
    new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    }),
    'the TLS handshake',
  );
  const chain: PeerCertificate[] = [];
  let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (c !== undefined && Object.keys(c).length > 0 && chain.length < 10) {
    chain.push(c);
    const issuer: DetailedPeerCertificate | undefined = c.issuerCertificate;
    // A self-signed root is its own issuer.
    c = issuer === c ? undefined : issuer;
  }
  const facts: TlsFacts = {
    protocol: socket.getProtocol(),
    cipher: socket.getCipher(),
    chain,
    authorized: socket.authorized,
    host,
    alpn: socket.alpnProtocol ?? false,
    offeredAlpn: t.alpn ?? [],
  };
  if (socket.authorizationError !== undefined && socket.authorizationError !== null) {
    facts.authorizationError = String(socket.authorizationError);
  }
  const hostError = chain[0] !== undefined ? tls.checkServerIdentity(host, chain[0]) : undefined;
  if (hostError !== undefined) facts.hostError = hostError.message;
  socket.destroy();
  return facts;
}

/** The handshake is made once and shared by the TLS lines. */
function facts(scope: CheckScope): Promise<TlsFacts> {
  return scope.wait(
    scope.shared('tls', () => handshake(scope)),
    'the TLS handshake',
  );
}

const subjectOf = (c: PeerCertificate) => {
  const cn = c.subject?.CN;
  return quoted(Array.isArray(cn) ? cn.join(', ') : (cn ?? JSON.stringify(c.subject ?? {})), 60);
};

const check = checksOf('identity');

function tlsCheck(id: string, title: string, run: (f: TlsFacts) => Outcome): Check {
  return check(id, title, async (scope) => run(await facts(scope)));
}

const DAY_MS = 86_400_000;

/** The identity lines; the TLS ones only over TLS (else one line saying so). */
export function identityChecks(ctx: ProbeContext): Check[] {
  const common = [
    check('anonymous', 'Anonymous clients', anonymous),
    check('sysVersion', '$SYS/broker/version', sysVersion),
  ];
  const transport = ctx.client.transport;
  if (transport === 'mqtts' || transport === 'wss') return [...common, ...tlsChecks];
  const notTls = check('tls', 'TLS', async () =>
    skipped('not a TLS connection (mqtts:// or wss://, or any TLS flag, turns it on)'),
  );
  return [...common, notTls];
}

const tlsChecks: Check[] = [
  tlsCheck('tlsVersion', 'TLS version', (f) =>
    info(f.protocol ?? 'unknown', { value: f.protocol ?? 'unknown' }),
  ),
  tlsCheck('tlsCipher', 'TLS cipher', (f) =>
    info(f.cipher.standardName ?? f.cipher.name, { value: f.cipher.name }),
  ),
  tlsCheck('tlsChain', 'Certificate chain', (f) => {
    const names = f.chain.map(subjectOf).join(' <- ');
    const extra = { value: f.chain.length };
    if (f.authorized) return pass(`${names}: trusted`, extra);
    return fail(`${names}: not trusted (${f.authorizationError ?? 'unknown reason'})`, extra);
  }),
  tlsCheck('tlsExpiry', 'Certificate expiry', (f) => {
    const leaf = f.chain[0];
    if (leaf === undefined) return fail('the server sent no certificate');
    const until = new Date(leaf.valid_to);
    const from = new Date(leaf.valid_from);
    const days = Math.floor((until.getTime() - Date.now()) / DAY_MS);
    const span = `valid ${from.toISOString().slice(0, 10)} to ${until.toISOString().slice(0, 10)}`;
    const extra = { value: days, unit: 'days' };
    if (Date.now() < from.getTime()) return fail(`${span}: not valid yet`, extra);
    if (days < 0) return fail(`${span}: expired ${-days} days ago`, extra);
    return pass(`${span} (${days} days left)`, extra);
  }),
  tlsCheck('tlsHostname', 'Host name matches', (f) =>
    f.hostError === undefined
      ? pass(`the certificate is valid for ${quoted(f.host)}`, { value: true })
      : fail(f.hostError, { value: false }),
  ),
  tlsCheck('tlsAlpn', 'ALPN', (f) => {
    if (f.alpn !== false) return info(`negotiated ${quoted(f.alpn)}`, { value: f.alpn });
    if (f.offeredAlpn.length === 0) return info('none offered (--alpn to offer one)', { value: false });
    return info(`none of ${f.offeredAlpn.map((a) => quoted(a)).join(', ')} negotiated`, { value: false });
  }),
];
