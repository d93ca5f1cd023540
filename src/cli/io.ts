/** stdin and stdout for commands whose input or output is data. */

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
