/**
 * `mq decode`: MQTT packet bytes (hex in any spelling, base64, raw, or a broker recording) into
 * fields, with every violation reported by byte offset and spec rule. Exit 4 on malformed input.
 */
import type { Command } from 'commander';
import { newCommand, run } from '../cli/command.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { safeJson } from '../cli/escape.js';
import { type InputFormat, type InputRecord, parseInput, stripCaptureHeaders } from '../cli/hex.js';
import { decodeRecords, formatItem, formatItemLine, itemToJson, iterateRecords } from '../cli/inspect.js';
import { parseMaxInput, readCommandInput, writeStdout } from '../cli/io.js';
import { colors, warn } from '../cli/output.js';
import { parseProtocolVersion } from '../cli/packet-json.js';
import type { ProtocolVersion } from '../protocol/types.js';

interface DecodeOpts {
  file?: string;
  base64?: boolean;
  raw?: boolean;
  protocolVersion: string;
  bytes?: boolean;
  json?: boolean;
  line?: boolean;
  maxInput?: string;
}

/**
 * A frame copied from Wireshark (link, IP and TCP headers first) is decoded from its TCP payload,
 * with a note on stderr; only when the bytes as given are not clean MQTT.
 */
function unwrapFrame(record: InputRecord, fixed: ProtocolVersion | undefined): InputRecord {
  if (record.client !== undefined || record.direction !== undefined) return record;
  const frame = stripCaptureHeaders(record.bytes);
  if (frame === undefined) return record;
  if (decodeRecords([record], fixed).every((i) => i.violations.length === 0)) return record;
  if (frame.payload.length === 0) {
    throw new CliError(
      `the input is a captured frame (${frame.layers}) whose TCP payload is empty: no MQTT bytes in it`,
      ExitCode.Malformed,
    );
  }
  warn(
    'decode',
    `the input is a captured frame: skipped ${frame.skipped} bytes of ${frame.layers} headers; byte offsets count from the TCP payload (${frame.payload.length} bytes)`,
  );
  return { ...record, bytes: frame.payload };
}

function parseVersionOption(value: string): ProtocolVersion | undefined {
  if (value.trim().toLowerCase() === 'auto') return undefined;
  const v = parseProtocolVersion(value);
  if (v === undefined) throw new UsageError(`-V: expected 3.1, 3.1.1, 5 or auto, got '${value}'`);
  return v;
}

/** The bytes as arguments, from -f FILE, or on stdin. */
function readInput(opts: DecodeOpts, args: string[]): Promise<Buffer | string> {
  if (opts.raw && args.length > 0 && opts.file === undefined) {
    throw new UsageError('--raw reads binary bytes from -f FILE or stdin, not from arguments');
  }
  return readCommandInput(
    args,
    opts.file,
    {
      both: 'give the bytes as arguments or with -f, not both',
      none: 'no input: give the bytes as arguments (mq decode 300d0004...), with -f FILE, or on stdin',
    },
    parseMaxInput(opts.maxInput),
  );
}

