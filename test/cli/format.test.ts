/**
 * mosquitto_sub's -F format (src/cli/format.ts) and the message writers (src/cli/message-output.ts).
 * Expected bytes were taken from mosquitto_sub 2.0.11 for the same message (see
 * test/interop/cli-format.test.ts for the live comparison).
 */
import { describe, expect, it } from 'vitest';
import {
  compileFormat,
  formatProblem,
  isoMicros,
  type MessageView,
  mosquittoJson,
  type Stamp,
  strftime1,
} from '../../src/cli/format.js';
import { MessageOutput, messageJson, type OutputOptions } from '../../src/cli/message-output.js';

const msg: MessageView = {
  topic: 'f/b',
  payload: Buffer.from('hello "w"\\x'),
  qos: 1,
  retain: true,
  packetId: 1,
  properties: {
    contentType: 'text/x',
    userProperties: [
      ['k', 'v'],
      ['k2', 'v2'],
    ],
    correlationData: Buffer.from('abc'),
    responseTopic: 'r/t',
    payloadFormatIndicator: 1,
  },
};

// 2026-11-27T09:33:16.486772Z; the tests run in the machine's zone, so compute local parts.
const stamp: Stamp = { sec: 1795772000 + 396, nsec: 486_772_123 };

function fmt(format: string, m: MessageView = msg): string {
  return compileFormat(format)(m, stamp).bytes.toString('latin1');
}

describe('-F codes', () => {
  it('prints topic, QoS, retain, mid, length, payload as mosquitto_sub does', () => {
    expect(fmt('%t|%q|%r|%m|%l|%p')).toBe('f/b|1|1|1|11|hello "w"\\x');
  });

  it('%m is 0 and %q 0 for a QoS 0 message', () => {
    expect(fmt('%q %m', { ...msg, qos: 0, packetId: undefined })).toBe('0 0');
  });

  it('applies field widths, left alignment, precision and zero padding', () => {
    expect(fmt('%10t|%-10t|%.2t|%5.2t|%05l|%-5l|%-05l')).toBe(
      '       f/b|f/b       |f/|   f/|00011|11   |11   ',
    );
  });

  it('prints the payload as lower and upper case hex', () => {
    expect(fmt('%x|%X')).toBe('68656c6c6f202277225c78|68656C6C6F202277225C78');
    expect(fmt('%x')).toBe(Buffer.from('hello "w"\\x').toString('hex'));
    expect(fmt('%X')).toBe(Buffer.from('hello "w"\\x').toString('hex').toUpperCase());
  });

  it('cuts the payload to the field width, as mosquitto does (hex: width / 2 bytes)', () => {
    expect(fmt('%5p|%-12p|%012p|%08x|%9x|%10x')).toBe(
      'hello|hello "w"\\x |0hello "w"\\x|68656c6c| 68656c6c|68656c6c6f',
    );
  });

  it('prints v5 properties: %C %D %E %F %P %R %S %A', () => {
    expect(fmt('%C|%D|%E|%F|%P|%R|%S|%A')).toBe('text/x|abc||1|k:v k2:v2|r/t||');
    expect(fmt('%3C|%-8A|%08A|%5E')).toBe('text/x|        |00000000|     ');
  });

  it('prints a literal % and @, and the escapes \\a \\e \\0 \\r \\v \\t \\n \\\\', () => {
    expect(fmt('%%|@@|\\a\\e\\0\\r\\v\\t\\n\\\\')).toBe('%|@|\x07\x1b\0\r\v\t\n\\');
  });

  it('prints nothing for an unknown escape or a trailing %, @ or \\ (mosquitto refuses them up front)', () => {
    expect(fmt('a\\qb')).toBe('ab');
    expect(formatProblem('a\\q')).toMatch(/invalid escape specifier 'q'/);
    expect(formatProblem('%Z')).toMatch(/invalid format specifier 'Z'/);
    expect(formatProblem('abc%')).toMatch(/incomplete format specifier/);
    expect(formatProblem('%5')).toMatch(/incomplete format specifier/);
    expect(formatProblem('x@')).toMatch(/incomplete time specifier/);
    expect(formatProblem('x\\')).toMatch(/incomplete escape specifier/);
    expect(formatProblem('%t %p @H:@M \\n %-10.3t %05l')).toBeUndefined();
  });

  it('width and precision: up to 65535; beyond, refused up front and held at the limit if compiled anyway', () => {
    expect(formatProblem('%65535t %.65535R')).toBeUndefined();
    expect(formatProblem('%65536t')).toMatch(/the width of %t is over the limit of 65535/);
    expect(formatProblem('%.1000000C')).toMatch(/the precision of %C is over the limit of 65535/);
    expect(compileFormat('%999999999999t')(msg, stamp).bytes.length).toBe(65_535);
  });

  it('keeps binary payloads intact', () => {
    const bin = { ...msg, payload: Buffer.from([0xff, 0x00, 0x01, 0x0a]) };
    expect(compileFormat('[%p]')(bin, stamp).bytes).toEqual(
      Buffer.from([0x5b, 0xff, 0x00, 0x01, 0x0a, 0x5d]),
    );
  });
});

