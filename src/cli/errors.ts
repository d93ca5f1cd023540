/** An error that ends a command with a documented exit code and one line on stderr. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Wrong command-line usage (a bad flag or value): exit code 1. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, ExitCode.Usage);
  }
}

/** Exit codes, as documented in CLI.md and every command's --help. */
export const ExitCode = {
  Ok: 0,
  Usage: 1,
  /** Connection refused or lost (the CONNACK/DISCONNECT reason is in the message). */
  Connection: 2,
  /** A -W timeout ran out. */
  Timeout: 3,
  /** Malformed input to decode/encode. */
  Malformed: 4,
  /** A QoS>0 message the broker refused or did not acknowledge. */
  NotAcknowledged: 5,
  /** Anything else (I/O errors, TLS setup...). */
  Failure: 6,
  /** An `mq bench --assert` threshold that the run did not meet. */
  AssertFailed: 7,
  /** Ctrl-C before the work was done (128 + SIGINT). */
  Interrupted: 130,
} as const;
