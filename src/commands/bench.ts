/**
 * `mq bench conn|pub|sub|e2e|compare|merge`: the load tester. Each mode parses and checks its flags
 * (src/cli/bench-options), runs the engine (src/bench) with a live line and Ctrl-C as an abort,
 * writes --json / --html, prints the summary and the --assert verdicts (src/cli/bench-output,
 * bench-html, bench-assert) and returns the exit code. `mq bench` alone is e2e with a small load.
 */
import { basename } from 'node:path';
import { type Command, Option } from 'commander';
import type { BenchReport } from '../bench/report.js';
import { METRIC_NAMES, parseAssertion } from '../cli/bench-assert.js';
import { benchHtml, type HtmlRun } from '../cli/bench-html.js';
import {
  addBenchConnectionOptions,
  type BenchFlags,
  type BenchPlan,
  type BenchPreset,
  benchOptions,
  resolveBenchFlags,
} from '../cli/bench-options.js';
import { formatCompare, liveProgress } from '../cli/bench-output.js';
import { finish, loadReport, openOutput, writeOut } from '../cli/bench-results.js';
import { newCommand, run } from '../cli/command.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { collect } from '../cli/options.js';
import { colors } from '../cli/output.js';
import { stopWhen } from '../cli/signals.js';

type Mode = 'conn' | 'pub' | 'sub' | 'e2e';

/** What `mq bench` alone runs: e2e, 4 publishers at 1,000 msg/s in all, 1 subscriber, 10 s. */
const QUICK: BenchPreset = { pubs: 4, subs: 1, rate: 1000 };

const EXIT_CODES = `Exit codes: 0 done, 1 usage error (a wrong flag or --assert expression), 2 could not connect
or every connection was lost (the report of what was measured is still printed and written),
6 another failure (an unwritable --json/--html file, mq bench itself), 7 an --assert not met,
130 Ctrl-C (the summary of what ran so far is printed).`;

const DESCRIPTION: Record<Mode, string> = {
  conn: 'Open N connections at a target rate: connect latency percentiles (TCP, TLS, CONNACK), failures by reason; --hold keeps them open.',
  pub: 'Publishers alone, against any broker: messages per second sent, PUBACK/PUBCOMP round trip for QoS 1/2.',
  sub: 'Subscribers alone: messages per second received; for payloads from `mq bench pub` (any machine) end-to-end latency, loss, duplicates, reordering.',
  e2e: 'Publishers and subscribers in one run: end-to-end latency (one clock), loss, duplicates, reordering per publisher.',
};

const EXAMPLES: Record<Mode, string> = {
  conn: `
Examples:
  mq bench conn -c 1000 --connect-rate 500          connect latency of 1,000 clients, 500 a second
  mq bench conn -c 10k --hold --duration 5m -k 30    soak: hold 10,000 connections for 5 minutes
  mq bench conn -c 200 -L mqtts://broker.example --cafile ca.pem    with TLS handshake times
  mq bench conn -c 100 --assert 'connect.p99<50ms' --assert 'connect-failed==0'
  mq bench conn -c 1k --auth-method SCRAM-SHA-256 -u alice -P secret   MQTT 5 enhanced authentication`,
  pub: `
Examples:
  mq bench pub -c 8 -q 1 --duration 30s             8 publishers as fast as the broker acknowledges
  mq bench pub -c 4 --rate 20k --size 256 -h broker.example --json pub-a.json
  mq bench pub -c 2 -q 2 --inflight 16 --count 10k  10,000 QoS 2 messages per publisher`,
  sub: `
Examples:
  mq bench sub -c 4 --topic 'bench/#' --duration 1m --json sub.json     while \`mq bench pub\` runs elsewhere
  mq bench sub -c 3 --topic '$share/g/bench/+'       three members of one shared subscription
  mq bench sub --count 100k --assert 'lost==0'

Latency of messages from other machines is only as good as the sync of their clocks (the summary
says so); loss is counted from the gaps in each publisher's sequence.`,
  e2e: `
Examples:
  mq bench e2e --pubs 8 --subs 1 -q 0 --size 64     fan-in, as fast as the broker takes them
  mq bench e2e --pubs 1 --subs 16 --rate 1000       fan-out at 1,000 msg/s, open loop
  mq bench e2e -q 1 --rate 5000 --duration 1m --html report.html
  mq bench e2e --broker builtin -q 2 --count 1000 --assert 'lost==0' --assert 'p99<20ms'
  mq bench e2e -L wss://broker.example/mqtt -u bench -P secret --rate 500`,
};

