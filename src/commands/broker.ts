/**
 * `mq broker`: a local MQTT 3.1 / 3.1.1 / 5.0 broker for testing. Parses and checks the flags,
 * starts src/broker, prints where it listens, stops cleanly on SIGINT/SIGTERM.
 */
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { Broker, type BrokerOptions, makePasswdLine, makeScramPasswdLine } from '../broker/index.js';
import { addBridgeOptions, type BridgeFlags, resolveBridges } from '../cli/bridge-options.js';
import { isLoopback, listeningLines, terminalSink, tlsOptions } from '../cli/broker-setup.js';
import { newCommand, run } from '../cli/command.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { type ConfFlags, readMosquittoConf } from '../cli/mosquitto-conf-flags.js';
import { collect } from '../cli/options.js';
import { colors } from '../cli/output.js';
import { formatPacketFull, formatPacketLine } from '../cli/render.js';
import { stopWhen } from '../cli/signals.js';
import { parseInteger, parseQos, parseSeconds } from '../cli/values.js';
import { validateTopicFilter } from '../protocol/index.js';

/** mq broker's flags; those a -c file may set too are ConfFlags (src/cli/mosquitto-conf-flags.ts). */
interface BrokerFlags extends ConfFlags {
  config?: string;
  host: string;
  /** null: no TCP listener (a -c file with listeners but no plain mqtt one). */
  port: string | null;
  wsPath: string;
  auth: string[];
  maxAuthPending?: string;
  makePasswd?: string;
  scram?: boolean;
  scramIterations: string;
  denySubscribe: string[];
  denyPublish: string[];
  maxTopicLevels?: string;
  maxUserProperties?: string;
  maxSubscriptions?: string;
  maxConnectSize?: string;
  backpressureTimeout?: string;
  connectTimeout?: string;
  trace?: string | boolean;
  record?: string;
  refuseConnect?: string;
  receiveMaximum?: string;
  retain: boolean;
  dropEvery?: string;
  delay?: string;
  disconnectAfter?: string;
  reason?: string;
  topicAliasOut?: boolean;
  /** false: --no-response-information. */
  responseInformation?: string | false;
  sysInterval: string;
  quiet?: boolean;
}

export function command(): Command {
  const cmd = newCommand('broker').description(
    'Run a local MQTT 3.1/3.1.1/5.0 broker for testing: every packet traceable, faults on demand.',
  );
  addBrokerOptions(cmd);
  const bridges = addBridgeOptions(cmd);
  cmd.addHelpText('after', HELP);
  return run<BrokerFlags>(cmd, (flags, _args, command) => brokerCommand(flags, command, bridges()));
}

/** Every flag of mq broker, in --help order. */
function addBrokerOptions(cmd: Command): void {
  addListenerOptions(cmd);
  addAuthOptions(cmd);
  addLimitOptions(cmd);
  addTraceAndFaultOptions(cmd);
}

/** Where the broker listens: TCP, WebSocket, TLS (and client certificates), Mosquitto's config file. */
function addListenerOptions(cmd: Command): void {
  cmd
    .option(
      '-c, --config <file>',
      "read Mosquitto's mosquitto.conf (listeners, auth, TLS, limits...); flags given here override it",
    )
    .option(
      '-h, --host <host>',
      'address to bind (anything but loopback is reachable from other machines)',
      '127.0.0.1',
    )
    .option('-p, --port <port>', 'MQTT over TCP port; 0 picks a free one', '1883')
    .option(
      '--ws-port <port>',
      'also listen for MQTT over WebSocket (ws://host:port/mqtt, subprotocol mqtt or mqttv3.1)',
    )
    .option('--ws-path <path>', 'HTTP path of the WebSocket listener (other paths: HTTP 404)', '/mqtt')
    .option('--tls-port <port>', 'also listen for MQTT over TLS (mqtts://); needs --cert and --key')
    .option(
      '--wss-port <port>',
      'also listen for MQTT over WebSocket over TLS (wss://host:port/mqtt); needs --cert and --key',
    )
    .option('--cert <file>', 'TLS certificate (PEM) of the TLS listeners')
    .option('--key <file>', 'TLS private key (PEM)')
    .option(
      '--cafile <file>',
      'CA certificates (PEM) that sign the client certificates (--require-certificate)',
    )
    .option(
      '--require-certificate',
      'TLS listeners refuse, at the handshake, clients without a certificate signed by --cafile',
    )
    .option(
      '--use-identity-as-username',
      "with --require-certificate: the client certificate's CN is the user name (ACL); no password needed",
    );
}

