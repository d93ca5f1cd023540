/**
 * `mq decode`: MQTT packet bytes (hex in any spelling, base64, raw, or a broker recording) into
 * fields, with every violation reported by byte offset and spec rule. Exit 4 on malformed input.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { newCommand, run } from '../cli/command.js';
import { CliError, ExitCode, UsageError } from '../cli/errors.js';
import { type InputFormat, type InputRecord, parseInput, stripCaptureHeaders } from '../cli/hex.js';
import { readStdin, writeStdout } from '../cli/io.js';
import { colors, warn } from '../cli/output.js';
import { packetToJson, parseProtocolVersion, versionLabel } from '../cli/packet-json.js';
import { formatByteMap, formatPacketFull, formatPacketLine, type Paint } from '../cli/render.js';
import { formatReasonCode, PACKET_TYPE_NAMES } from '../protocol/constants.js';
import { decode } from '../protocol/decode.js';
import { encode } from '../protocol/encode.js';
import { MalformedPacketError } from '../protocol/errors.js';
import { readFixedHeader } from '../protocol/framer.js';
import type { FieldNote, Packet, ProtocolVersion } from '../protocol/types.js';

interface DecodeOpts {
  file?: string;
  base64?: boolean;
  raw?: boolean;
  protocolVersion: string;
  bytes?: boolean;
  json?: boolean;
  line?: boolean;
}

/** One violation, with its offset in the whole input. */
export interface Violation {
  offset: number;
  message: string;
  rule?: string;
  reasonCode: number;
}

/** One packet (or the remains of one) found in the input. */
export interface DecodedItem {
  /** 1-based count in the output. */
  index: number;
  /** Offset of the first byte in the stream it came from. */
  offset: number;
  raw: Buffer;
  record?: InputRecord;
  typeName?: string;
  version: ProtocolVersion;
  /** How the version was chosen, for people. */
  versionSource: string;
  /** An ambiguity or doubt about the version, for people. */
  note?: string;
  packet?: Packet;
  remainingLength?: number;
  violations: Violation[];
  notes: FieldNote[];
  /** The input ended inside this packet. */
  incomplete: boolean;
}

interface Attempt {
  version: ProtocolVersion;
  packet?: Packet;
  errors: MalformedPacketError[];
  notes: FieldNote[];
  /** A structural error stopped the decode. */
  fatal?: MalformedPacketError;
}

/** Decodes in collect mode; with `annotate` also the byte map (allocates: only when it is shown). */
function attempt(bytes: Buffer, version: ProtocolVersion, annotate = false): Attempt {
  const errors: MalformedPacketError[] = [];
  const notes: FieldNote[] = [];
  try {
    const packet = decode(bytes, version, annotate ? { errors, annotate: notes } : { errors });
    return { version, packet, errors, notes };
  } catch (err) {
    if (err instanceof MalformedPacketError) return { version, errors, notes, fatal: err };
    // The codec must only throw typed errors; anything else is reported, not crashed on.
    const message = err instanceof Error ? err.message : String(err);
    return {
      version,
      errors,
      notes,
      fatal: new MalformedPacketError(`decoder failure: ${message}`, { offset: 0 }),
    };
  }
}

/** Why a reading failed, for the version line: its first violation. */
function firstProblem(a: Attempt): string {
  const e = a.errors[0] ?? a.fatal;
  return e === undefined ? 'invalid' : `${e.detail} at byte ${e.offset}`;
}

function badness(a: Attempt): number {
  return (a.fatal ? 1000 : 0) + a.errors.length;
}

function sameReading(a: Attempt, b: Attempt): boolean {
  return JSON.stringify(a.packet) === JSON.stringify(b.packet);
}

/** The protocol level byte of a CONNECT, read without decoding (to follow a malformed CONNECT too). */
function connectLevel(bytes: Buffer, headerLength: number): ProtocolVersion | undefined {
  const nameLength = bytes.readUInt16BE(headerLength);
  const level = bytes[headerLength + 2 + nameLength];
  return level === 3 || level === 4 || level === 5 ? level : undefined;
}

