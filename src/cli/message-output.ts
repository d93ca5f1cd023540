/**
 * How `mq sub` and `mq req` print received messages:
 *
 *   auto    a TTY gets a readable coloured view (topic, QoS, retained marker, properties, pretty JSON
 *           payloads); a pipe or file gets `text`, like mosquitto_sub.
 *   text    mosquitto_sub's output: the payload, or `topic payload` with -v (an empty payload prints
 *           nothing, or `topic (null)` with -v); a newline after each unless -N. -F FORMAT wins.
 *   json    one indented JSON object per message;  ndjson  one JSON object per line.
 *   hex / base64   the payload encoded (with -v: `topic <encoded>`), one per line.
 *   raw     the payload bytes exactly, nothing added.
 *
 * JSON is always valid and binary-safe: `payload` when the payload is UTF-8, else `payload_base64`,
 * with `encoding` saying which; topic, qos, retain, dup, packetId, every v5 property and `ts`, an
 * ISO 8601 UTC timestamp with microseconds.
 *
 * On a terminal every string from the network (topic, payload, properties) is escaped (escape.ts):
 * a publisher cannot drive the terminal. On a pipe or a file the text modes are byte-exact, as
 * mosquitto_sub's (the output is data). `raw` is never escaped; JSON is always valid JSON whose
 * strings are escaped (safeJson).
 *
 * A closed stdout pipe (`mq sub ... | head -1`) is not an error: `broken` turns true and later
 * messages are dropped; the command then ends quietly.
 */
import { isUtf8 } from 'node:buffer';
import { type Command, Option } from 'commander';
import type { Properties } from '../protocol/types.js';
import { UsageError } from './errors.js';
import { escapeBytesForTerminal, escapeForTerminal, safeJson } from './escape.js';
import {
  compileFormat,
  type Formatter,
  formatProblem,
  isoMicros,
  type MessageView,
  type Stamp,
} from './format.js';
import { colors } from './output.js';

export const OUTPUT_MODES = ['auto', 'text', 'json', 'ndjson', 'hex', 'base64', 'raw'] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

export interface OutputOptions {
  mode: OutputMode;
  /** -v: topic and payload. */
  verbose: boolean;
  /** false with -N: no newline after each message. */
  eol: boolean;
  /** -F: mosquitto_sub's format string (text modes only). */
  format?: string;
}

/** A writable like process.stdout (tests pass a fake). */
export interface OutputStream {
  write(chunk: Buffer | string): boolean;
  on(event: 'error', listener: (err: Error) => void): unknown;
  isTTY?: boolean;
}

/** A binary value as JSON: the UTF-8 text, or base64, with the encoding named. */
function binaryJson(bytes: Buffer): { value: string; encoding: 'utf8' | 'base64' } {
  return isUtf8(bytes)
    ? { value: bytes.toString('utf8'), encoding: 'utf8' }
    : { value: bytes.toString('base64'), encoding: 'base64' };
}

/** Every v5 property under its camelCase name; binary ones with a `...Encoding` companion. */
export function propertiesJson(props: Properties): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(props) as (keyof Properties)[]) {
    const value = props[key];
    if (value === undefined) continue;
    if (Buffer.isBuffer(value)) {
      const b = binaryJson(value);
      out[key] = b.value;
      out[`${key}Encoding`] = b.encoding;
    } else if (Array.isArray(value)) {
      out[key] = value.map((v) => (Array.isArray(v) ? [...v] : v));
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The JSON object mq prints for one message (`--output json|ndjson`, `--json`). */
export function messageJson(m: MessageView, stamp: Stamp): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ts: isoMicros(stamp),
    topic: m.topic,
    qos: m.qos,
    retain: m.retain,
    dup: m.dup ?? false,
  };
  if (m.packetId !== undefined) out.packetId = m.packetId;
  if (m.properties !== undefined) {
    const props = propertiesJson(m.properties);
    if (Object.keys(props).length > 0) out.properties = props;
  }
  out.size = m.payload.length;
  const b = binaryJson(m.payload);
  out.encoding = b.encoding;
  if (b.encoding === 'utf8') out.payload = b.value;
  else out.payload_base64 = b.value;
  return out;
}

const NL = Buffer.from('\n');
const SP = Buffer.from(' ');
const NULL_TEXT = Buffer.from('(null)');

/** Prints messages in one of the modes above to `out`; diagnostics (e.g. %J on non-JSON) to `warn`. */
export class MessageOutput {
  /** True once the reader of stdout went away (EPIPE): nothing more is written. */
  broken = false;
  private readonly formatter: Formatter | undefined;
  private readonly mode: Exclude<OutputMode, 'auto'> | 'tty';
  private readonly brokenListeners: (() => void)[] = [];
  /** stdout is a terminal: what came from the network is escaped. */
  private readonly terminal: boolean;
  private readonly warn: (message: string) => void;

