/**
 * mq's load engine (what `mq bench` and `npm run bench:broker` drive):
 *
 *   runBench(options, { signal, onProgress }) -> BenchReport      one whole run
 *   BenchSession.open(options, hooks)                              step by step: run(phase), hold(), close()
 *   startBuiltinBroker()                                           `--broker builtin`
 *   readReport(json, name) / mergeReports(reports) / compareReports(a, b)   `mq bench merge` / `compare`
 *
 * The report's schema and its documentation: report.ts.
 */
export { type BuiltinBroker, startBuiltinBroker } from './builtin.js';
export { type BenchHooks, type BenchProgress, BenchSession, type PhaseRequest, runBench } from './engine.js';
export { decodeHistogram, encodeHistogram, percentiles, percentilesOf } from './histogram.js';
export { type CompareRow, compareReports, mergeReports, ReportFormatError, readReport } from './merge.js';
export { HEADER_BYTES } from './payload.js';
export { cpuSeconds, freePort, rssKiB, waitForPort } from './proc.js';
export * from './report.js';
export { type BenchOptions, BenchSettingsError, type BenchTarget } from './settings.js';