interface StreamState {
  /** The version a CONNECT set, or an earlier unambiguous guess. */
  version?: ProtocolVersion;
  source?: string;
  guessedFrom?: number;
}

/**
 * Cuts every record into packets and decodes each: `fixed` is the -V version, or undefined for
 * auto (a CONNECT sets the version of its client's stream; before one, both 3.1.1 and 5.0 are
 * tried). Bytes of a packet split across records of the same client and direction are joined.
 */
export function decodeRecords(
  records: readonly InputRecord[],
  fixed: ProtocolVersion | undefined,
  options: { annotate?: boolean } = {},
): DecodedItem[] {
  return [...iterateRecords(records, fixed, options)];
}

/** decodeRecords one item at a time (a long recording is rendered without holding every packet). */
export function* iterateRecords(
  records: readonly InputRecord[],
  fixed: ProtocolVersion | undefined,
  options: { annotate?: boolean } = {},
): Generator<DecodedItem> {
  let count = 0;
  const states = new Map<string, StreamState>();
  const carry = new Map<string, { bytes: Buffer; record: InputRecord }>();
  const numbered = (item: Omit<DecodedItem, 'index'>): DecodedItem => {
    count++;
    (item as DecodedItem).index = count;
    return item as DecodedItem;
  };

  const keyOf = (r: InputRecord): string => `${r.client ?? ''}\u0000${r.direction ?? ''}`;
  const lastOfStream = new Map<string, number>();
  for (const [i, r] of records.entries()) lastOfStream.set(keyOf(r), i);

  for (let ri = 0; ri < records.length; ri++) {
    const record = records[ri] as InputRecord;
    const clientKey = record.client ?? '';
    const streamKey = keyOf(record);
    let state = states.get(clientKey);
    if (!state) {
      state = {};
      states.set(clientKey, state);
    }
    const held = carry.get(streamKey);
    carry.delete(streamKey);
    const bytes = held ? Buffer.concat([held.bytes, record.bytes]) : record.bytes;
    const meta = record.client !== undefined || record.direction !== undefined ? { record } : {};
    const laterInStream = (lastOfStream.get(streamKey) ?? ri) > ri;

    let offset = 0;
    while (offset < bytes.length) {
      let header: ReturnType<typeof readFixedHeader>;
      try {
        header = readFixedHeader(bytes, offset);
      } catch (err) {
        const e = err instanceof MalformedPacketError ? err : undefined;
        yield numbered({
          ...meta,
          offset,
          raw: bytes.subarray(offset),
          typeName: PACKET_TYPE_NAMES[(bytes[offset] ?? 0) >> 4],
          version: fixed ?? state.version ?? 5,
          versionSource: '',
          violations: [
            {
              offset: e ? e.offset : offset + 1,
              message: `${e?.detail ?? 'remaining length takes more than 4 bytes'}; the rest of the input cannot be cut into packets`,
              rule: 'MQTT-1.5.5-1',
              reasonCode: 0x81,
            },
          ],
          notes: [],
          incomplete: false,
        });
        offset = bytes.length;
        break;
      }
      const available = bytes.length - offset;
      if (header === undefined || header.totalLength > available) {
        if (laterInStream) {
          carry.set(streamKey, { bytes: bytes.subarray(offset), record });
          break;
        }
        yield numbered(
          incompleteItem(bytes.subarray(offset), offset, header, fixed ?? state.version ?? 5, meta),
        );
        break;
      }
      const raw = bytes.subarray(offset, offset + header.totalLength);
      const typeName = PACKET_TYPE_NAMES[header.typeCode];
      let chosen: Attempt;
      let versionSource: string;
      let note: string | undefined;
      if (fixed !== undefined) {
        chosen = attempt(raw, fixed);
        versionSource = 'set by -V';
      } else if (header.typeCode === 1) {
        chosen = attempt(raw, 5); // a CONNECT carries its own level
        const level =
          chosen.packet?.type === 'CONNECT'
            ? chosen.packet.protocolVersion
            : safeLevel(raw, header.headerLength);
        if (level !== undefined) {
          chosen.version = level;
          state.version = level;
          state.source =
            record.client !== undefined
              ? `from client ${JSON.stringify(record.client)}'s CONNECT`
              : `from the CONNECT at byte ${offset}`;
          state.guessedFrom = undefined;
        }
        versionSource = 'from its protocol level';
      } else if (state.version !== undefined && state.guessedFrom === undefined) {
        chosen = attempt(raw, state.version);
        versionSource = state.source ?? '';
      } else {
        const v5 = attempt(raw, 5);
        const v4 = attempt(raw, 4);
        const ok5 = badness(v5) === 0;
        const ok4 = badness(v4) === 0;
        const previous = state.version;
        if (ok5 && !ok4) {
          chosen = v5;
          versionSource = `guessed: valid only as 5.0; as 3.1.1: ${firstProblem(v4)}`;
        } else if (ok4 && !ok5) {
          chosen = v4;
          versionSource = `guessed: valid only as 3.1.1; as 5.0: ${firstProblem(v5)}`;
        } else if (ok4 && ok5) {
          const show = previous ?? 5;
          chosen = show === 5 ? v5 : v4;
          if (sameReading(v4, v5)) {
            versionSource = 'guessed: reads the same in 3.1.1 and 5.0';
          } else {
            versionSource = 'guessed';
            note =
              previous === undefined
                ? `ambiguous: valid as 3.1.1 and 5.0, showing ${versionLabel(show)}; use -V`
                : `ambiguous: valid as 3.1.1 and 5.0, showing ${versionLabel(show)} like packet #${state.guessedFrom}; use -V`;
          }
        } else {
          const show = badness(v4) < badness(v5) ? v4 : v5;
          chosen = show;
          versionSource = 'guessed';
          note = `not valid as 3.1.1 nor as 5.0; showing the ${versionLabel(show.version)} reading; use -V to choose`;
        }
        if (ok4 !== ok5) {
          state.version = chosen.version;
          state.guessedFrom = count + 1;
        }
      }
      // The byte map is kept for --bytes, and for malformed packets (the fields before the error).
      if (options.annotate || badness(chosen) > 0)
        chosen = { ...attempt(raw, chosen.version, true), version: chosen.version };
      const violations = chosen.errors.map((e) => violation(e, offset));
      if (chosen.fatal) violations.push(violation(chosen.fatal, offset));
      const item: Omit<DecodedItem, 'index'> = {
        ...meta,
        offset,
        raw,
        typeName: typeName ?? `reserved type ${header.typeCode}`,
        version: chosen.version,
        versionSource,
        violations,
        notes: chosen.notes,
        remainingLength: header.remainingLength,
        incomplete: false,
      };
      if (chosen.packet) {
        item.packet = chosen.packet;
        if (violations.length === 0) {
          const canonical = reencoded(chosen.packet, chosen.version, raw);
          if (canonical !== undefined) {
            const why = `not in canonical form: mq encode writes these fields as ${canonical}`;
            note = note === undefined ? why : `${note}; ${why}`;
          }
        }
      }
      if (note !== undefined) item.note = note;
      yield numbered(item);
      offset += header.totalLength;
    }
  }
}