  constructor(
    private readonly options: OutputOptions,
    private readonly out: OutputStream = process.stdout,
    warn: (message: string) => void = (m) => process.stderr.write(`mq: ${m}\n`),
  ) {
    this.terminal = out.isTTY === true;
    this.warn = (m) => warn(escapeForTerminal(m));
    if (options.format !== undefined)
      this.formatter = compileFormat(options.format, { escape: this.terminal });
    this.mode =
      options.mode === 'auto'
        ? options.format === undefined && out.isTTY === true
          ? 'tty'
          : 'text'
        : options.mode;
    out.on('error', (err: Error) => {
      const code = (err as { code?: string }).code;
      if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') {
        this.markBroken();
        return;
      }
      this.warn(`cannot write to stdout: ${err.message}`);
      this.markBroken();
    });
  }

  /** Called once when the output pipe closes. */
  onBroken(listener: () => void): void {
    if (this.broken) listener();
    else this.brokenListeners.push(listener);
  }

  private markBroken(): void {
    if (this.broken) return;
    this.broken = true;
    for (const l of this.brokenListeners.splice(0)) l();
  }

  private emit(chunk: Buffer | string): void {
    if (this.broken) return;
    try {
      this.out.write(chunk);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') this.markBroken();
      else throw err;
    }
  }

  write(m: MessageView, stamp: Stamp): void {
    if (this.broken) return;
    const eol = this.options.eol;
    if (this.formatter !== undefined && (this.mode === 'text' || this.mode === 'tty')) {
      const { bytes, warnings } = this.formatter(m, stamp);
      for (const w of warnings) this.warn(w);
      this.emit(eol ? Buffer.concat([bytes, NL]) : bytes);
      return;
    }
    switch (this.mode) {
      case 'text': {
        // mosquitto_sub: an empty payload prints nothing, or `topic (null)` with -v.
        const payload = this.terminal
          ? Buffer.from(escapeBytesForTerminal(m.payload, { keepLayout: true }))
          : m.payload;
        if (this.options.verbose) {
          const topic = Buffer.from(this.shownTopic(m.topic));
          if (m.payload.length === 0) {
            if (eol) this.emit(Buffer.concat([topic, SP, NULL_TEXT, NL]));
          } else {
            const parts = [topic, SP, payload];
            if (eol) parts.push(NL);
            this.emit(Buffer.concat(parts));
          }
        } else if (m.payload.length > 0) {
          this.emit(eol ? Buffer.concat([payload, NL]) : payload);
        }
        return;
      }
      case 'hex':
      case 'base64': {
        const encoded = m.payload.toString(this.mode);
        const line = this.options.verbose ? `${this.shownTopic(m.topic)} ${encoded}` : encoded;
        this.emit(eol ? `${line}\n` : line);
        return;
      }
      case 'raw':
        this.emit(m.payload);
        return;
      case 'json':
        this.emit(`${safeJson(JSON.stringify(messageJson(m, stamp), null, 2))}\n`);
        return;
      case 'ndjson':
        this.emit(`${safeJson(JSON.stringify(messageJson(m, stamp)))}\n`);
        return;
      case 'tty':
        this.emit(this.ttyView(m, stamp));
        return;
      default: {
        const never: never = this.mode;
        throw new Error(`unknown output mode ${String(never)}`);
      }
    }
  }

  /** The topic as printed: escaped on a terminal, as it is on a pipe. */
  private shownTopic(topic: string): string {
    return this.terminal ? escapeForTerminal(topic) : topic;
  }

  /** The coloured view for people: a header line, properties, then the payload (pretty JSON). */
  private ttyView(m: MessageView, stamp: Stamp): string {
    const c = colors(this.out as NodeJS.WriteStream);
    const time = new Date(stamp.sec * 1000 + Math.floor(stamp.nsec / 1e6));
    const hh = (n: number) => String(n).padStart(2, '0');
    const clock = `${hh(time.getHours())}:${hh(time.getMinutes())}:${hh(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')}`;
    const header = [c.dim(clock), c.bold.cyan(escapeForTerminal(m.topic)), c.dim(`qos${m.qos}`)];
    if (m.retain) header.push(c.yellow('retained'));
    if (m.dup) header.push(c.magenta('dup'));
    header.push(c.dim(`${m.payload.length} B`));
    const lines = [header.join(' ')];
    const props = m.properties;
    if (props !== undefined) {
      const shown: string[] = [];
      for (const [key, value] of Object.entries(propertiesJson(props))) {
        if (key.endsWith('Encoding')) continue;
        if (key === 'userProperties' && Array.isArray(value)) {
          for (const pair of value as [string, string][]) shown.push(`${pair[0]}=${pair[1]}`);
        } else {
          shown.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
        }
      }
      if (shown.length > 0) lines.push(`  ${c.dim(escapeForTerminal(shown.join('  ')))}`);
    }
    lines.push(...this.ttyPayload(m.payload, c).map((l) => `  ${l}`));
    return `${lines.join('\n')}\n`;
  }

  private ttyPayload(payload: Buffer, c: ReturnType<typeof colors>): string[] {
    if (payload.length === 0) return [c.dim('(empty)')];
    if (!isUtf8(payload)) {
      const hex = payload
        .subarray(0, 256)
        .toString('hex')
        .replace(/(..)(?!$)/g, '$1 ');
      return [c.dim(`binary: ${hex}${payload.length > 256 ? ' ...' : ''}`)];
    }
    const text = payload.toString('utf8');
    const trimmed = text.trim();
    if ((trimmed.startsWith('{') || trimmed.startsWith('[')) && trimmed.length > 1) {
      try {
        return colorJson(safeJson(JSON.stringify(JSON.parse(trimmed), null, 2)), c).split('\n');
      } catch {
        // not JSON after all: print as text
      }
    }
    // Control characters would garble the terminal: show them escaped (lines and tabs stay).
    return escapeForTerminal(text, { keepLayout: true }).split('\n');
  }
}