describe('-F time codes', () => {
  const d = new Date(stamp.sec * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const z = `${off >= 0 ? '+' : '-'}${two(Math.floor(Math.abs(off) / 60))}${two(Math.abs(off) % 60)}`;
  const ymd = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  const hms = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;

  it('%I is ISO 8601 local time with the offset, %U unix seconds with nanoseconds', () => {
    expect(fmt('%I')).toBe(`${ymd}T${hms}${z}`);
    expect(fmt('%U')).toBe(`${stamp.sec}.486772123`);
  });

  it('@ codes are strftime conversions on local time, @N the nanoseconds', () => {
    expect(fmt('@Y-@m-@d @H:@M:@S @z @N @s')).toBe(`${ymd} ${hms} ${z} 486772123 ${stamp.sec}`);
    expect(fmt('@F @T @D @R @e @j')).toBe(
      `${ymd} ${hms} ${two(d.getMonth() + 1)}/${two(d.getDate())}/${two(d.getFullYear() % 100)} ${hms.slice(0, 5)} ${String(d.getDate()).padStart(2, ' ')} ${strftime1('j', d)}`,
    );
  });

  it('strftime names and week numbers follow the C locale and ISO 8601', () => {
    const jan1 = new Date(2021, 0, 1, 13, 5, 9); // a Friday, ISO week 53 of 2020
    expect(strftime1('a', jan1)).toBe('Fri');
    expect(strftime1('A', jan1)).toBe('Friday');
    expect(strftime1('b', jan1)).toBe('Jan');
    expect(strftime1('B', jan1)).toBe('January');
    expect(strftime1('V', jan1)).toBe('53');
    expect(strftime1('G', jan1)).toBe('2020');
    expect(strftime1('j', jan1)).toBe('001');
    expect(strftime1('I', jan1)).toBe('01');
    expect(strftime1('p', jan1)).toBe('PM');
    expect(strftime1('u', jan1)).toBe('5');
    expect(strftime1('U', jan1)).toBe('00');
    expect(strftime1('W', jan1)).toBe('00');
    expect(strftime1('c', jan1)).toBe('Fri Jan  1 13:05:09 2021');
    expect(strftime1('Q', jan1)).toBe('%Q');
  });
});

describe('%j and %J', () => {
  it('prints mosquitto_sub JSON: tst, topic, qos, retain, payloadlen, mid, properties, payload', () => {
    const json = fmt('%j');
    const d = new Date(stamp.sec * 1000);
    expect(json.startsWith('{"tst":"')).toBe(true);
    expect(json).toContain(`.486772Z`);
    expect(json.slice(json.indexOf('","topic"'))).toBe(
      '","topic":"f/b","qos":1,"retain":1,"payloadlen":11,"mid":1,"properties":{"content-type":"text/x","user-properties":{"k":"v","k2":"v2"},"correlation-data":"abc","response-topic":"r/t","payload-format-indicator":1},"payload":"hello \\"w\\"\\\\x"}',
    );
    expect(JSON.parse(json).tst).toMatch(
      new RegExp(`^${d.getFullYear()}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.486772Z[+-]\\d{4}$`),
    );
  });

  it('%j escapes control characters like cJSON and shows non-UTF-8 payloads as byte arrays', () => {
    const tab = mosquittoJson(
      { ...msg, properties: undefined, qos: 0, payload: Buffer.from('a\tb\u0001') },
      stamp,
      true,
    );
    expect(tab).toMatch(/"qos":0,"retain":1,"payloadlen":4,"payload":"a\\tb\\u0001"}$/);
    const bin = mosquittoJson(
      { ...msg, properties: undefined, payload: Buffer.from([0xff, 0, 1]) },
      stamp,
      true,
    );
    expect(bin).toMatch(/"payload":\[255,0,1\]}$/);
    expect(JSON.parse(bin ?? '')).toMatchObject({ payload: [255, 0, 1] });
    const empty = mosquittoJson({ ...msg, properties: undefined, payload: Buffer.alloc(0) }, stamp, true);
    expect(empty).toMatch(/"payloadlen":0,"mid":1,"payload":null}$/);
  });

  it('%J embeds a JSON payload, minified; a non-JSON payload prints nothing and warns', () => {
    const m = { ...msg, properties: undefined, payload: Buffer.from('{ "temperature": 27.0, "h": [1, 2] }') };
    expect(compileFormat('%J')(m, stamp).bytes.toString()).toMatch(
      /"payload":{"temperature":27,"h":\[1,2\]}}$/,
    );
    const bad = compileFormat('<%J>')(msg, stamp);
    expect(bad.bytes.toString()).toBe('<>');
    expect(bad.warnings).toEqual(["message payload is not valid JSON on topic 'f/b' (%J)"]);
  });
});

