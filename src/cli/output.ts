import { Chalk, type ChalkInstance } from 'chalk';
import { escapeForTerminal } from './escape.js';

/** Colour only on a TTY, never when NO_COLOR is set (any value), forced by FORCE_COLOR. */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

/** A chalk instance for `stream` that respects colorEnabled(). */
export function colors(stream: NodeJS.WriteStream = process.stdout): ChalkInstance {
  return new Chalk({ level: colorEnabled(stream) ? 1 : 0 });
}

/** One diagnostic line on stderr, prefixed `mq <cmd>:`, escaped for the terminal. */
export function warn(cmd: string, message: string): void {
  process.stderr.write(`mq ${cmd}: ${escapeForTerminal(message)}\n`);
}