/** Colours keys, strings and literals of pretty-printed JSON (no-op without colour). */
function colorJson(json: string, c: ReturnType<typeof colors>): string {
  if (c.level === 0) return json;
  return json.replace(
    /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    (
      match,
      str: string | undefined,
      colon: string | undefined,
      lit: string | undefined,
      num: string | undefined,
    ) => {
      if (str !== undefined) return colon !== undefined ? `${c.blue(str)}${colon}` : c.green(str);
      if (lit !== undefined) return c.magenta(lit);
      if (num !== undefined) return c.yellow(num);
      return match;
    },
  );
}

// --- the output flags of sub and req --------------------------------------------------------------

/** What commander hands over for -v, -N, -F, --output (and --json, a connection flag). */
export interface OutputFlags {
  verbose?: boolean;
  eol?: boolean;
  format?: string;
  output?: string;
  json?: boolean;
}

/** Adds -v, -N, -F, --output to sub and req. */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-v, --verbose', 'print the topic before each payload'))
    .addOption(new Option('-N, --no-eol', 'no newline after each message'))
    .addOption(
      new Option(
        '-F, --format <format>',
        "mosquitto_sub's format: %t topic %p payload %q %r %m %l %x %X %j %J %I %U %A %C %D %E %F %P %R %S, @ time codes, \\n escapes",
      ),
    )
    .addOption(
      new Option(
        '--output <mode>',
        'text (mosquitto style), json, ndjson, hex, base64, raw (default: coloured view on a terminal, text otherwise)',
      ),
    );
}

/** The output mode from --output / --json / -F, checked for conflicts. */
function pickOutputMode(opts: OutputFlags): OutputMode {
  if (opts.format !== undefined) {
    const problem = formatProblem(opts.format);
    if (problem !== undefined) throw new UsageError(`-F: ${problem}`);
  }
  let mode: OutputMode = 'auto';
  if (opts.output !== undefined) {
    if (!(OUTPUT_MODES as readonly string[]).includes(opts.output)) {
      throw new UsageError(
        `--output: '${opts.output}' is not one of ${OUTPUT_MODES.filter((m) => m !== 'auto').join(', ')}`,
      );
    }
    mode = opts.output as OutputMode;
  }
  if (opts.json === true) {
    if (opts.output !== undefined && opts.output !== 'ndjson' && opts.output !== 'json') {
      throw new UsageError(
        `--json and --output ${opts.output} cannot be combined (--json is --output ndjson)`,
      );
    }
    if (opts.output === undefined) mode = 'ndjson';
  }
  if (opts.format !== undefined && mode !== 'auto' && mode !== 'text') {
    throw new UsageError(`-F and --output ${mode} cannot be combined (-F is text output)`);
  }
  return mode;
}

/** The output flags, checked; open() makes the MessageOutput on stdout once the command is ready. */
export interface StdoutOutput {
  /** The MessageOutput on stdout; its notes go to stderr unless `quiet`. */
  open(quiet: boolean): MessageOutput;
}

/** Checks -F, --output and --json now (a mistake is a UsageError before anything connects). */
export function outputFor(flags: OutputFlags): StdoutOutput {
  const mode = pickOutputMode(flags);
  const options = { mode, verbose: flags.verbose === true, eol: flags.eol !== false, format: flags.format };
  return {
    open: (quiet) =>
      new MessageOutput(options, process.stdout, (m) => {
        if (!quiet) process.stderr.write(`mq: ${m}\n`);
      }),
  };
}
