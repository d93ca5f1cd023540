import { describe, expect, it } from 'vitest';
import {
  escapeBytesForTerminal,
  escapeForTerminal,
  isPrintableText,
  safeJson,
} from '../../src/cli/escape.js';

const EVIL = 'a\x1b]0;pwned\x07\nb\tc\r\x9b2J\u202ed\u2028';

describe('escapeForTerminal: the one rule for human output', () => {
  it('escapes C0, DEL, C1, bidi controls and line separators; \\n \\r \\t by name', () => {
    expect(escapeForTerminal(EVIL)).toBe('a\\x1b]0;pwned\\x07\\nb\\tc\\r\\x9b2J\\u202ed\\u2028');
    expect(escapeForTerminal('plain, ünïcode, 😀')).toBe('plain, ünïcode, 😀');
  });

  it('keepLayout keeps line feeds and tabs, nothing else', () => {
    expect(escapeForTerminal(EVIL, { keepLayout: true })).toBe(
      'a\\x1b]0;pwned\\x07\nb\tc\\r\\x9b2J\\u202ed\\u2028',
    );
  });

  it("keepColours keeps ESC too (mq's own colour sequences), never C1 or bidi", () => {
    expect(escapeForTerminal(EVIL, { keepColours: true })).toBe(
      'a\x1b]0;pwned\\x07\nb\tc\\r\\x9b2J\\u202ed\\u2028',
    );
  });

  it('bytes that are not UTF-8: printable ASCII as is, the rest as \\xNN', () => {
    expect(escapeBytesForTerminal(Buffer.from([0x61, 0xff, 0x1b, 0x0a]))).toBe('a\\xff\\x1b\\n');
  });
});

describe('safeJson', () => {
  it('writes what JSON leaves raw as \\u escapes, and parses back to the same value', () => {
    const json = safeJson(JSON.stringify({ t: EVIL }));
    expect(json).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e\u2028]/);
    expect(JSON.parse(json)).toEqual({ t: EVIL });
  });
});

describe('isPrintableText', () => {
  it('UTF-8 without control characters but tab and line ends', () => {
    expect(isPrintableText(Buffer.from('héllo\r\n\tok'))).toBe(true);
    expect(isPrintableText(Buffer.from('a\x1bb'))).toBe(false);
    expect(isPrintableText(Buffer.from([0xc3, 0x28]))).toBe(false);
  });
});
