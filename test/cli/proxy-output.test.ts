/** mq proxy's printer: strings from the network reach stdout/stderr escaped by escape.ts's one rule. */
import { describe, expect, it } from 'vitest';
import { proxyOutput } from '../../src/cli/proxy-output.js';
import type { ConnectionInfo } from '../../src/proxy/index.js';

const NO_COLOR = Object.assign((s: string) => s, { level: 0 });
const PAINT = {
  bold: NO_COLOR,
  dim: NO_COLOR,
  cyan: NO_COLOR,
  green: NO_COLOR,
  yellow: NO_COLOR,
  red: NO_COLOR,
  magenta: NO_COLOR,
  level: 0,
};

function printer(json: boolean) {
  const out = { stdout: '', stderr: '' };
  const events = proxyOutput({
    trace: 'line',
    json,
    quiet: false,
    colors: PAINT,
    stdout: (t) => {
      out.stdout += t;
    },
    stderr: (t) => {
      out.stderr += t;
    },
  });
  return { out, events };
}

const conn: ConnectionInfo = {
  id: 'c1',
  peer: '127.0.0.1:5000',
  via: 'tcp',
  upstream: 'localhost:1883',
  version: 5,
};

describe('proxyOutput escaping', () => {
  it('a warning holding a line feed and a CSI stays one stderr line', () => {
    const { out, events } = printer(false);
    events.warning?.('bad\nline \x1b[2J\u009b2J');
    expect(out.stderr).toBe('mq proxy: bad\\nline \\x1b[2J\\x9b2J\n');
  });

  it('a close reason with a carriage return and a bidi override is escaped on stdout', () => {
    const { out, events } = printer(false);
    events.close?.(conn, 'gone\r\u202eevil', false);
    expect(out.stdout).toContain('closed: gone\\r\\u202eevil\n');
    expect(out.stdout.split('\n')).toHaveLength(2);
  });

  it('JSON lines write what JSON leaves raw as \\u escapes and parse back to the same text', () => {
    const { out, events } = printer(true);
    events.close?.(conn, 'gone\u2028\u202e\u009b', false);
    expect(out.stdout).not.toMatch(/[\u2028\u202e\u009b]/);
    expect(JSON.parse(out.stdout).reason).toBe('gone\u2028\u202e\u009b');
  });
});
