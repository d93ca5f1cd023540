/** stdin and stdout for commands whose input or output is data; one-line notes on stderr. */
import { readFileSync } from 'node:fs';
import { CliError, ExitCode, UsageError } from './errors.js';
import { escapeForTerminal } from './escape.js';

/** One diagnostic line on stderr, `mq: ...`, escaped for the terminal (it may quote a broker or a topic). */
export function note(message: string): void {
  process.stderr.write(`mq: ${escapeForTerminal(message)}\n`);
}

/** Reads all of stdin (for `-` values and piped input). */
export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
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
): Promise<Buffer | string> {
  if (args.length > 0 && file !== undefined) throw new UsageError(messages.both);
  if (args.length > 0) return args.join(' ');
  if (file !== undefined && file !== '-') {
    try {
      return readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(
        `cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
        ExitCode.Usage,
      );
    }
  }
  if (process.stdin.isTTY) throw new UsageError(messages.none);
  return readStdin();
}
