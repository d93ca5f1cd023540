/**
 * The decode engine behind `mq decode` (and the proxy's and recordings' views): cuts input records
 * into packets, decodes each one, choosing the protocol version as a person would (a CONNECT sets it
 * for its client's stream; before one, 3.1.1 and 5.0 are both tried and the output says which
 * reading holds), and lists every violation with its byte offset in the whole input and its spec
 * rule. Then renders each item: a block of fields (formatItem), one line (formatItemLine), or JSON
 * (itemToJson).
 */
import { formatReasonCode, PACKET_TYPE_NAMES } from '../protocol/constants.js';
import { decode } from '../protocol/decode.js';
import { encode } from '../protocol/encode.js';
import { MalformedPacketError } from '../protocol/errors.js';
import { readFixedHeader } from '../protocol/framer.js';
import type { FieldNote, Packet, ProtocolVersion } from '../protocol/types.js';
import { escapeForTerminal as esc, safeJson } from './escape.js';
import type { InputRecord } from './hex.js';
import { packetToJson, versionLabel } from './packet-json.js';
import { formatByteMap, formatPacketFull, formatPacketLine, type Paint } from './render.js';

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

type FixedHeader = NonNullable<ReturnType<typeof readFixedHeader>>;

/** An item before it is numbered. */
type Item = Omit<DecodedItem, 'index'>;

/** Where an item starts in its stream, and its record when that names a client or direction. */
interface Origin {
  offset: number;
  meta: { record?: InputRecord };
}

/** The reading chosen for one packet, and what to tell a person about the choice. */
interface Reading {
  chosen: Attempt;
  versionSource: string;
  note?: string;
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
  const numbered = (item: Item): DecodedItem => {
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
    const at = (offset: number): Origin => ({ offset, meta });
    const laterInStream = (lastOfStream.get(streamKey) ?? ri) > ri;

    let offset = 0;
    while (offset < bytes.length) {
      let header: ReturnType<typeof readFixedHeader>;
      try {
        header = readFixedHeader(bytes, offset);
      } catch (err) {
        const version = fixed ?? state.version ?? 5;
        yield numbered(unframeableItem(bytes, at(offset), err, version));
        break;
      }
      const available = bytes.length - offset;
      if (header === undefined || header.totalLength > available) {
        if (laterInStream) {
          carry.set(streamKey, { bytes: bytes.subarray(offset), record });
          break;
        }
        yield numbered(
          incompleteItem(bytes.subarray(offset), at(offset), header, fixed ?? state.version ?? 5),
        );
        break;
      }
      const raw = bytes.subarray(offset, offset + header.totalLength);
      const where = { offset, record, nextIndex: count + 1 };
      const reading = chooseReading(raw, header, fixed, state, where);
      yield numbered(decodedItem(raw, at(offset), header, reading, options.annotate === true));
      offset += header.totalLength;
    }
  }
}

/** The item for bytes that cannot be cut into packets (a remaining length over 4 bytes): the rest of the input. */
function unframeableItem(bytes: Buffer, at: Origin, err: unknown, version: ProtocolVersion): Item {
  const { offset } = at;
  const e = err instanceof MalformedPacketError ? err : undefined;
  return {
    ...at.meta,
    offset,
    raw: bytes.subarray(offset),
    typeName: PACKET_TYPE_NAMES[(bytes[offset] ?? 0) >> 4],
    version,
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
  };
}

/**
 * The version to read one packet in: -V's, a CONNECT's own level (which then sets its stream's),
 * the stream's, or a guess between 5.0 and 3.1.1.
 */
function chooseReading(
  raw: Buffer,
  header: FixedHeader,
  fixed: ProtocolVersion | undefined,
  state: StreamState,
  where: { offset: number; record: InputRecord; nextIndex: number },
): Reading {
  if (fixed !== undefined) return { chosen: attempt(raw, fixed), versionSource: 'set by -V' };
  if (header.typeCode === 1) {
    const chosen = attempt(raw, 5); // a CONNECT carries its own level
    const level =
      chosen.packet?.type === 'CONNECT' ? chosen.packet.protocolVersion : safeLevel(raw, header.headerLength);
    if (level !== undefined) {
      chosen.version = level;
      state.version = level;
      state.source =
        where.record.client !== undefined
          ? `from client ${safeJson(JSON.stringify(where.record.client))}'s CONNECT`
          : `from the CONNECT at byte ${where.offset}`;
      state.guessedFrom = undefined;
    }
    return { chosen, versionSource: 'from its protocol level' };
  }
  if (state.version !== undefined && state.guessedFrom === undefined) {
    return { chosen: attempt(raw, state.version), versionSource: state.source ?? '' };
  }
  return guessVersion(raw, state, where.nextIndex);
}

/**
 * Reads the packet as 5.0 and as 3.1.1: the valid reading wins (and sets the stream's version until
 * a CONNECT says otherwise); when both or neither are valid, the output says so.
 */