/**
 * The bytes the encoder writes for `packet`, as spaced hex, when they differ from `raw` (an explicit
 * Success reason code, an empty property list, properties out of table order...); else undefined.
 */
function reencoded(packet: Packet, version: ProtocolVersion, raw: Buffer): string | undefined {
  try {
    const again = encode(packet, version);
    if (again.equals(raw)) return undefined;
    return (again.toString('hex').match(/../g) ?? []).join(' ');
  } catch (err) {
    return `nothing (${err instanceof Error ? err.message : String(err)})`;
  }
}

function safeLevel(raw: Buffer, headerLength: number): ProtocolVersion | undefined {
  try {
    return connectLevel(raw, headerLength);
  } catch {
    return undefined;
  }
}

function violation(e: MalformedPacketError, base: number): Violation {
  const v: Violation = { offset: base + e.offset, message: e.detail, reasonCode: e.reasonCode };
  if (e.rule !== undefined) v.rule = e.rule;
  return v;
}

function incompleteItem(
  raw: Buffer,
  offset: number,
  header: ReturnType<typeof readFixedHeader>,
  version: ProtocolVersion,
  meta: { record?: InputRecord },
): Omit<DecodedItem, 'index'> {
  const typeName = PACKET_TYPE_NAMES[(raw[0] ?? 0) >> 4];
  const message =
    header === undefined
      ? `the input ends inside the fixed header (${raw.length} byte${raw.length === 1 ? '' : 's'}: ${raw.toString('hex')})`
      : `incomplete packet: the fixed header announces ${header.totalLength} bytes (remaining length ${header.remainingLength}), the input has ${raw.length}`;
  // Decode what is there, to show the fields before the end.
  const partial = header === undefined ? undefined : attempt(raw, version, true);
  const item: Omit<DecodedItem, 'index'> = {
    ...meta,
    offset,
    raw,
    version,
    versionSource: '',
    violations: [{ offset: offset + raw.length, message, reasonCode: 0x81 }],
    notes: partial?.notes ?? [],
    incomplete: true,
  };
  if (typeName !== undefined) item.typeName = typeName;
  if (header !== undefined) item.remainingLength = header.remainingLength;
  return item;
}

