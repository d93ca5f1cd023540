/**
 * The client session of the commands that talk to a broker (pub, sub, req; bench and probe next):
 * connect with the resolved connection options, turn client failures into the CliError main.ts
 * prints (with its exit code), say on stderr when the client reconnects.
 */
import {
  ClientClosedError,
  ConnectError,
  DisconnectError,
  type MqttClient,
  PublishRefusedError,
} from '../client/index.js';
import { formatReasonCode } from '../protocol/index.js';
import type { ResolvedConnection } from './connection-options.js';
import { CliError, ExitCode } from './errors.js';
import { note } from './io.js';
import type { Stop } from './signals.js';

/** Turns a client failure into the CliError main.ts prints (exit 2 connection, 5 refused). */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ConnectError || err instanceof DisconnectError) {
    return new CliError(err.message, ExitCode.Connection);
  }
  if (err instanceof PublishRefusedError) return new CliError(err.message, ExitCode.NotAcknowledged);
  if (err instanceof ClientClosedError) return new CliError(err.message, ExitCode.Connection);
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message, ExitCode.Failure);
}

/** Connects, or throws the CliError for it (exit 2 with the broker's reason by name). */
export async function connectClient(options: ResolvedConnection): Promise<MqttClient> {
  const { MqttClient } = await import('../client/index.js');
  try {
    return await MqttClient.connect(options);
  } catch (err) {
    throw asCliError(err);
  }
}

/** How a publish the broker refused reads: "broker refused message on 'a/b': 0x87 Not authorized". */
export function refusedOn(topic: string, reasonCode: number): string {
  return `broker refused message on '${topic}': ${formatReasonCode(reasonCode, 'PUBACK')}`;
}

/** Prints reconnect notices on stderr (unless --quiet). */
export function reportReconnects(client: MqttClient, quiet: boolean): void {
  if (quiet) return;
  client.on('reconnect', (_attempt, delayMs, lastError) => {
    const why = lastError?.message ?? 'no reason given';
    note(`connection lost: ${why}; reconnecting in ${(delayMs / 1000).toFixed(1)} s`);
  });
  client.on('connect', (_connack, resumed) => {
    note(`reconnected${resumed ? ' (session resumed)' : ''}`);
  });
}

/**
 * The session of a command that waits for what the broker sends (sub, req; probe next). It ends at
 * the first decision: an exit code or CliError from a handler, the connection closing (a lost one:
 * its CliError, exit 2; a clean one: 0), or what a signal or deadline decides (stopWhen's onStop).
 * Later decisions are ignored. close() waits for the end and leaves the broker cleanly.
 */
export class Session {
  /** Resolves with the first decision. */
  readonly done: Promise<number | CliError>;
  private decided = false;
  private resolve: (result: number | CliError) => void = () => {};

  private constructor(readonly client: MqttClient) {
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    client.on('close', (err) => this.end(err ? asCliError(err) : ExitCode.Ok));
  }

  /** Connects (or throws the CliError for it). */
  static async open(options: ResolvedConnection): Promise<Session> {
    return new Session(await connectClient(options));
  }

  /** True once the end is decided (later messages are not printed). */
  get ended(): boolean {
    return this.decided;
  }

  /** Ends the session with an exit code, or with the CliError main.ts prints. */
  end(result: number | CliError): void {
    if (this.decided) return;
    this.decided = true;
    this.resolve(result);
  }

  /**
   * Runs `work` (subscribe, publish...); its failure ends the session with the CliError for it.
   * Resolves when the work is done or the session ends, whichever is first: a SUBACK that never
   * comes (the broker drops every connection, and the client keeps reconnecting) does not keep
   * Ctrl-C or -W from ending the command.
   */
  async run(work: () => Promise<void>): Promise<void> {
    const done = work().catch((err: unknown) => this.end(asCliError(err)));
    await Promise.race([done, this.done]);
  }

  /**
   * Waits for the end, disarms `stop`, waits for `before` (e.g. publishes still in flight), closes
   * the client: resolves to the exit code, or throws the CliError the session ended with.
   */
  async close(stop: Stop, before?: () => Promise<unknown>): Promise<number> {
    const result = await this.done;
    stop.dispose();
    if (before !== undefined) await before();
    await this.client.end().catch(() => undefined);
    if (typeof result !== 'number') throw result;
    return result;
  }
}