/** Who may connect and what they may do: users, password files, SCRAM, ACL, deny rules. */
function addAuthOptions(cmd: Command): void {
  cmd
    .option(
      '--auth <user:pass>',
      'allow this user (repeatable); anonymous access is then refused',
      collect,
      [],
    )
    .option(
      '--allow-anonymous [bool]',
      'true or false: clients without a user name are allowed (default: unless users are configured)',
    )
    .option(
      '--passwd <file>',
      'password file: user:$scrypt$ / $scram$ lines (--make-passwd) or mosquitto_passwd ones ($7$, $6$)',
    )
    .option(
      '--max-auth-pending <n>',
      'most CONNECTs waiting for their --passwd check; more get CONNACK Server busy/unavailable (default 64)',
    )
    .option('--make-passwd <user:pass>', 'print a password file line for user:pass and exit')
    .option('--scram', 'with --make-passwd: a $scram$ line, for SCRAM (enhanced authentication) too')
    .option(
      '--scram-iterations <n>',
      'PBKDF2 iterations of the SCRAM credentials of --auth users (v5 enhanced authentication)',
      '4096',
    )
    .option(
      '--acl <file>',
      "mosquitto acl_file: 'user NAME', 'topic [read|write|readwrite|deny] T', 'pattern ... %u %c'",
    )
    .option(
      '--deny-subscribe <filter>',
      'topics nobody receives: filters inside it refused, wider ones never given its topics (repeatable)',
      collect,
      [],
    )
    .option(
      '--deny-publish <filter>',
      'drop publishes to topics matching this filter (repeatable)',
      collect,
      [],
    );
}

/** The limits a client meets (each refused with its reason code beyond it). */
function addLimitOptions(cmd: Command): void {
  cmd
    .option(
      '--max-packet-size <bytes>',
      'largest packet accepted (v5 clients are told; bigger: DISCONNECT 0x95)',
    )
    .option('--max-connections <n>', 'most simultaneous connections (more: CONNACK Server busy/unavailable)')
    .option('--max-inflight <n>', 'most QoS>0 messages in flight to one client (default 256)')
    .option(
      '--max-queued <n>',
      'most QoS>0 messages queued per session; newer ones are dropped and counted (default 10000)',
    )
    .option(
      '--connect-timeout <s>',
      'seconds a new connection has to send its CONNECT (and end an enhanced authentication) before it is closed (default 10)',
    )
    .option(
      '--max-keepalive <s>',
      'largest keepalive; v5 clients asking more (or 0) are told this, 3.1.1 ones refused',
    )
    .option(
      '--max-topic-levels <n>',
      'most levels in a topic name or filter (default 128); more: PUBLISH 0x90, SUBACK 0x8F, will CONNACK 0x90',
    )
    .option(
      '--max-user-properties <n>',
      'most user properties in one packet (default 1024); more: DISCONNECT 0x97 Quota exceeded',
    )
    .option(
      '--max-subscriptions <n>',
      'most subscriptions per session, and topic filters per SUBSCRIBE (default 10000); more: SUBACK 0x97',
    )
    .option(
      '--backpressure-timeout <s>',
      'how long a subscriber that does not catch up may hold up the clients publishing to it (default 5; 0: never)',
    )
    .option(
      '--max-connect-size <bytes>',
      'largest packet accepted before a CONNECT is (default 131072): what an unauthenticated connection can make the broker hold',
    );
}

