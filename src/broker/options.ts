import type { BridgeOptions } from './bridge/bridge.js';

/** Everything `new Broker(options)` accepts; the `mq broker` flags map onto it one to one. */
export interface BrokerOptions {
  /** Bind address for every listener (default 127.0.0.1). */
  host?: string;
  /** MQTT over TCP port; 0 picks a free one (default 1883). null disables the TCP listener. */
  port?: number | null;
  /** MQTT over WebSocket (subprotocol mqtt or mqttv3.1, on wsPath). */
  wsPort?: number;
  /** HTTP path of the WebSocket listener (default /mqtt); other paths get HTTP 404. */
  wsPath?: string;
  /** MQTT over TLS; needs cert and key (PEM text or Buffers). */
  tlsPort?: number;
  /** MQTT over WebSocket over TLS (wss://, on wsPath), with the same cert, key and client-certificate options. */
  wssPort?: number;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** CA certificates (PEM) that client certificates must chain to (Mosquitto's cafile). */
  ca?: string | Buffer;
  /** TLS listeners ask for a client certificate signed by `ca`; a client without one fails the handshake. */
  requireCertificate?: boolean;
  /** The client certificate's subject CN is the user name (ACL); the CONNECT's user name and password are not checked. */
  useIdentityAsUsername?: boolean;

  /** user -> password; anonymous access is off when any user (or a passwd file) is given. */
  users?: Record<string, string>;
  /**
   * Clients without a user name: allowed or not, whatever users exist (Mosquitto's allow_anonymous).
   * Unset: allowed unless users are configured. With false and no users, every client is refused.
   */
  allowAnonymous?: boolean;
  /** Path of a password file (`user:$scrypt$...`, `$scram$` lines, mosquitto_passwd's `$7$` and `$6$`). */
  passwdFile?: string;
  /** PBKDF2 iterations of the SCRAM credentials derived for `users` (default 4096). */
  scramIterations?: number;
  /**
   * Most CONNECTs waiting for their password file (scrypt) check, which runs off the event loop a
   * few at a time (default 64); more get CONNACK Server busy (3.1.1: Server unavailable).
   */
  maxAuthPending?: number;
  /** Path of a mosquitto-style acl_file. */
  aclFile?: string;
  /**
   * Topics nobody receives: a filter inside one of these is refused (SUBACK 0x80 / 0x87), a wider
   * one ('#', '+/x') is granted but never delivered a topic they match, retained or live.
   */
  denySubscribe?: string[];
  /** Topic filters nobody may publish to (dropped; v5 PUBACK/PUBREC 0x87). */
  denyPublish?: string[];

  /** Largest packet accepted from a client (advertised in the v5 CONNACK). */
  maxPacketSize?: number;
  /** Most simultaneous connections; more get CONNACK Server unavailable/busy. */
  maxConnections?: number;
  /** Most outgoing QoS>0 messages in flight per client (default 256; a client's Receive Maximum lowers it). */
  maxInflight?: number;
  /** Most QoS>0 messages queued per session (default 10,000); newer ones are dropped, counted and logged. */
  maxQueued?: number;
  /**
   * Backpressure: a client publishing to a subscriber with more than 1 MiB waiting is not read
   * from until that subscriber catches up; a subscriber that has not caught up after this long
   * (ms, default 5000) holds no one up any more, and QoS 0 messages to it are dropped while it is
   * behind (counted, logged). 0: no backpressure (QoS 0 dropped only beyond 64 MiB waiting).
   */
  backpressureTimeoutMs?: number;
  /** Largest keepalive accepted; larger (or 0) gets Server Keep Alive (v5) or is refused (3.1.1, like Mosquitto). */
  maxKeepalive?: number;
  /** Milliseconds a new connection has to send CONNECT and end an enhanced authentication (default 10,000). */
  connectTimeoutMs?: number;
  /**
   * Response Information for v5 clients that ask for it (Request Response Information 1): a topic
   * prefix where %c is the client id, escaped (response-info.ts); default 'resp/%c/'; false: none.
   */
  responseInformation?: string | false;
  /**
   * Most levels a topic name or filter may have (default 128). Beyond it: PUBLISH refused with
   * 0x90 (v5 PUBACK/PUBREC, or DISCONNECT at QoS 0; 3.1.1 closed), SUBSCRIBE with SUBACK 0x8F, a
   * will with CONNACK 0x90.
   */
  maxTopicLevels?: number;
  /** Most user properties one packet may carry (default 1024); more: DISCONNECT 0x97 Quota exceeded. */
  maxUserProperties?: number;
  /**
   * Most subscriptions one session may hold (default 10,000); a new one beyond gets SUBACK 0x97
   * (3.1.1: 0x80). Also the most topic filters one SUBSCRIBE or UNSUBSCRIBE may carry (more:
   * DISCONNECT 0x97, before the packet is decoded).
   */
  maxSubscriptions?: number;
  /**
   * Largest packet accepted before a CONNECT is accepted (default 128 KiB, never above
   * maxPacketSize): the bytes a connection can make the broker hold before authentication.
   */
  maxConnectSize?: number;

  /** Print every packet in and out per client ('line' one line each, 'full' every field). */
  trace?: 'line' | 'full';
  /** Append all traffic as NDJSON {time, client, direction, hex} to this file. */
  recordFile?: string;

  /** Fault injection: refuse every CONNECT with this reason code (3.1.1 clients get the nearest return code). */
  refuseConnect?: number;
  /** Fault injection: Maximum QoS advertised and enforced (0 or 1). */
  maxQoS?: 0 | 1 | 2;
  /**
   * Fault injection: the broker's Receive Maximum for v5 clients: most QoS 2 PUBLISHes not yet
   * released (PUBREC sent, no PUBREL yet); one more gets DISCONNECT 0x93. QoS 1 PUBACKs are queued
   * while the read is processed, so QoS 1 never counts (see handlers/publish.ts).
   */
  receiveMaximum?: number;
  /** Topic Alias Maximum the broker accepts from clients (default 10, like Mosquitto; 0 = none). */
  topicAliasMax?: number;
  /** Fault injection: Retain Available 0; retained PUBLISH is refused. */
  noRetain?: boolean;
  /** Fault injection: silently drop every Nth packet the broker would send (except CONNACK). */
  dropEvery?: number;
  /** Fault injection: delay everything the broker sends by this many milliseconds. */
  delayMs?: number;
  /** Fault injection: disconnect every client this many seconds after it connected... */
  disconnectAfterS?: number;
  /** ...with this DISCONNECT reason code (v5; default 0x98 Administrative action). */
  disconnectReason?: number;
  /** Assign topic aliases on outgoing PUBLISH to clients that accept them. */
  topicAliasOut?: boolean;

  /**
   * Plain TCP connections through node:net's sockets (streams) instead of their handles directly
   * (tcp-transport.ts): slower and heavier; the fallback where Node lacks the handle API.
   */
  nodeStreams?: boolean;

  /** Keep sessions, queued messages and retained messages in this write-ahead log. */
  persistFile?: string;
  /** Seconds between $SYS/broker/... updates (default 10; 0 = off). */
  sysInterval?: number;
  /** Bridges to remote brokers (--bridge), started before the listeners open. */
  bridges?: BridgeOptions[];

  /**
   * Where log lines go (default: stderr); pass () => {} for silence. Each is one line, control
   * characters from the network escaped (\x1b, \n, \u202e).
   */
  log?: (line: string) => void;
  /** No log lines at all (mq broker -q): they are not even made (a connection's costs CPU). */
  quiet?: boolean;
  /** Where --trace lines go (default: the log). */
  traceOut?: (line: string) => void;
}

/** What Broker.close() does besides stopping. */
export interface CloseOptions {
  /**
   * Publish the wills of connected clients, and those waiting out a Will Delay Interval, before
   * closing the connections (default true, as Mosquitto does and as mq broker does on SIGINT and
   * SIGTERM). false: connected clients' wills are dropped.
   */
  publishWills?: boolean;
}

/** Bound addresses, as returned by Broker.listen(). */
export interface BrokerAddresses {
  tcp?: { host: string; port: number };
  ws?: { host: string; port: number };
  tls?: { host: string; port: number };
  wss?: { host: string; port: number };
}

/** Counters behind $SYS/broker/... and Broker.stats. */
export interface BrokerStats {
  clientsConnected: number;
  /** Most clients connected at once since the start. */
  clientsMaximum: number;
  /** Sessions, connected or not. */
  clientsTotal: number;
  /** PUBLISH packets received / sent. */
  messagesReceived: number;
  messagesSent: number;
  /** Packets of every type received / sent (Mosquitto's $SYS/broker/messages/received|sent). */
  packetsReceived: number;
  packetsSent: number;
  bytesReceived: number;
  bytesSent: number;
  /** QoS>0 messages dropped because a session's queue was full, oversize or faults. */
  messagesDropped: number;
  retainedCount: number;
  subscriptionCount: number;
}
