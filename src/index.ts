/**
 * mq as a library: the codec (also at 'mq/protocol'), the client, the embeddable broker, and the
 * libraries `mq probe`, `mq proxy` and `mq bench` render (each runs without the CLI).
 *
 *   import { Broker, MqttClient, MqttProxy, runBench, runProbe, decode, encode } from 'mq';
 *
 * Only what a user calls is exported here; the CLI's own helpers stay inside.
 */

export {
  type BenchHooks,
  type BenchMode,
  type BenchOptions,
  type BenchProgress,
  type BenchReport,
  BenchSession,
  BenchSettingsError,
  type BenchTarget,
  type BuiltinBroker,
  type CompareRow,
  compareReports,
  mergeReports,
  type Percentiles,
  type PhaseRequest,
  ReportFormatError,
  readReport,
  runBench,
  startBuiltinBroker,
} from './bench/index.js';
export {
  type BridgeOptions,
  Broker,
  type BrokerAddresses,
  type BrokerOptions,
  type BrokerStats,
  type CloseOptions,
  makePasswdLine,
  type TraceFormatter,
} from './broker/index.js';
export {
  ClientClosedError,
  type ClientOptions,
  ConnectError,
  DisconnectError,
  type EndOptions,
  MqttClient,
  type PublishOptions,
  PublishRefusedError,
  type TlsOptions,
  type TransportKind,
  type TransportOptions,
} from './client/index.js';
export {
  type CheckResult,
  type CheckStatus,
  formatReport,
  type ProbeOptions,
  type ProbeReport,
  reportJson,
  runProbe,
  SECTIONS,
  type SectionName,
  summarize,
} from './probe/index.js';
export * from './protocol/index.js';
export {
  type ConnectionFaults,
  type ConnectionInfo,
  type Direction,
  type DirectionFaults,
  MqttProxy,
  NO_FAULTS,
  type PacketEvent,
  type ProxyAddress,
  type ProxyAddresses,
  type ProxyEvents,
  type ProxyOptions,
} from './proxy/index.js';