/** Tracing, recording, fault injection for testing clients, persistence, $SYS, logging. */
function addTraceAndFaultOptions(cmd: Command): void {
  cmd
    .option(
      '--trace [mode]',
      'print every packet in and out per client on stderr: line (default) or full; passwords and authentication data are masked',
    )
    .option(
      '--record <file>',
      'append all traffic as NDJSON {time, client, direction, hex}, file mode 0600, secrets masked (mq decode -f FILE --line reads it)',
    )
    .option(
      '--refuse-connect <code>',
      'fault: refuse every CONNECT with this reason code (e.g. 0x87, or 5 for 3.1.1)',
    )
    .option('--max-qos <qos>', 'fault: Maximum QoS (0 or 1) advertised in CONNACK and enforced')
    .option(
      '--receive-maximum <n>',
      'fault: Receive Maximum advertised to v5 clients; more unreleased QoS 2 PUBLISHes: DISCONNECT 0x93',
    )
    .option(
      '--topic-alias-max <n>',
      'Topic Alias Maximum advertised (default 10, like Mosquitto; 0 = no aliases)',
    )
    .option('--no-retain', 'fault: Retain Available 0; retained publishes are refused')
    .option(
      '--drop-every <n>',
      'fault: silently lose every Nth packet the broker sends (not CONNACK or DISCONNECT)',
    )
    .option('--delay <ms>', 'fault: delay everything the broker sends by this many milliseconds')
    .option('--disconnect-after <s>', 'fault: disconnect every client this many seconds after it connects')
    .option('--reason <code>', 'reason code for --disconnect-after (default 0x98 Administrative action)')
    .option('--topic-alias-out', 'assign topic aliases on PUBLISH to clients that accept them')
    .option(
      '--response-information <prefix>',
      'v5 Response Information for clients that ask: a topic prefix, %c the client id, escaped (default resp/%c/)',
    )
    .option('--no-response-information', 'send no Response Information')
    .option(
      '--persist <file>',
      'keep sessions, wills, queued QoS>0 and retained messages in this write-ahead log (file mode 0600)',
    )
    .option('--sys-interval <s>', 'seconds between $SYS/broker/... updates (0 = off)', '10')
    .option('-q, --quiet', 'no log lines (connections, refusals, malformed packets, drops)');
}