// ---------------------------------------------------------------------------------------------
// Output

function where(item: DecodedItem): string {
  const parts: string[] = [];
  const r = item.record;
  if (r?.client !== undefined) parts.push(`client ${JSON.stringify(r.client)}`);
  if (r?.direction !== undefined) parts.push(r.direction);
  if (r?.time !== undefined) parts.push(r.time);
  if (r?.line !== undefined) parts.push(`line ${r.line}`);
  parts.push(`at byte ${item.offset}`);
  parts.push(`${item.raw.length} byte${item.raw.length === 1 ? '' : 's'}`);
  return `#${item.index} ${parts.join(', ')}`;
}

function formatViolation(v: Violation, c: Paint): string {
  const rule = v.rule ? ` [${v.rule}]` : '';
  return `${c.red(`byte ${v.offset}:`)} ${v.message}${rule} ${c.dim(`(${formatReasonCode(v.reasonCode)})`)}`;
}

/** The human block for one item. */
export function formatItem(item: DecodedItem, showBytes: boolean, c: Paint): string {
  const lines: string[] = [];
  const label = item.packet?.type ?? item.typeName ?? 'packet';
  const status = item.incomplete ? ' (incomplete)' : item.packet === undefined ? ' (malformed)' : '';
  const version = item.versionSource
    ? `MQTT ${versionLabel(item.version)} (${item.versionSource})`
    : `MQTT ${versionLabel(item.version)}`;
  lines.push(`${c.bold(label)}${c.red(status)}  ${c.dim(`${where(item)}, ${version}`)}`);
  if (item.note) lines.push(`  ${c.yellow(`note: ${item.note}`)}`);
  if (showBytes) {
    const map = formatByteMap(item.notes, item.raw, { colors: c });
    lines.push(...map.split('\n').map((l) => `  ${l}`));
  } else if (item.packet) {
    const block = formatPacketFull(item.packet, item.version, {
      colors: c,
      flags: (item.raw[0] ?? 0) & 0x0f,
      ...(item.remainingLength !== undefined ? { remainingLength: item.remainingLength } : {}),
    });
    lines.push(...block.split('\n').slice(1));
  } else if (item.notes.length > 0) {
    lines.push('  decoded before the error:');
    const map = formatByteMap(item.notes, item.raw, { colors: c });
    lines.push(...map.split('\n').map((l) => `    ${l}`));
  }
  if (item.violations.length > 0) {
    const n = item.violations.length;
    lines.push(`  ${c.red(`${n} violation${n === 1 ? '' : 's'}:`)}`);
    for (const v of item.violations) lines.push(`    ${formatViolation(v, c)}`);
  }
  return lines.join('\n');
}