const EXAMPLES = `
Examples:
  mq decode 30 0d 00 04 74 65 73 74 68 65 6c 6c 6f 21 21    a PUBLISH, spaced hex
  mq decode 300d0004746573746865 6c6c6f2121                 Wireshark "hex stream", split anywhere
  mq decode '0x30,0x0d,0x00,0x04' ...                       C array style; \\x30\\x0d works too
  xxd capture.bin | mq decode                               hex dumps: offsets and ASCII columns are skipped
  mq decode -f frame.txt                                    Wireshark "Copy as Hex Dump": Ethernet/IP/TCP headers skipped
  mq decode --raw -f capture.bin                            binary bytes (several packets back to back)
  mq decode --base64 MAoABHRlc3RoZWxsbw==
  mq decode -V 3.1.1 90 03 00 01 00                         choose the version (default: auto)
  mq decode --bytes 82 09 00 01 00 00 03 61 2f 2b 01        byte map: offset, bytes, field, value
  mq decode --json 3003000161 | mq encode                   JSON out, and back to the same bytes
  mq decode -f traffic.ndjson --line                        a recording of mq broker --record, a line each

Versions (-V): 3.1, 3.1.1, 5 (also 31, 311, mqttv5) or auto: a CONNECT in the input sets the
version of what follows; before one, each packet is read as 5.0 and as 3.1.1 and the output says
which reading is valid, or that the bytes are ambiguous.

Secrets: a CONNECT's password and Authentication Data are shown by length only, "(7 bytes,
masked)", in the block, --line and --bytes views; --json keeps them, for mq encode to write back.
Strings from the bytes are shown with control characters escaped (\\x1b, \\n, \\u202e).

Input from -f or stdin is read up to --max-input (64 MiB by default, at most 1G): a larger input
is a usage error (exit 1), found without reading more than the limit (-f /dev/zero is refused).

Exit codes: 0 every packet valid, 1 usage error (bad hex, bad flag, input over --max-input),
4 malformed input: every violation is listed with its byte offset and spec rule id.`;

export function command(): Command {
  const cmd = newCommand('decode')
    .description(
      'Decode MQTT packet bytes into fields: type, flags, every field and property by spec name, reason codes by name. Several packets back to back are decoded one after the other.',
    )
    .argument('[hex...]', 'the bytes, as hex in any common spelling (arguments are joined)')
    .option('-f, --file <file>', "read the input from FILE ('-' for stdin)")
    .option('--base64', 'the input is base64')
    .option('--raw', 'the input is binary bytes (from -f FILE or stdin)')
    .option('-V, --protocol-version <version>', 'MQTT version: 3.1, 3.1.1, 5 or auto', 'auto')
    .option('--bytes', 'print an annotated byte map: offset, bytes, section, field, value')
    .option('--json', 'one JSON object per packet (mq encode reads it back)')
    .option('--line', 'one line per packet, as --trace shows them')
    .option('--max-input <size>', 'largest input read from -f or stdin: bytes, or with K, M, G (default 64M)')
    .addHelpText('after', EXAMPLES);

  return run<DecodeOpts>(cmd, async (opts, args) => {
    if (opts.raw && opts.base64) throw new UsageError('--raw and --base64 exclude each other');
    if ([opts.json, opts.bytes, opts.line].filter(Boolean).length > 1) {
      throw new UsageError('choose one of --json, --bytes and --line');
    }
    const fixed = parseVersionOption(opts.protocolVersion);
    const format: InputFormat = opts.raw ? 'raw' : opts.base64 ? 'base64' : 'hex';
    const input = await readInput(opts, args);
    let records = parseInput(input, format);
    if (records.every((r) => r.bytes.length === 0)) throw new UsageError('no bytes to decode');
    records = records.map((r) => unwrapFrame(r, fixed));

    const c = colors(process.stdout);
    const separator = opts.json || opts.line ? '\n' : '\n\n';
    let out = '';
    let total = 0;
    let bad = 0;
    let count = 0;
    for (const item of iterateRecords(records, fixed, { annotate: opts.bytes === true })) {
      total++;
      if (item.violations.length > 0) {
        bad++;
        count += item.violations.length;
      }
      if (total > 1) out += separator;
      if (opts.json) out += safeJson(JSON.stringify(itemToJson(item)));
      else if (opts.line) out += formatItemLine(item, c);
      else out += formatItem(item, opts.bytes === true, c);
      if (out.length > 65_536) {
        await writeStdout(out);
        out = '';
      }
    }
    await writeStdout(`${out}\n`);

    if (bad === 0) return ExitCode.Ok;
    warn(
      'decode',
      `malformed input: ${count} violation${count === 1 ? '' : 's'} in ${bad} of ${total} packet${total === 1 ? '' : 's'}`,
    );
    return ExitCode.Malformed;
  });
}
