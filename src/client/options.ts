/** What a caller tells MqttClient: the connection (ClientOptions), one publish, and end(). */
import type { Packet, Properties, ProtocolVersion, QoS, Will } from '../protocol/index.js';
import type { EnhancedAuth } from './enhanced-auth.js';
import type { TransportOptions } from './transport.js';

export interface ClientOptions extends TransportOptions {
  /** 3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0. */
  version: ProtocolVersion;
  /** '' lets the broker assign one (v5 reports it in CONNACK; 3.1.1 needs clean = true). */
  clientId: string;
  /** Seconds; 0 turns keepalive off. */
  keepalive: number;
  /** Clean Session (3.1/3.1.1) / Clean Start (5.0). */
  clean: boolean;
  /** 3.1/3.1.1: set Mosquitto's bridge flag (protocol level | 0x80, "try_private") in CONNECT. */
  bridge?: boolean;
  /** v5 Session Expiry Interval in seconds (0xFFFFFFFF = never). */
  sessionExpiry?: number;
  username?: string;
  password?: Buffer;
  will?: Will;
  /** v5 enhanced authentication (e.g. scramAuth('SCRAM-SHA-256', user, password)); -u/-P are then not sent as such. */
  auth?: EnhancedAuth;
  /** Extra CONNECT properties (-D connect ...). */
  connectProperties?: Properties;
  /** -M: at most this many QoS 1/2 PUBLISH un-acked at once; the broker's Receive Maximum caps it too. */
  maxInflight?: number;
  /** Reconnect after a lost connection, with exponential backoff and jitter between minMs and maxMs. */
  reconnect?: false | { minMs: number; maxMs: number };
  /** Socket connect + CONNACK. Default 10 s. */
  connectTimeoutMs?: number;
  /** Called for every packet sent ('out') and received ('in'), with its bytes. */
  trace?: Trace;
}

export type Trace = (direction: 'in' | 'out', packet: Packet, raw: Buffer) => void;

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
}

export interface EndOptions {
  /** Resolve once DISCONNECT is handed to the operating system, not when the broker closes. */
  flushOnly?: boolean;
}