/** One line for one item (decode --line): where, then the packet as --trace shows it, then violations. */
export function formatItemLine(item: DecodedItem, c: Paint): string {
  const r = item.record;
  const who =
    r?.client !== undefined
      ? `${r.client} ${r.direction ?? ''} `
      : r?.direction !== undefined
        ? `${r.direction} `
        : '';
  const head = c.dim(`${r?.time !== undefined ? `${r.time} ` : ''}${who}@${item.offset}`);
  const body = item.packet
    ? formatPacketLine(item.packet, item.version, { colors: c })
    : `${c.bold(item.typeName ?? 'packet')} ${c.red(item.incomplete ? '(incomplete)' : '(malformed)')}`;
  const problems = item.violations.map((v) =>
    c.red(` !${v.rule ? ` [${v.rule}]` : ''} byte ${v.offset}: ${v.message}`),
  );
  const note = item.note !== undefined ? c.yellow(` (${item.note})`) : '';
  return `${head} ${body}${problems.join('')}${note}`;
}

/** The JSON object for one item (decode --json). */
export function itemToJson(item: DecodedItem): Record<string, unknown> {
  const out: Record<string, unknown> = item.packet
    ? packetToJson(item.packet, {
        version: item.version,
        ...(item.remainingLength !== undefined ? { remainingLength: item.remainingLength } : {}),
      })
    : {
        type: item.typeName ?? null,
        version: versionLabel(item.version),
        ...(item.remainingLength !== undefined ? { remainingLength: item.remainingLength } : {}),
      };
  out.offset = item.offset;
  out.length = item.raw.length;
  const r = item.record;
  if (r?.client !== undefined) out.client = r.client;
  if (r?.direction !== undefined) out.direction = r.direction;
  if (r?.time !== undefined) out.time = r.time;
  if (item.note !== undefined) out.note = item.note;
  if (item.violations.length > 0) {
    if (item.incomplete) out.incomplete = true;
    out.errors = item.violations.map((v) => ({
      offset: v.offset,
      message: v.message,
      ...(v.rule !== undefined ? { rule: v.rule } : {}),
      reasonCode: v.reasonCode,
    }));
    if (!item.packet) {
      out.fields = item.notes.map((n) => ({ ...n, offset: item.offset + n.offset }));
      out.hex = item.raw.toString('hex');
    }
  }
  return out;
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

async function readInput(opts: DecodeOpts, args: string[]): Promise<Buffer | string> {
  if (args.length > 0 && opts.file !== undefined)
    throw new UsageError('give the bytes as arguments or with -f, not both');
  if (args.length > 0) {
    if (opts.raw) throw new UsageError('--raw reads binary bytes from -f FILE or stdin, not from arguments');
    return args.join(' ');
  }
  if (opts.file !== undefined && opts.file !== '-') {
    try {
      return readFileSync(opts.file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(
        `cannot read ${opts.file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
        ExitCode.Usage,
      );
    }
  }
  if (process.stdin.isTTY) {
    throw new UsageError(
      'no input: give the bytes as arguments (mq decode 300d0004...), with -f FILE, or on stdin',
    );
  }
  return readStdin();
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

Exit codes: 0 every packet valid, 1 usage error (bad hex, bad flag), 4 malformed input: every
violation is listed with its byte offset and spec rule id.`;

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
      if (opts.json) out += JSON.stringify(itemToJson(item));
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