function guessVersion(raw: Buffer, state: StreamState, index: number): Reading {
  const v5 = attempt(raw, 5);
  const v4 = attempt(raw, 4);
  const ok5 = badness(v5) === 0;
  const ok4 = badness(v4) === 0;
  const previous = state.version;
  let reading: Reading;
  if (ok5 && !ok4) {
    reading = { chosen: v5, versionSource: `guessed: valid only as 5.0; as 3.1.1: ${firstProblem(v4)}` };
  } else if (ok4 && !ok5) {
    reading = { chosen: v4, versionSource: `guessed: valid only as 3.1.1; as 5.0: ${firstProblem(v5)}` };
  } else if (ok4 && ok5) {
    const show = previous ?? 5;
    const chosen = show === 5 ? v5 : v4;
    if (sameReading(v4, v5)) {
      reading = { chosen, versionSource: 'guessed: reads the same in 3.1.1 and 5.0' };
    } else {
      reading = {
        chosen,
        versionSource: 'guessed',
        note:
          previous === undefined
            ? `ambiguous: valid as 3.1.1 and 5.0, showing ${versionLabel(show)}; use -V`
            : `ambiguous: valid as 3.1.1 and 5.0, showing ${versionLabel(show)} like packet #${state.guessedFrom}; use -V`,
      };
    }
  } else {
    const show = badness(v4) < badness(v5) ? v4 : v5;
    reading = {
      chosen: show,
      versionSource: 'guessed',
      note: `not valid as 3.1.1 nor as 5.0; showing the ${versionLabel(show.version)} reading; use -V to choose`,
    };
  }
  if (ok4 !== ok5) {
    state.version = reading.chosen.version;
    state.guessedFrom = index;
  }
  return reading;
}

/** The item for one whole packet in the chosen reading, with its violations and canonical-form note. */
function decodedItem(
  raw: Buffer,
  at: Origin,
  header: FixedHeader,
  reading: Reading,
  annotate: boolean,
): Item {
  const { offset } = at;
  let { chosen, note } = reading;
  // The byte map is kept for --bytes, and for malformed packets (the fields before the error).
  if (annotate || badness(chosen) > 0)
    chosen = { ...attempt(raw, chosen.version, true), version: chosen.version };
  const violations = chosen.errors.map((e) => violation(e, offset));
  if (chosen.fatal) violations.push(violation(chosen.fatal, offset));
  const item: Item = {
    ...at.meta,
    offset,
    raw,
    typeName: PACKET_TYPE_NAMES[header.typeCode] ?? `reserved type ${header.typeCode}`,
    version: chosen.version,
    versionSource: reading.versionSource,
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
  return item;
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
  at: Origin,
  header: FixedHeader | undefined,
  version: ProtocolVersion,
): Item {
  const { offset } = at;
  const typeName = PACKET_TYPE_NAMES[(raw[0] ?? 0) >> 4];
  const message =
    header === undefined
      ? `the input ends inside the fixed header (${raw.length} byte${raw.length === 1 ? '' : 's'}: ${raw.toString('hex')})`
      : `incomplete packet: the fixed header announces ${header.totalLength} bytes (remaining length ${header.remainingLength}), the input has ${raw.length}`;
  // Decode what is there, to show the fields before the end.
  const partial = header === undefined ? undefined : attempt(raw, version, true);
  const item: Item = {
    ...at.meta,
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
  if (r?.client !== undefined) parts.push(`client ${safeJson(JSON.stringify(r.client))}`);
  if (r?.direction !== undefined) parts.push(esc(r.direction));
  if (r?.time !== undefined) parts.push(esc(r.time));
  if (r?.line !== undefined) parts.push(`line ${r.line}`);
  parts.push(`at byte ${item.offset}`);
  parts.push(`${item.raw.length} byte${item.raw.length === 1 ? '' : 's'}`);
  return `#${item.index} ${parts.join(', ')}`;
}

function formatViolation(v: Violation, c: Paint): string {
  const rule = v.rule ? ` [${v.rule}]` : '';
  return `${c.red(`byte ${v.offset}:`)} ${esc(v.message)}${rule} ${c.dim(`(${formatReasonCode(v.reasonCode)})`)}`;
}

/** The human block for one item. */
export function formatItem(item: DecodedItem, showBytes: boolean, c: Paint): string {
  const lines: string[] = [];
  const label = item.packet?.type ?? item.typeName ?? 'packet';
  const status = item.incomplete ? ' (incomplete)' : item.packet === undefined ? ' (malformed)' : '';
  const version = item.versionSource
    ? `MQTT ${versionLabel(item.version)} (${esc(item.versionSource)})`
    : `MQTT ${versionLabel(item.version)}`;
  lines.push(`${c.bold(label)}${c.red(status)}  ${c.dim(`${where(item)}, ${version}`)}`);
  if (item.note) lines.push(`  ${c.yellow(`note: ${esc(item.note)}`)}`);
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
      ? `${esc(r.client)} ${esc(r.direction ?? '')} `
      : r?.direction !== undefined
        ? `${esc(r.direction)} `
        : '';
  const head = c.dim(`${r?.time !== undefined ? `${esc(r.time)} ` : ''}${who}@${item.offset}`);
  const body = item.packet
    ? formatPacketLine(item.packet, item.version, { colors: c })
    : `${c.bold(item.typeName ?? 'packet')} ${c.red(item.incomplete ? '(incomplete)' : '(malformed)')}`;
  const problems = item.violations.map((v) =>
    c.red(` !${v.rule ? ` [${v.rule}]` : ''} byte ${v.offset}: ${esc(v.message)}`),
  );
  const note = item.note !== undefined ? c.yellow(` (${esc(item.note)})`) : '';
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