const HELP = `
Examples:
  mq broker                                   listen on 127.0.0.1:1883
  mq broker --port 0                          pick a free port (printed on stdout)
  mq broker --trace                           show every packet, one line each, per client
  mq broker --trace=full --record traffic.ndjson
  mq broker --ws-port 8080 --tls-port 8883 --cert cert.pem --key key.pem
  mq broker -c /etc/mosquitto/mosquitto.conf          Mosquitto's config file as it is
  mq broker -c mosquitto.conf --port 0 --trace         the file, with a free port and tracing
  mosquitto_passwd -c -b passwd alice secret && mq broker --passwd passwd
  mq broker --tls-port 8883 --wss-port 8884 --cert cert.pem --key key.pem \\
            --cafile ca.pem --require-certificate --use-identity-as-username --acl acl.conf
  mq broker --auth alice:secret --deny-publish 'secret/#'
  mq broker --auth alice:secret              then: mq sub -t '#' --auth-method SCRAM-SHA-256 -u alice -P secret
  mq broker --make-passwd alice:secret >> passwd && mq broker --passwd passwd --acl acl.conf
  mq broker --make-passwd alice:secret --scram >> passwd    a line SCRAM logins can use too
  mq broker --max-qos 1 --receive-maximum 5 --drop-every 10    test how a client copes
  mq broker --backpressure-timeout 1          a subscriber 1 s behind no longer slows publishers
  mq broker --persist broker.db               survive restarts (and kill -9)
  mq broker --bridge mqtts://user:pass@prod.example.com --bridge-topic 'sensors/# in 1'
                                              production's sensors/# here, as they happen
  mq broker --bridge mqtt://10.0.0.5 --bridge-topic 'cmd/# out 1 "" site1/' \\
            --bridge mqtt://10.0.0.6 --bridge-topic '# both 1 edge/ ""'   two bridges

Output: "mq broker listening on mqtt://HOST:PORT" (and ws://, mqtts://, wss:// lines) on stdout once
listening; log lines on stderr (-q silences them); --trace lines on stderr as
"[client-id] -> PACKET" (client to broker) and "[client-id] <- PACKET" (broker to client); a
bridge's packets to its remote broker as "[bridge NAME] >> PACKET", from it as "<<".
--trace (line and full) shows a CONNECT's password and any Authentication Data by length only,
"(7 bytes, masked)". Client ids, user names, topics and reason strings in log and trace lines
are shown with control characters escaped (\\x1b, \\n, \\u202e): a client cannot drive the terminal.

Limits: a session's queue holds --max-queued QoS>0 messages; further messages to it are
dropped (the queue keeps the oldest), counted in $SYS/broker/publish/messages/dropped and
logged. QoS 0 messages are not queued for offline clients.
Backpressure: while more than 1 MiB waits for a subscriber, the clients publishing to it are not
read from (TCP makes them wait) until it has taken half of that, so a slow subscriber slows its
publishers instead of losing QoS 0 messages. A subscriber that has not caught up within
--backpressure-timeout seconds (5) holds no one up any more: QoS 0 messages to it are dropped
while it is behind (logged, counted in $SYS/broker/publish/messages/dropped), so a client that
does not read, or reads a trickle (or two that wait for each other), cannot stall the others for
longer. QoS 1 and 2 messages are never dropped for it: they wait in its session (--max-queued).
--backpressure-timeout 0 turns backpressure off. $SYS/broker/... is published
retained every --sys-interval seconds, named as Mosquitto names it: uptime,
clients/connected|disconnected|maximum|total, messages/received|sent (packets of every type),
publish/messages/received|sent|dropped, bytes/received|sent, retained messages/count,
subscriptions/count.
A connection that sends no CONNECT within --connect-timeout (10 s; checked every 0.25 s) is
closed.

Hostile clients: until its CONNECT is accepted a connection may send at most
--max-connect-size bytes in a packet or WebSocket message (131072: any one string at its
maximum, 65535 bytes, fits; a CONNECT with two, say a big will payload and password, needs the
flag). A topic name or filter has at most --max-topic-levels levels
(128; Mosquitto allows 201): beyond it a PUBLISH gets 0x90 Topic Name invalid (v5 PUBACK/PUBREC,
DISCONNECT at QoS 0; a 3.1.1 client is disconnected, as Mosquitto does), a filter SUBACK 0x8F,
a will CONNACK 0x90. A packet with more than --max-user-properties user properties (1024) gets
DISCONNECT 0x97 Quota exceeded. A session holds at most --max-subscriptions subscriptions
(10000; one more: SUBACK 0x97, 3.1.1 0x80); a SUBSCRIBE or UNSUBSCRIBE carrying more filters
than that gets DISCONNECT 0x97. A client that does not read gets no more QoS 0 messages once
64 MiB wait for it (logged, counted as dropped), backpressure or not. Whatever fails in one
client's handling closes that client (logged), never the broker.

Stopping (Ctrl-C, SIGTERM): no new connections; the wills of connected clients, and those
waiting out a Will Delay Interval, are published first, as Mosquitto does as it exits, so the
clients still connected receive them (the bridges have stopped by then: a will does not cross
one); then v5 clients get DISCONNECT 0x8B (Server shutting down), every connection is flushed
and closed, --persist is written, exit 0. With --persist, a
delayed will whose session survives the restart (a Session Expiry Interval) is kept instead,
with its deadline. --persist keeps wills across restarts and kill -9: a will due while the
broker was down, or whose session ended with it (a clean session's, after kill -9), is
published at start; the others wait out their Will Delay Interval (for a client connected at a
crash, from the restart), unless the client connects first [MQTT-3.1.3-9].

Access control: --acl read rules are checked per message at delivery (like Mosquitto), so a
subscription to '#' allowed by 'topic read #' receives nothing a deny rule covers; a session
resumed under another user keeps only the queued messages that user may read. A 'pattern' rule
whose %c (client id) or %u (user name) would hold '+', '#' or '/' matches nothing for that
client (a client named '+' must not get 'devices/+/#'). --deny-subscribe F refuses a filter
that F contains (F itself, 'secret/+' for F 'secret/#') and keeps F's topics from every wider
filter ('#', '+/x', shared ones too), retained or live; --deny-publish F drops publishes, and
refuses wills, to topics F matches. A publish with Payload Format Indicator 1 whose payload
is not UTF-8 is refused with 0x99. A will must pass every check a PUBLISH does (no $SYS, the
ACL, the limits), else its CONNECT is refused.

Enhanced authentication (MQTT 5): users may also log in with SCRAM-SHA-1, SCRAM-SHA-256 or
SCRAM-SHA-512 (RFC 5802/7677; Authentication Method named as EMQX names it): CONNECT with
the client-first message, AUTH 0x18 both ways, CONNACK 0x00 with the server's signature. A
wrong password gets CONNACK 0x86, a malformed SCRAM message 0x87, an unknown method 0x8C.
Clients may re-authenticate (AUTH 0x19) with the same method and user; a failure gets
DISCONNECT 0x87. The --auth users' SCRAM keys are made at start (a random salt; about 6 ms
per user at the default --scram-iterations 4096). In a --passwd file, $scram$ lines
(--make-passwd user:pass --scram) hold the SCRAM keys of all three methods and check plain
passwords too; users of scrypt lines log in with a password only (scrypt is not what SCRAM
needs, and the file keeps no password). --connect-timeout (10 s) covers the exchange.
--trace and --record mask passwords and Authentication Data.

Mosquitto's config file (-c): mq reads listener PORT [ADDRESS] (with protocol websockets;
certfile and keyfile make it TLS), port, bind_address, allow_anonymous, password_file,
acl_file, per_listener_settings, persistence (with persistence_location and persistence_file:
mq's own log format there, never Mosquitto's mosquitto.db), max_packet_size,
max_inflight_messages, max_queued_messages, max_keepalive, retain_available, max_qos,
max_connections, max_topic_alias, certfile, keyfile, cafile, require_certificate,
use_identity_as_username, sys_interval, as Mosquitto 2 does: with a listener, anonymous
clients are refused unless allow_anonymous true; without one, mq listens on loopback and
allows them. mq has one listener of each kind (mqtt, websockets, each also over TLS), one bind
address and one set of limits and TLS settings: a file asking for more is refused, naming the
line. Other Mosquitto directives get one warning line each (file:line) and are ignored, except
those whose absence would let in clients Mosquitto refuses (crlfile, psk_*, plugins,
mount_point, capath, ...): an error. A malformed line is an error (file:line), exit 1. A flag
given on the command line replaces the same setting from the file (--port the mqtt listener's
port, --host every bind address, --passwd the password_file...).

Password files (--passwd): mq's $scrypt$ and $scram$ lines, and mosquitto_passwd's $7$
(PBKDF2-SHA512, its default) and $6$ (SHA-512) lines as they are. A $7$ user may also log in
with SCRAM-SHA-512 (its hash is SCRAM's salted password; Mosquitto's 101 iterations are below
the 4096 mq's own client asks for).

Client certificates: with --require-certificate, the TLS listeners (--tls-port, --wss-port)
refuse at the handshake a client without a certificate signed by --cafile (logged). With
--use-identity-as-username the certificate's CN is the user name for --acl, and the
CONNECT's user name and password are not needed (nor checked), as in Mosquitto.

Bridges: --bridge URL starts one; the --bridge-* flags after it (up to the next --bridge) are
its own. --bridge-topic is Mosquitto's topic line, 'PATTERN [in|out|both [QOS [LOCAL_PREFIX
REMOTE_PREFIX]]]': out (the default) sends local messages on LOCAL_PREFIX+PATTERN to the remote
broker as REMOTE_PREFIX+PATTERN, in brings REMOTE_PREFIX+PATTERN here as LOCAL_PREFIX+PATTERN,
both does both; QOS (default 0) is the QoS of the subscriptions on both sides; "" is an empty
prefix (as the pattern, the two prefixes are then whole topics). The first --bridge-topic that
matches a message maps it; a message matching several is forwarded once, at the highest of their
QoS (MQTT 5: Subscription Identifiers tell the copies apart).

QoS 1 and 2 across the link: the remote session is persistent (--bridge-clean: not; MQTT 5: it
expires --bridge-session-expiry seconds after the link went down, default 3600), so what the
remote broker holds for the bridge meanwhile arrives when the link is back. A local QoS 1/2
message for the remote broker is acknowledged to the local broker only once the remote broker
acknowledged it: while the link is down such messages wait in the bridge's local session (client
id local.CLIENT-ID), at most --max-inflight in flight plus --max-queued queued (beyond that the
newest are dropped, counted and logged, as for any client), kept across restarts with --persist;
QoS 0 messages for the remote are dropped then. The bridge reconnects with backoff
(--bridge-reconnect, default 1..30 seconds) and subscribes again when the remote broker lost the
session.

No loops: no message goes back to the side it came from (MQTT 5: No Local on both sides;
3.1/3.1.1: Mosquitto's bridge flag in CONNECT, which Mosquitto and mq broker understand).
Retained flags travel as published, and the local retained messages of out topics go to the
remote broker each time the link comes up (as Mosquitto does).

State: log lines (connected, lost, cannot connect: a refusal is logged once, the bridge keeps
trying) and the retained $SYS/broker/connection/CLIENT-ID/state, 1 while connected, else 0. The
remote client id defaults to mq-bridge.HOSTNAME (mq-bridge-2... for further bridges): two
brokers bridging to one remote broker need different ones (--bridge-client-id). The bridge's
local side is trusted like Mosquitto's bridges: --auth, --acl, --deny-* and the fault flags do
not apply to it. mq broker also treats 3.1.1 clients with Mosquitto's bridge flag as bridges (No
Local and Retain As Published on their subscriptions).

Request/response (MQTT 5): a client whose CONNECT sets Request Response Information 1 gets
Response Information in its CONNACK, a prefix for its response topics: resp/CLIENT-ID/
(--response-information PREFIX, %c the client id; --no-response-information: none). In the
client id, % / + # $ are written %25 %2F %2B %23 %24, so the prefix is one topic level per
client, without wildcards, and no two clients share one. mq req uses it. The broker does not
reserve the prefix: with --acl, 'pattern read resp/%c/#' lets each client (whose id has none
of those characters) read its own, and responders need write access to resp/#.

WebSocket: upgrades only on --ws-path (other paths: HTTP 404) offering subprotocol mqtt or
mqttv3.1 (else HTTP 400).

Authentication: --passwd passwords are checked with scrypt off the event loop (other clients are
not held up), a few at a time; CONNECTs waiting beyond --max-auth-pending are refused with Server
busy (3.1.1: Server unavailable); what a client sends while its CONNECT waits is handled after it,
in order. An unknown user name costs the same check as a known one, and --auth passwords are
compared in constant time, so timing tells no one which users exist. --acl without --auth or
--passwd is warned about at start-up: user names are then whatever clients claim.

Secrets and files: a CONNECT's password and the Authentication Data of CONNECT, CONNACK and AUTH
never reach --trace (line or full) or --record: they are masked byte for byte ('*', the length
kept, as mq proxy --record does), so mq decode -f FILE --line still reads a recording. The
--record and --persist files are created mode 0600 (an existing recording is set to it).
--persist skips a record it cannot use with a warning naming the file and line, and drops a torn
last line (a write cut short by kill -9) with a warning too.

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 usage error, 6 cannot listen (port in use...).`;