const LETTERS = `The connection flags are those of pub and sub, but for two letters: -c is the number of clients
here (as in every load tool), so persistent sessions are --no-clean (long form only); -q is the
QoS, so --quiet is long only. -i, the will, -D and --trace do not apply to many raw clients.
--auth-method SCRAM-SHA-1|256|512 with -u/-P: each connection does the exchange (the broker's
signature checked); the salted password is derived once per salt in each worker, not per
connection.`;

const LOAD_NOTES = `
Load: with --rate the send times are fixed in advance (open loop) and latency counts from the
scheduled time, so a stalled broker is not hidden (coordinated omission corrected); without it,
publishers send as fast as the broker takes them (QoS 1/2: --inflight un-acknowledged each).
Each payload starts with mq's header (run id, publisher, sequence, send time): receivers count
loss, duplicates and reordering per publisher. --warmup is left out of every figure.
Topics: %i index, %c client id, %w worker, %% a percent sign.
--assert METRIC OP VALUE (OP: < <= > >= == !=; units: us, ms, s, k, M, %). Metrics:
  ${METRIC_NAMES}.`;

export function command(): Command {
  const bench = newCommand('bench')
    .description(
      'Load-test a broker: connections, publishers, subscribers or both, with latency percentiles, loss, a summary, JSON and HTML reports, and CI thresholds.',
    )
    .usage('[conn|pub|sub|e2e|compare|merge] [options]')
    .helpCommand(false);
  for (const mode of ['conn', 'pub', 'sub', 'e2e'] as const) bench.addCommand(modeCommand(mode, mode, {}));
  // `mq bench` alone (or with flags but no mode): e2e with a small fixed load.
  bench.addCommand(modeCommand('run', 'e2e', QUICK), { isDefault: true, hidden: true });
  bench.addCommand(compareCommand());
  bench.addCommand(mergeCommand());
  bench.addHelpText(
    'after',
    `
\`mq bench\` alone runs e2e for 10 s against localhost:1883 (or -L / MQ_URL): ${QUICK.pubs} publishers at
${QUICK.rate} msg/s in all, ${QUICK.subs} subscriber, QoS 0, 64-byte payloads; any e2e flag changes it.

Examples:
  mq bench                                      the quick run: is this broker fast, and how fast?
  mq bench --broker builtin                     the same against mq's own broker, no setup
  mq bench e2e --pubs 8 -q 1 --rate 10k --json run.json --html run.html
  mq bench conn -c 10k --hold                   hold 10,000 connections until Ctrl-C
  mq bench compare before.json after.json       two runs side by side, change of each figure
  mq bench merge a.json b.json --json all.json  one report from runs on several machines
  mq bench <mode> --help                        the flags of one mode

${LETTERS}

${EXIT_CODES}`,
  );
  return bench;
}

/** The command of one mode (`name` is the mode, or 'run' for the hidden default). */
function modeCommand(name: string, mode: Mode, preset: BenchPreset): Command {
  const cmd = newCommand(name).description(DESCRIPTION[mode]).exitOverride();
  if (name === 'run') cmd.argument('[mode]');
  for (const o of benchOptions(mode, preset)) cmd.addOption(o);
  addBenchConnectionOptions(cmd);
  const notes = mode === 'conn' ? '' : `${LOAD_NOTES}\n`;
  cmd.addHelpText('after', `${EXAMPLES[mode]}\n${notes}\n${LETTERS}\n\n${EXIT_CODES}`);
  return run<BenchFlags>(cmd, (flags, args) => {
    if (args.length > 0) {
      throw new UsageError(`bench: unknown mode '${args[0]}' (modes: conn, pub, sub, e2e, compare, merge)`);
    }
    return benchMode(mode, flags, preset);
  });
}

