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
  cert?: string | Buffer;
  key?: string | Buffer;

  /** user -> password; anonymous access is off when any user (or a passwd file) is given. */
  users?: Record<string, string>;
  /** Path of a password file (`user:scrypt$...` lines, see makePasswdLine). */
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
  /** Topic filters nobody may subscribe to (SUBACK 0x80 / 0x87). */
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
  /** Largest keepalive accepted; larger (or 0) gets Server Keep Alive (v5) or is refused (3.1.1, like Mosquitto). */
  maxKeepalive?: number;
  /** Milliseconds a new connection has to send CONNECT (default 10,000). */
  connectTimeoutMs?: number;

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
  /** Where --trace lines go (default: the log). */
  traceOut?: (line: string) => void;
}

/** Bound addresses, as returned by Broker.listen(). */
export interface BrokerAddresses {
  tcp?: { host: string; port: number };
  ws?: { host: string; port: number };
  tls?: { host: string; port: number };
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
