/**
 * What `mq bench` does with a report once it has one (a run's, or merged, or read back): writes
 * --json and --html (files opened before the run, so that a long run does not end in EACCES),
 * prints the summary and the --assert verdicts, and decides the exit code; and reading report
 * files for `compare` / `merge` (unreadable: exit 6; not a report: exit 4).
 */
import { type FileHandle, open, readFile } from 'node:fs/promises';
import type { BenchReport } from '../bench/report.js';
import { type Assertion, type AssertResult, checkAssertion } from './bench-assert.js';
import { benchHtml } from './bench-html.js';
import { formatAsserts, formatSummary } from './bench-output.js';
import { CliError, ExitCode } from './errors.js';
import { escapeForTerminal } from './escape.js';
import { colors } from './output.js';

/** Files to write at the end, opened before the run (a 10-minute run must not end in EACCES). */
export async function openOutput(file: string | undefined, flag: string): Promise<FileHandle | undefined> {
  if (file === undefined || file === '-') return undefined;
  try {
    return await open(file, 'w');
  } catch (err) {
    throw new CliError(`${flag}: cannot write ${file}: ${(err as Error).message}`, ExitCode.Failure);
  }
}

export interface Outputs {
  json: FileHandle | undefined;
  html: FileHandle | undefined;
  interrupted: boolean;
  /** The run's name in the HTML legend. */
  name: string;
  /** A merged report: how its runs ended is in the summary; the exit code is the merge's. */
  merged?: boolean;
  /** The run was against --broker builtin (in this process). */
  builtin?: boolean;
}

export async function writeOut(handle: FileHandle | undefined, text: string, flag: string): Promise<void> {
  if (handle === undefined) return;
  try {
    await handle.writeFile(text);
  } catch (err) {
    throw new CliError(`${flag}: cannot write the report: ${(err as Error).message}`, ExitCode.Failure);
  } finally {
    await handle.close();
  }
}

/** Writes --json and --html, prints the summary and the verdicts; the exit code, or the CliError to end with. */
export async function finish(
  report: BenchReport,
  plan: { json?: string; asserts: Assertion[]; quiet: boolean },
  out: Outputs,
): Promise<number> {
  await writeOut(out.json, `${JSON.stringify(report, null, 2)}\n`, '--json');
  await writeOut(out.html, benchHtml([{ name: out.name, report }], title(report)), '--html');
  if (plan.json === '-') process.stdout.write(`${JSON.stringify(report)}\n`);
  const stream = plan.json === '-' ? process.stderr : process.stdout;
  const paint = colors(stream);
  const o = report.outcome;
  if (o.stopReason === 'connect-failed' && out.merged !== true) {
    throw new CliError(connectFailure(report), ExitCode.Connection);
  }
  if (!plan.quiet) {
    stream.write(formatSummary(report, paint));
    if (out.builtin === true) {
      stream.write(
        paint.dim(
          "note: --broker builtin: mq's broker ran in this process; its CPU and memory count in mq bench's own\n",
        ),
      );
    }
  }
  const verdicts: AssertResult[] = plan.asserts.map((a) => checkAssertion(a, report));
  const failed = verdicts.filter((v) => !v.ok);
  if (!plan.quiet && verdicts.length > 0) stream.write(`\n${formatAsserts(verdicts, paint)}`);
  else if (failed.length > 0) process.stderr.write(formatAsserts(failed, colors(process.stderr)));
  const firstLoss = Object.keys(report.errors).find((k) => k.startsWith('connection lost'));
  const reason = o.message ?? firstLoss;
  const why = reason !== undefined ? ` (${escapeForTerminal(reason)})` : '';
  switch (out.merged === true ? 'finished' : o.stopReason) {
    case 'connections-lost':
      throw new CliError(`every connection was lost before the end of the run${why}`, ExitCode.Connection);
    case 'failed':
      throw new CliError(`the run failed${why}`, ExitCode.Failure);
    case 'aborted':
      throw new CliError('interrupted: the figures above are of what ran so far', ExitCode.Interrupted);
    case 'held':
      // --hold --duration stopped before its time by Ctrl-C.
      if (out.interrupted && report.settings.durationSec !== null) {
        throw new CliError('interrupted before the --duration was over', ExitCode.Interrupted);
      }
      break;
    case 'finished':
      break;
    default:
      throw new Error(`unknown stop reason ${o.stopReason}`);
  }
  if (failed.length > 0) {
    throw new CliError(
      `${failed.length === 1 ? 'assert' : `${failed.length} asserts`} not met: ${failed.map((f) => f.assertion.text).join(', ')}`,
      ExitCode.AssertFailed,
    );
  }
  return ExitCode.Ok;
}

/** The one line for a run that could not connect (with the two ways out when nothing listens). */
function connectFailure(r: BenchReport): string {
  const refused = Object.keys(r.errors).includes('ECONNREFUSED');
  if (refused && r.settings.transport !== 'unix') {
    return `nothing listens on ${escapeForTerminal(r.settings.target)} (connection refused): start a broker with \`mq broker\`, or run mq bench against its own with \`--broker builtin\``;
  }
  return escapeForTerminal(r.outcome.message ?? 'could not connect');
}

function title(r: BenchReport): string {
  return `mq bench ${r.settings.mode}: ${r.settings.target}, ${r.startedAt.replace('T', ' ').slice(0, 16)} UTC`;
}

/** Reads a report file: unreadable exit 6, not a report exit 4. */
export async function loadReport(file: string): Promise<BenchReport> {
  const { readReport, ReportFormatError } = await import('../bench/index.js');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new CliError(`cannot read ${file}: ${why}`, ExitCode.Failure);
  }
  try {
    return readReport(JSON.parse(text), file);
  } catch (err) {
    if (err instanceof SyntaxError)
      throw new CliError(`${file}: not JSON: ${err.message}`, ExitCode.Malformed);
    if (err instanceof ReportFormatError) throw new CliError(err.message, ExitCode.Malformed);
    throw err;
  }
}