async function benchMode(mode: Mode, flags: BenchFlags, preset: BenchPreset): Promise<number> {
  const plan = await resolveBenchFlags(mode, flags, preset);
  const json = await openOutput(plan.json, '--json');
  const html = await openOutput(plan.html, '--html').catch(async (err: unknown) => {
    await json?.close();
    throw err;
  });
  let report: BenchReport;
  let interrupted = false;
  try {
    const r = await runPlan(plan);
    report = r.report;
    interrupted = r.interrupted;
  } catch (err) {
    await Promise.all([json?.close(), html?.close()]);
    throw err;
  }
  return finish(report, plan, { json, html, interrupted, name: 'this run', builtin: plan.builtin });
}

/** Starts the builtin broker if asked, runs the engine with the live line and Ctrl-C, stops it. */
async function runPlan(plan: BenchPlan): Promise<{ report: BenchReport; interrupted: boolean }> {
  const { runBench, startBuiltinBroker, BenchSettingsError } = await import('../bench/index.js');
  let builtin: Awaited<ReturnType<typeof startBuiltinBroker>> | undefined;
  if (plan.builtin) {
    try {
      builtin = await startBuiltinBroker();
    } catch (err) {
      throw new CliError(`--broker builtin: cannot start it: ${(err as Error).message}`, ExitCode.Failure);
    }
    plan.options.target = {
      ...plan.options.target,
      transport: 'mqtt',
      host: builtin.host,
      port: builtin.port,
    };
  }
  const stop = stopWhen({ signals: ['SIGINT', 'SIGTERM'] });
  const live = await liveProgress(plan.options.mode, plan.quiet);
  try {
    const report = await runBench(plan.options, { signal: stop.signal, onProgress: (p) => live.update(p) });
    return { report, interrupted: stop.reason !== undefined };
  } catch (err) {
    if (err instanceof BenchSettingsError)
      throw new UsageError(settingMessage(plan.options.mode, err.message));
    throw err;
  } finally {
    live.stop();
    stop.dispose();
    await builtin?.close();
  }
}

/** The engine names settings ("topic 'a/#': ..."); the user typed flags. */
function settingMessage(mode: Mode, message: string): string {
  const flag: Record<string, string> = {
    topic: '--topic',
    filter: mode === 'sub' ? '--topic' : '--filter',
    inflight: '--inflight',
    size: '--size',
    rate: '--rate',
    count: '--count',
    duration: '--duration',
    warmup: '--warmup',
  };
  const first = /^[a-z]+/.exec(message)?.[0] ?? '';
  return flag[first] !== undefined ? `${flag[first]}${message.slice(first.length)}` : `bench: ${message}`;
}

// --- compare and merge ------------------------------------------------------------------------

interface ReportFlags {
  json?: string;
  html?: string;
  assert?: string[];
  quiet?: boolean;
}

function reportOutputOptions(cmd: Command, asserts: boolean): Command {
  cmd
    .addOption(new Option('--json <file>', 'write the result as JSON to FILE, or - for stdout'))
    .addOption(new Option('--html <file>', 'write a self-contained page with the plots'));
  if (asserts) {
    cmd
      .addOption(
        new Option(
          '--assert <expr>',
          "a threshold on the merged report, e.g. 'p99<5ms' (repeatable)",
        ).argParser(collect),
      )
      .addOption(new Option('--quiet', 'print no summary (failed asserts still show)'));
  }
  return cmd.exitOverride();
}

