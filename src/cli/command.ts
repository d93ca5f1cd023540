import { Command, type Option } from 'commander';

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

/** What a command is made of, in --help order. */
export interface CommandParts<O> {
  name: string;
  description: string;
  /** The command's own options. */
  options: Option[];
  /** Shared groups of options that follow them (output options, connection options). */
  groups: ((cmd: Command) => unknown)[];
  /** The text after the options: examples and exit codes. */
  help: string;
  /** The action: resolves to the exit code (see run). */
  action: (opts: O, args: string[], cmd: Command) => Promise<number> | number;
}

/** A command from its parts: its options, then the shared groups, then the help text; `action` runs it. */
export function commandOf<O>(parts: CommandParts<O>): Command {
  const cmd = newCommand(parts.name).description(parts.description);
  for (const option of parts.options) cmd.addOption(option);
  for (const add of parts.groups) add(cmd);
  cmd.addHelpText('after', parts.help);
  return run<O>(cmd, parts.action);
}
