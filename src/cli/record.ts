/**
 * `--record FILE` of `mq broker` and `mq proxy`: appends every observed packet as one NDJSON line,
 * `{"time","client","direction","hex"}` ("in" = client to broker, "out" = broker to client), which
 * `mq decode -f FILE --line` reads back. The caller masks secrets first (protocol/inspect.ts). The
 * file is created with mode 0600 (and set to it when it exists): payloads may be private even with
 * passwords masked.
 */
import { createWriteStream, fchmodSync, openSync, type WriteStream } from 'node:fs';

export type RecordDirection = 'in' | 'out';

export class Recorder {
  private readonly stream: WriteStream;
  private failed: string | undefined = undefined;

  /** Opens `file` for appending; throws (with the system's reason) when it cannot. */
  constructor(
    readonly file: string,
    onError: (message: string) => void,
  ) {
    const fd = openSync(file, 'a', 0o600);
    try {
      fchmodSync(fd, 0o600);
    } catch {
      // Not our file (another owner): appending is still allowed, the mode stays as it was.
    }
    this.stream = createWriteStream('', { fd, flags: 'a' });
    this.stream.on('error', (err) => {
      if (this.failed !== undefined) return;
      this.failed = err.message;
      onError(`--record ${file}: ${err.message}; recording stopped`);
    });
  }

  /** One line; `extra` fields (e.g. dropped: true) follow the standard ones. */
  write(client: string, direction: RecordDirection, bytes: Buffer, extra?: Record<string, unknown>): void {
    if (this.failed !== undefined) return;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      client,
      direction,
      hex: bytes.toString('hex'),
      ...extra,
    });
    this.stream.write(`${line}\n`);
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.closed || this.stream.destroyed) {
        resolve();
        return;
      }
      this.stream.end(() => resolve());
    });
  }
}
