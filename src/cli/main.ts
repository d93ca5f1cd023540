/**
 * The mq entry point: composes the subcommands, loads only the one invoked (start-up stays lazy),
 * turns every failure into one line on stderr and a documented exit code. The only place that
 * calls process.exit.
 */
import { readFileSync } from 'node:fs';

interface CommandEntry {
  summary: string;
  load: () => Promise<{ command: () => import('commander').Command }>;
}

/** Every subcommand, with its one-line summary for `mq --help`. Loaded only when invoked. */
const COMMANDS: Record<string, CommandEntry> = {
  pub: {
    summary: 'publish messages (like mosquitto_pub): -t topic -m message, QoS 0/1/2, retained, v5 properties',
    load: () => import('../commands/pub.js'),
  },
  sub: {
    summary: 'subscribe and print messages (like mosquitto_sub): -t filter, -v, -F format, --output json',
    load: () => import('../commands/sub.js'),
  },
  req: {
    summary: 'request/response (like mosquitto_rr): publish with a response topic, print the reply',
    load: () => import('../commands/req.js'),
  },
  broker: {
    summary: 'run a local MQTT 3.1/3.1.1/5.0 broker for testing, with tracing and fault injection',
    load: () => import('../commands/broker.js'),
  },
  probe: {
    summary: 'probe a broker: versions, announced limits and whether it keeps them, delivery, sessions, TLS',
    load: () => import('../commands/probe.js'),
  },
  proxy: {
    summary:
      'forward clients to a broker and show every packet both ways, decoded; record; faults per direction',
    load: () => import('../commands/proxy.js'),
  },
  decode: {
    summary: 'decode MQTT packet bytes (hex, base64 or raw) into fields, with spec-cited errors',
    load: () => import('../commands/decode.js'),
  },
  encode: {
    summary: 'encode packets from the JSON that `mq decode --json` prints back into bytes',
    load: () => import('../commands/encode.js'),
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  const first = argv[2];
  // Fast path: `mq --version` loads nothing but package.json.
  if (first === '--version' && argv.length === 3) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const { Command, CommanderError } = await import('commander');
  const { lastExitCode } = await import('./command.js');
  const program = new Command('mq')
    .description('mq: a command-line MQTT toolkit (MQTT 3.1, 3.1.1 and 5.0)')
    .version(version(), '--version', 'print the version')
    .helpOption('--help', 'show help')
    .addHelpText(
      'after',
      `
Examples:
  mq broker                                  start a local broker on 127.0.0.1:1883
  mq decode 30080004746573746869             what are these bytes?
  mq <command> --help                        flags and examples for one command

Exit codes: 0 ok, 1 usage, 2 connection refused or lost, 3 timeout, 4 malformed input,
5 message not acknowledged, 6 other failure (port in use, unreadable file), 130 Ctrl-C.`,
    )
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });

  const invoked = first !== undefined && Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  for (const [name, entry] of Object.entries(COMMANDS)) {
    if (entry === invoked) {
      const mod = await entry.load();
      const cmd = mod.command().summary(entry.summary).exitOverride();
      program.addCommand(cmd);
    } else {
      program.command(name).summary(entry.summary);
    }
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 1;
    }
    throw err;
  }
  return lastExitCode();
}

/** Exits once stdout has been written out (a pipe may still hold queued output), or at once if it broke. */
function exitAfterFlush(code: number): void {
  const out = process.stdout;
  if (out.writableLength === 0 || out.destroyed) process.exit(code);
  out.once('drain', () => process.exit(code));
  out.once('error', () => process.exit(code));
  out.once('close', () => process.exit(code));
}

main(process.argv).then(
  (code) => exitAfterFlush(code),
  async (err: unknown) => {
    const { CliError } = await import('./errors.js');
    // Messages quote what a broker sent (reason strings) and what a user typed: escaped for the terminal.
    const { escapeForTerminal } = await import('./escape.js');
    if (process.env.MQ_DEBUG === '1' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    if (err instanceof CliError) fail(`mq: ${escapeForTerminal(err.message)}`, err.exitCode);
    const message = err instanceof Error ? err.message : String(err);
    fail(`mq: internal error: ${escapeForTerminal(message)} (set MQ_DEBUG=1 for details)`, 70);
  },
);
