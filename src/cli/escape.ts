/**
 * Strings from the network (topics, client ids, user properties, reason strings...) and from files
 * are shown to people escaped: a terminal acts on control characters instead of showing them, so a
 * peer could otherwise set the window title, clear the screen, move the cursor or forge a line.
 *
 * Escaped: C0 controls (U+0000-U+001F), DEL, C1 controls (U+0080-U+009F: U+009B is a CSI on many
 * terminals), the bidirectional overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
 * U+2066-U+2069, "Trojan Source"), and the line and paragraph separators U+2028, U+2029.
 * `\n`, `\r` and `\t` are written as such, other code points below U+0100 as `\xNN`, the rest as
 * `\uNNNN`. Everything else, other scripts and emoji included, is shown as it is.
 *
 * The one rule for every human output of mq (sub's terminal view, -F on a terminal, traces, decode,
 * error and log lines). Data outputs (payloads on a pipe, --output raw) stay byte-exact; JSON is
 * escaped by JSON itself (plus safeJson below for what JSON leaves as it is).
 */
import { isUtf8 } from 'node:buffer';

/** What every variant escapes beyond C0: DEL, C1, the bidi controls, U+2028/U+2029. */
const UNSAFE_ABOVE_C0 = '\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';
/** Code points escaped by escapeForTerminal. */
const UNSAFE = new RegExp(`[\\x00-\\x1f${UNSAFE_ABOVE_C0}]`, 'g');
/** The same, but a line feed and a tab stay (the layout of a payload shown as text). */
const UNSAFE_KEEP_LAYOUT = new RegExp(`[\\x00-\\x08\\x0b-\\x1f${UNSAFE_ABOVE_C0}]`, 'g');
/** The same again, but ESC stays too (lines holding mq's own colour sequences). */
const UNSAFE_KEEP_COLOURS = new RegExp(`[\\x00-\\x08\\x0b-\\x1a\\x1c-\\x1f${UNSAFE_ABOVE_C0}]`, 'g');
/** What JSON.stringify leaves as it is but a terminal acts on (safeJson). */
const JSON_UNSAFE = new RegExp(`[${UNSAFE_ABOVE_C0}]`, 'g');

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

export interface EscapeOptions {
  /** Keep line feeds and tabs (a payload shown as text keeps its lines); default false. */
  keepLayout?: boolean;
  /**
   * Keep ESC as well as line feeds and tabs: for a line that holds mq's own colour sequences and
   * whose strings from the network were escaped before they went in (a second pass, a safety net).
   */
  keepColours?: boolean;
}

/** `text` with every control and bidi code point escaped (see the module comment). */
export function escapeForTerminal(text: string, options: EscapeOptions = {}): string {
  const unsafe =
    options.keepColours === true
      ? UNSAFE_KEEP_COLOURS
      : options.keepLayout === true
        ? UNSAFE_KEEP_LAYOUT
        : UNSAFE;
  unsafe.lastIndex = 0;
  if (!unsafe.test(text)) return text;
  unsafe.lastIndex = 0;
  return text.replace(unsafe, escapeOne);
}

/** Is this buffer text a person can read (valid UTF-8, no control characters but tab and newlines)? */
export function isPrintableText(bytes: Buffer): boolean {
  if (!isUtf8(bytes)) return false;
  for (const b of bytes) {
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return false;
  }
  return true;
}

/**
 * Bytes shown as text: UTF-8 text escaped as escapeForTerminal does; bytes that are not UTF-8 text
 * are shown as printable ASCII and `\xNN` for every other byte.
 */
export function escapeBytesForTerminal(bytes: Buffer, options: EscapeOptions = {}): string {
  if (isUtf8(bytes)) return escapeForTerminal(bytes.toString('utf8'), options);
  const keep = options.keepLayout === true;
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else if (keep && (b === 0x0a || b === 0x09)) out += String.fromCharCode(b);
    else out += escapeOne(String.fromCharCode(b));
  }
  return out;
}

/**
 * JSON text (from JSON.stringify) with the code points JSON leaves raw written as `\uNNNN` escapes:
 * still valid JSON that parses to the same value, and safe to print on a terminal.
 */
export function safeJson(json: string): string {
  JSON_UNSAFE.lastIndex = 0;
  if (!JSON_UNSAFE.test(json)) return json;
  JSON_UNSAFE.lastIndex = 0;
  return json.replace(JSON_UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