async function brokerCommand(flags: BrokerFlags, cmd: Command, bridges: BridgeFlags[]): Promise<number> {
  if (flags.makePasswd !== undefined) {
    const [user, pass] = splitUserPass(flags.makePasswd, '--make-passwd');
    const iterations = parseInteger(flags.scramIterations, '--scram-iterations', 4096, 1_000_000);
    const line =
      flags.scram === true ? makeScramPasswdLine(user, pass, iterations) : makePasswdLine(user, pass);
    process.stdout.write(`${line}\n`);
    return ExitCode.Ok;
  }
  if (flags.scram === true) throw new UsageError('--scram goes with --make-passwd');
  if (flags.config !== undefined) {
    const onCommandLine = (flag: keyof ConfFlags) => cmd.getOptionValueSource(flag) === 'cli';
    const conf = await readMosquittoConf(flags.config, onCommandLine);
    for (const w of conf.warnings) process.stderr.write(`mq broker: warning: ${w}\n`);
    // A flag given on the command line wins over the same setting from the file.
    const fromFile = Object.entries(conf.flags).filter(([flag]) => !onCommandLine(flag as keyof ConfFlags));
    Object.assign(flags, Object.fromEntries(fromFile));
  }
  const options = toOptions(flags);
  if (bridges.length > 0) options.bridges = await resolveBridges(bridges);
  // Memory per idle connection: without this, V8 grows the young generation up to 16x during a
  // connection storm and keeps it (about 4 KB of RSS per connection, measured with 2,000).
  // This process only runs the broker, so the flag does not affect anyone else.
  // (--optimize-for-size was tried too: it cost ~15% CPU per message and raised p99 latency at
  // 5k msg/s from ~0.6 to ~0.9-2 ms in bench:broker, for no memory gain.)
  setFlagsFromString('--semi-space-growth-factor=1');
  const quiet = flags.quiet === true;
  const err = colors(process.stderr);
  const stamp = () => err.dim(new Date().toISOString().slice(11, 23));
  const sink = terminalSink();
  options.log = quiet ? () => {} : (line) => process.stderr.write(`${stamp()} ${sink.line(line)}\n`);
  options.quiet = quiet;
  options.traceOut = (line) => process.stderr.write(`${stamp()} ${sink.line(line)}\n`);
  let broker: Broker;
  try {
    broker = new Broker(options);
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), ExitCode.Usage);
  }
  if (options.trace !== undefined) {
    broker.setTraceFormatter((packet, version, mode) =>
      sink.rendered(
        mode === 'full'
          ? formatPacketFull(packet, version, { colors: err })
          : formatPacketLine(packet, version, { colors: err }),
      ),
    );
  }
  const noUsers = options.users === undefined && options.passwdFile === undefined;
  if (!isLoopback(options.host ?? '127.0.0.1')) {
    const anyone = noUsers && options.allowAnonymous !== false;
    process.stderr.write(
      `mq broker: WARNING: binding ${options.host}: reachable from other machines${anyone ? ', and anyone may connect (no --auth/--passwd)' : ''}\n`,
    );
  }
  if (options.allowAnonymous === false && noUsers && options.useIdentityAsUsername !== true) {
    process.stderr.write(
      'mq broker: warning: anonymous clients are not allowed and no users are configured (--auth, --passwd): every client will be refused, as Mosquitto does\n',
    );
  }
  // Signal handlers first: a script may send SIGTERM the moment it reads the listening line.
  const stop = stopWhen({ signals: ['SIGINT', 'SIGTERM'] });
  let addresses: Awaited<ReturnType<Broker['listen']>>;
  try {
    addresses = await broker.listen();
  } catch (e) {
    stop.dispose();
    throw new CliError(`cannot listen: ${e instanceof Error ? e.message : String(e)}`, ExitCode.Failure);
  }
  process.stdout.write(`${listeningLines(addresses, options.wsPath ?? '/mqtt').join('\n')}\n`);

  const signal = await stop.stopped;
  // From here a second Ctrl-C ends the process at once (Node's default).
  stop.dispose();
  if (!quiet) process.stderr.write(`${stamp()} ${signal}: closing every connection\n`);
  try {
    await broker.close();
  } catch (e) {
    process.stderr.write(`mq broker: error while closing: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  return ExitCode.Ok;
}

function splitUserPass(text: string, what: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UsageError(`${what}: expected user:password, got '${text}'`);
  return [text.slice(0, colon), text.slice(colon + 1)];
}

/** A reason code in decimal or hex (0x87). */
function parseCode(text: string, what: string): number {
  const n = /^0x[0-9a-f]{1,2}$/i.test(text.trim())
    ? Number.parseInt(text.trim(), 16)
    : parseInteger(text, what, 0, 255);
  if (n < 0 || n > 255) throw new UsageError(`${what}: '${text}' is not a reason code (0-255 or 0x00-0xff)`);
  return n;
}

function toOptions(f: BrokerFlags): BrokerOptions {
  const o: BrokerOptions = {
    host: f.host,
    port: f.port === null ? null : parseInteger(f.port, '--port', 0, 65_535),
  };
  if (f.wsPort !== undefined) o.wsPort = parseInteger(f.wsPort, '--ws-port', 0, 65_535);
  if (!f.wsPath.startsWith('/') || /[\s?#]/.test(f.wsPath))
    throw new UsageError(`--ws-path: '${f.wsPath}' is not an HTTP path (like /mqtt)`);
  if (f.wsPath !== '/mqtt') {
    if (f.wsPort === undefined && f.wssPort === undefined)
      throw new UsageError('--ws-path needs --ws-port or --wss-port');
    o.wsPath = f.wsPath;
  }
  tlsOptions(f, o);
  const anonymous = f.allowAnonymous;
  if (anonymous !== undefined) {
    if (anonymous !== true && anonymous !== 'true' && anonymous !== 'false')
      throw new UsageError(`--allow-anonymous: '${anonymous}' is not true or false`);
    o.allowAnonymous = anonymous !== 'false';
  }
  if (f.auth.length > 0) {
    // fromEntries defines own properties: a user named __proto__ is a user (not the prototype of
    // an empty map, which turned authentication off).
    o.users = Object.fromEntries(f.auth.map((a) => splitUserPass(a, '--auth')));
  }
  o.scramIterations = parseInteger(f.scramIterations, '--scram-iterations', 4096, 1_000_000);
  if (f.passwd !== undefined) o.passwdFile = f.passwd;
  if (f.maxAuthPending !== undefined)
    o.maxAuthPending = parseInteger(f.maxAuthPending, '--max-auth-pending', 0, 1_000_000);
  if (f.acl !== undefined) o.aclFile = f.acl;
  for (const [list, what] of [
    [f.denySubscribe, '--deny-subscribe'],
    [f.denyPublish, '--deny-publish'],
  ] as const) {
    for (const filter of list) {
      const problem = validateTopicFilter(filter);
      if (problem !== undefined) throw new UsageError(`${what}: ${problem.message}`);
    }
  }
  if (f.denySubscribe.length > 0) o.denySubscribe = f.denySubscribe;
  if (f.denyPublish.length > 0) o.denyPublish = f.denyPublish;
  if (f.maxPacketSize !== undefined)
    o.maxPacketSize = parseInteger(f.maxPacketSize, '--max-packet-size', 16, 268_435_460);
  if (f.maxConnections !== undefined)
    o.maxConnections = parseInteger(f.maxConnections, '--max-connections', 1, 10_000_000);
  if (f.maxInflight !== undefined) o.maxInflight = parseInteger(f.maxInflight, '--max-inflight', 1, 65_535);
  if (f.maxQueued !== undefined) o.maxQueued = parseInteger(f.maxQueued, '--max-queued', 0, 100_000_000);
  if (f.maxKeepalive !== undefined)
    o.maxKeepalive = parseInteger(f.maxKeepalive, '--max-keepalive', 1, 65_535);
  // A topic is at most 65,535 bytes: 65,536 levels (all empty) is the most it can have.
  if (f.maxTopicLevels !== undefined)
    o.maxTopicLevels = parseInteger(f.maxTopicLevels, '--max-topic-levels', 1, 65_536);
  if (f.maxUserProperties !== undefined)
    o.maxUserProperties = parseInteger(f.maxUserProperties, '--max-user-properties', 0, 100_000_000);
  if (f.maxSubscriptions !== undefined)
    o.maxSubscriptions = parseInteger(f.maxSubscriptions, '--max-subscriptions', 1, 100_000_000);
  if (f.maxConnectSize !== undefined)
    o.maxConnectSize = parseInteger(f.maxConnectSize, '--max-connect-size', 16, 268_435_460);
  if (f.backpressureTimeout !== undefined)
    o.backpressureTimeoutMs = parseSeconds(f.backpressureTimeout, '--backpressure-timeout') * 1000;
  if (f.connectTimeout !== undefined) {
    const seconds = parseSeconds(f.connectTimeout, '--connect-timeout');
    // 0 would close every connection before its CONNECT.
    if (seconds === 0)
      throw new UsageError('--connect-timeout: 0 seconds would refuse every client; give more');
    o.connectTimeoutMs = Math.round(seconds * 1000);
  }
  if (f.trace !== undefined) {
    if (f.trace === true || f.trace === 'line') o.trace = 'line';
    else if (f.trace === 'full') o.trace = 'full';
    else throw new UsageError(`--trace: '${String(f.trace)}' is not line or full`);
  }
  if (f.record !== undefined) o.recordFile = f.record;
  if (f.refuseConnect !== undefined) {
    o.refuseConnect = parseCode(f.refuseConnect, '--refuse-connect');
    if (o.refuseConnect === 0) throw new UsageError('--refuse-connect: 0 is success; give a refusal code');
  }
  if (f.maxQos !== undefined) o.maxQoS = parseQos(f.maxQos, '--max-qos');
  if (f.receiveMaximum !== undefined)
    o.receiveMaximum = parseInteger(f.receiveMaximum, '--receive-maximum', 1, 65_535);
  if (f.topicAliasMax !== undefined)
    o.topicAliasMax = parseInteger(f.topicAliasMax, '--topic-alias-max', 0, 65_535);
  if (!f.retain) o.noRetain = true;
  if (f.dropEvery !== undefined) o.dropEvery = parseInteger(f.dropEvery, '--drop-every', 1, 1_000_000_000);
  if (f.delay !== undefined) o.delayMs = parseInteger(f.delay, '--delay', 0, 3_600_000);
  if (f.disconnectAfter !== undefined)
    o.disconnectAfterS = parseSeconds(f.disconnectAfter, '--disconnect-after');
  if (f.reason !== undefined) {
    if (f.disconnectAfter === undefined) throw new UsageError('--reason needs --disconnect-after');
    o.disconnectReason = parseCode(f.reason, '--reason');
  }
  if (f.topicAliasOut === true) o.topicAliasOut = true;
  if (f.responseInformation !== undefined) o.responseInformation = f.responseInformation;
  if (f.persist !== undefined) o.persistFile = f.persist;
  o.sysInterval = parseSeconds(f.sysInterval, '--sys-interval');
  return o;
}