function compareCommand(): Command {
  const cmd = reportOutputOptions(
    newCommand('compare')
      .description(
        'Two reports side by side with the change of each figure (green better, red worse on a terminal).',
      )
      .argument('<a>', 'the first report (--json of mq bench)')
      .argument('<b>', 'the second report'),
    false,
  );
  cmd.addHelpText(
    'after',
    `
Examples:
  mq bench compare before.json after.json
  mq bench compare mosquitto.json emqx.json --html compare.html    both runs in one plot
  mq bench compare a.json b.json --json - | jq '.rows[] | select(.key == "latencyMs.p99")'

--json writes {"a": FILE, "b": FILE, "rows": [{key, label, unit, a, b, change, better}]}; change is
b / a - 1.

Exit codes: 0 done, 1 usage error, 4 a file that is not an mq bench report, 6 a file that cannot
be read or written.`,
  );
  return run<ReportFlags>(cmd, async (flags, args) => {
    const [fa, fb] = args as [string, string];
    const jsonOut = await openOutput(flags.json, '--json');
    const htmlOut = await openOutput(flags.html, '--html');
    const [a, b] = await Promise.all([loadReport(fa), loadReport(fb)]);
    const { compareReports } = await import('../bench/index.js');
    const rows = compareReports(a, b);
    const names: [string, string] = [basename(fa), basename(fb)];
    const runs: HtmlRun[] = [
      { name: names[0], report: a },
      { name: names[1], report: b },
    ];
    const data = { a: fa, b: fb, rows };
    await writeOut(jsonOut, `${JSON.stringify(data, null, 2)}\n`, '--json');
    await writeOut(htmlOut, benchHtml(runs, `mq bench compare: ${names[0]} and ${names[1]}`), '--html');
    if (flags.json === '-') process.stdout.write(`${JSON.stringify(data)}\n`);
    const stream = flags.json === '-' ? process.stderr : process.stdout;
    stream.write(formatCompare(names, [a, b], rows, colors(stream)));
    return ExitCode.Ok;
  });
}

function mergeCommand(): Command {
  const cmd = reportOutputOptions(
    newCommand('merge')
      .description(
        'Combine reports of runs made at the same time on several machines: histograms merged, counters and rates summed.',
      )
      .argument('<reports...>', 'report files (--json of mq bench)'),
    true,
  );
  cmd.addHelpText(
    'after',
    `
Driving a broker cluster harder than one machine can: start the runs together, e.g.
  host1$ mq bench sub -c 4 -L mqtt://cluster --topic 'bench/#' --duration 1m --json sub.json
  host2$ mq bench pub -c 50 -L mqtt://cluster --rate 50k --duration 1m --json pub-2.json
  host3$ mq bench pub -c 50 -L mqtt://cluster --rate 50k --duration 1m --json pub-3.json
  mq bench merge sub.json pub-2.json pub-3.json --json all.json --html all.html

Examples:
  mq bench merge a.json b.json
  mq bench merge *.json --json - | jq .latencyMs
  mq bench merge a.json b.json --assert 'p99<10ms' --assert 'lost==0'

Percentiles are recomputed from the merged histograms, never averaged. Latency measured across
machines is only as good as the sync of their clocks.

Exit codes: 0 done, 1 usage error, 4 a file that is not an mq bench report, 6 a file that cannot
be read or written, 7 an --assert not met.`,
  );
  return run<ReportFlags>(cmd, async (flags, args) => {
    const asserts = (flags.assert ?? []).map(parseAssertion);
    const json = await openOutput(flags.json, '--json');
    const html = await openOutput(flags.html, '--html');
    const reports = await Promise.all(args.map(loadReport));
    const { mergeReports } = await import('../bench/index.js');
    const merged = mergeReports(reports);
    const plan = {
      asserts,
      quiet: flags.quiet === true,
      ...(flags.json !== undefined ? { json: flags.json } : {}),
    };
    return finish(merged, plan, { json, html, interrupted: false, name: 'merged', merged: true });
  });
}