class FakeStream {
  chunks: Buffer[] = [];
  isTTY = false;
  private errorListener: ((err: Error) => void) | undefined;
  write(chunk: Buffer | string): boolean {
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return true;
  }
  on(_event: 'error', listener: (err: Error) => void): this {
    this.errorListener = listener;
    return this;
  }
  fail(code: string): void {
    this.errorListener?.(Object.assign(new Error(code), { code }));
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

function writeAll(options: Partial<OutputOptions>, messages: MessageView[], tty = false) {
  const out = new FakeStream();
  out.isTTY = tty;
  const warnings: string[] = [];
  const w = new MessageOutput({ mode: 'auto', verbose: false, eol: true, ...options }, out, (m) =>
    warnings.push(m),
  );
  for (const m of messages) w.write(m, stamp);
  return { out, warnings, writer: w };
}

describe('message output modes', () => {
  const plain: MessageView = { topic: 'a/b', payload: Buffer.from('hi'), qos: 0, retain: false };
  const empty: MessageView = { topic: 'a/e', payload: Buffer.alloc(0), qos: 0, retain: false };

  it('on a pipe prints the payload only, like mosquitto_sub; -v adds the topic; -N drops newlines', () => {
    expect(writeAll({}, [plain, plain]).out.text).toBe('hi\nhi\n');
    expect(writeAll({ verbose: true }, [plain]).out.text).toBe('a/b hi\n');
    expect(writeAll({ eol: false }, [plain, plain]).out.text).toBe('hihi');
  });

  it('an empty payload prints nothing, or "topic (null)" with -v (as mosquitto_sub)', () => {
    expect(writeAll({}, [empty]).out.text).toBe('');
    expect(writeAll({ verbose: true }, [empty]).out.text).toBe('a/e (null)\n');
  });

  it('-F wins over -v', () => {
    expect(writeAll({ verbose: true, format: '%t=%p' }, [plain]).out.text).toBe('a/b=hi\n');
  });

  it('hex, base64 and raw encode the payload', () => {
    const bin: MessageView = { ...plain, payload: Buffer.from([0, 255, 10]) };
    expect(writeAll({ mode: 'hex' }, [bin]).out.text).toBe('00ff0a\n');
    expect(writeAll({ mode: 'hex', verbose: true }, [bin]).out.text).toBe('a/b 00ff0a\n');
    expect(writeAll({ mode: 'base64' }, [bin]).out.text).toBe('AP8K\n');
    expect(writeAll({ mode: 'raw' }, [bin, bin]).out.chunks).toEqual([bin.payload, bin.payload]);
  });

  it('ndjson lines are valid JSON with payload or payload_base64, encoding, flags, properties, ts', () => {
    const bin: MessageView = { ...msg, payload: Buffer.from([0xff, 0xfe]), dup: true };
    const lines = writeAll({ mode: 'ndjson' }, [msg, bin]).out.text.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const a = JSON.parse(lines[0] ?? '');
    expect(a).toEqual({
      ts: isoMicros(stamp),
      topic: 'f/b',
      qos: 1,
      retain: true,
      dup: false,
      packetId: 1,
      properties: {
        contentType: 'text/x',
        userProperties: [
          ['k', 'v'],
          ['k2', 'v2'],
        ],
        correlationData: 'abc',
        correlationDataEncoding: 'utf8',
        responseTopic: 'r/t',
        payloadFormatIndicator: 1,
      },
      size: 11,
      encoding: 'utf8',
      payload: 'hello "w"\\x',
    });
    expect(a.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.486772Z$/);
    const b = JSON.parse(lines[1] ?? '');
    expect(b.encoding).toBe('base64');
    expect(b.payload).toBeUndefined();
    expect(Buffer.from(b.payload_base64, 'base64')).toEqual(Buffer.from([0xff, 0xfe]));
    expect(b.dup).toBe(true);
  });

  it('json mode pretty-prints the same object', () => {
    const text = writeAll({ mode: 'json' }, [plain]).out.text;
    expect(text).toContain('\n  "topic": "a/b",\n');
    expect(JSON.parse(text)).toEqual(messageJson(plain, stamp));
  });

  it('on a TTY shows a readable view: topic, QoS, retained marker, properties, pretty JSON', () => {
    const json: MessageView = {
      topic: 'dev/1',
      payload: Buffer.from('{"t":21.5,"ok":true}'),
      qos: 1,
      retain: true,
      properties: { contentType: 'application/json' },
    };
    const prev = process.env.NO_COLOR;
    process.env.NO_COLOR = '1';
    try {
      const text = writeAll({}, [json], true).out.text;
      const lines = text.split('\n');
      expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} dev\/1 qos1 retained 20 B$/);
      expect(lines[1]).toBe('  contentType=application/json');
      expect(lines.slice(2, 6)).toEqual(['  {', '    "t": 21.5,', '    "ok": true', '  }']);
    } finally {
      if (prev === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = prev;
    }
  });

  it('a TTY view is coloured unless NO_COLOR is set', () => {
    const prevNo = process.env.NO_COLOR;
    const prevForce = process.env.FORCE_COLOR;
    delete process.env.NO_COLOR;
    delete process.env.FORCE_COLOR;
    try {
      expect(writeAll({}, [plain], true).out.text).toContain('\x1b[');
      process.env.NO_COLOR = '1';
      expect(writeAll({}, [plain], true).out.text).not.toContain('\x1b[');
    } finally {
      if (prevNo === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = prevNo;
      if (prevForce !== undefined) process.env.FORCE_COLOR = prevForce;
    }
  });

  it('stops writing once the pipe is closed (EPIPE) and says so once', () => {
    const { out, writer } = writeAll({}, [plain]);
    let broken = 0;
    writer.onBroken(() => broken++);
    out.fail('EPIPE');
    writer.write(plain, stamp);
    expect(out.text).toBe('hi\n');
    expect(writer.broken).toBe(true);
    expect(broken).toBe(1);
  });

  it('%J warnings go to the warning sink', () => {
    const { out, warnings } = writeAll({ format: '%J' }, [plain]);
    expect(out.text).toBe('\n');
    expect(warnings).toEqual(["message payload is not valid JSON on topic 'a/b' (%J)"]);
  });
});
