import { Command } from 'commander';

/**
 * What every command module exports: `command()` builds its commander Command. The action given to
 * `run` returns the process exit code; main.ts is the only place that exits.
 */
export type CommandFactory = () => Command;

let pendingExitCode = 0;

/** The exit code the last command's action returned (read by main.ts). */
export function lastExitCode(): number {
  return pendingExitCode;
}

/**
 * Sets `fn` as the action of `cmd`. `fn` gets the parsed options and the positional arguments and
 * resolves to an exit code. Throw CliError/UsageError for failures: main.ts prints them as one line.
 */
export function run<O = Record<string, unknown>>(
  cmd: Command,
  fn: (opts: O, args: string[], cmd: Command) => Promise<number> | number,
): Command {
  return cmd.action(async (...received: unknown[]) => {
    // commander passes (...positionals, options, command)
    const command = received[received.length - 1] as Command;
    const opts = command.opts() as O;
    const args = command.args;
    pendingExitCode = await fn(opts, args, command);
  });
}

/** A new subcommand with mq's conventions: `--help` only (`-h` is the host, as in mosquitto). */
export function newCommand(name: string): Command {
  return new Command(name).helpOption('--help', 'show help for this command').showHelpAfterError(false);
}
