/**
 * stdin and stdout for commands whose input or output is data; one-line notes on stderr. Every
 * read of a file or of stdin is bounded (a Limit): `-m @/dev/zero` is refused once the limit is
 * passed, instead of reading until memory runs out.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from './errors.js';
import { escapeForTerminal } from './escape.js';

/** The most bytes a value or an input may have, and what that limit is, for the message. */
export interface Limit {
  bytes: number;
  /** What the limit is, for the message: "... is larger than 268435455 bytes (the largest MQTT payload)". */
  why: string;
}

/** A message's payload: the largest remaining length MQTT can express (MQTT 5.0 §1.5.5). */
export const PAYLOAD_LIMIT: Limit = { bytes: 268_435_455, why: 'the largest MQTT payload' };
/** Correlation data, authentication data: Binary Data has a two-byte length (MQTT 5.0 §1.5.6). */
export const BINARY_PROPERTY_LIMIT: Limit = { bytes: 65_535, why: 'the largest MQTT binary value' };
/** A PEM file (--cafile, --cert, --key): far more than any certificate bundle. */
export const PEM_LIMIT: Limit = { bytes: 16 * 1024 * 1024, why: "mq's limit for a PEM file" };
/** The profiles file. */
export const CONFIG_LIMIT: Limit = { bytes: 1024 * 1024, why: "mq's limit for the config file" };
/** The input of decode and encode, unless --max-input says otherwise. */
export const DECODE_INPUT_LIMIT: Limit = {
  bytes: 64 * 1024 * 1024,
  why: 'the --max-input limit, default 64 MiB',
};

function tooBig(what: string, source: string, limit: Limit): UsageError {
  return new UsageError(`${what}: ${source} is larger than ${limit.bytes} bytes (${limit.why})`);
}

/** Why a file cannot be read, in words. */
function readProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return err instanceof Error ? err.message : String(err);
}

/**
 * A file's bytes, at most `limit`: a regular file is refused from its size, anything else (a
 * device, a pipe) once limit + 1 bytes were read. Every failure is a UsageError naming `what`.
 */
export function readFileBounded(file: string, limit: Limit, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new UsageError(`${what}: cannot read ${file}: ${readProblem(err)}`);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new UsageError(`${what}: cannot read ${file}: is a directory`);
    if (stat.isFile() && stat.size > limit.bytes) throw tooBig(what, file, limit);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, limit.bytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
      if (total > limit.bytes) throw tooBig(what, file, limit);
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what}: cannot read ${file}: ${readProblem(err)}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * All of stdin (for `-` values and piped input), at most `limit` bytes: more is a UsageError naming
 * `what`, once limit + 1 bytes were read.
 */
export async function readStdin(
  limit: Limit,
  what: string,
  stream: NodeJS.ReadableStream = process.stdin,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    chunks.push(bytes);
    total += bytes.length;
    if (total > limit.bytes) throw tooBig(what, 'stdin', limit);
  }
  return Buffer.concat(chunks, total);
}

/** One diagnostic line on stderr, `mq: ...`, escaped for the terminal (it may quote a broker or a topic). */
export function note(message: string): void {
  process.stderr.write(`mq: ${escapeForTerminal(message)}\n`);
}

/**
 * Writes to stdout and resolves once the data is handed to the OS, so output is paced by the
 * reader of a pipe. A closed pipe (`| head -1`) is not an error.
 */
export function writeStdout(data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    const onError = (): void => resolve();
    process.stdout.once('error', onError);
    process.stdout.write(data, (err) => {
      // On an error the 'error' event follows: leave the listener to take it.
      if (!err) process.stdout.off('error', onError);
      resolve();
    });
  });
}

/**
 * The input of a command that takes data (decode, encode): its arguments joined by spaces, else
 * the file of -f, else stdin (`-f -` too). `both` is the UsageError for arguments with -f, `none`
 * the one for no input at all (stdin is a terminal).
 */
export async function readCommandInput(
  args: string[],
  file: string | undefined,
  messages: { both: string; none: string },
  limit: Limit = DECODE_INPUT_LIMIT,
): Promise<Buffer | string> {
  if (args.length > 0 && file !== undefined) throw new UsageError(messages.both);
  if (args.length > 0) return args.join(' ');
  if (file !== undefined && file !== '-') return readFileBounded(file, limit, '-f');
  if (process.stdin.isTTY) throw new UsageError(messages.none);
  return readStdin(limit, 'input');
}

/**
 * --max-input of decode and encode: a size in bytes, or with a K, M or G suffix (KiB, MiB, GiB);
 * at most 1 GiB (a larger input would not fit in one string).
 */
export function parseMaxInput(text: string | undefined): Limit {
  if (text === undefined) return DECODE_INPUT_LIMIT;
  const m = /^\s*(\d{1,10})\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(text);
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const bytes = m ? Number(m[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > 1024 ** 3) {
    throw new UsageError(`--max-input: '${text}' is not a size from 1 byte to 1G (e.g. 200M)`);
  }
  return { bytes, why: '--max-input' };
}
