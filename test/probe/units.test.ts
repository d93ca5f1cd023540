/**
 * The probe's parts without a broker: the binary search, sizing a PUBLISH to the byte, the runner
 * (time limits, failures turned into results, cleanup always), the report's text and JSON.
 */
import { describe, expect, test } from 'vitest';
import { largest, limitChecks } from '../../src/probe/checks/limits.js';
import { payloadForSize } from '../../src/probe/flows.js';
import { SourceClosed } from '../../src/probe/inbox.js';
import { formatReport, reportJson } from '../../src/probe/report.js';
import { runChecks } from '../../src/probe/runner.js';
import { type CheckScope, type ProbeContext, Verdict } from '../../src/probe/scope.js';
import { quoted } from '../../src/probe/text.js';
import type { CheckResult, ProbeReport } from '../../src/probe/types.js';
import { encode } from '../../src/protocol/index.js';

describe('largest (binary search)', () => {
  test.each([1, 2, 23, 100, 9_993, 65_534, 65_535])('finds a limit of %i exactly', async (limit) => {
    const tried: number[] = [];
    const found = await largest(1, 65_535, async (n) => {
      tried.push(n);
      return n <= limit;
    });
    expect(found?.value).toBe(limit);
    expect(tried[0]).toBe(65_535); // the upper bound first: one step when nothing limits
    expect(found!.steps).toBeLessThanOrEqual(18);
  });

  test('undefined when even the lower bound is refused', async () => {
    expect(await largest(23, 1000, async () => false)).toBeUndefined();
  });
});

describe('payloadForSize', () => {
  // Sizes around the remaining-length varint steps (127/128, 16383/16384, 2097151/2097152).
  test.each([3, 4, 5])('v%i: a PUBLISH of exactly the size asked', (version) => {
    const topic = 'mq-probe/abc/limits';
    for (const size of [40, 129, 130, 131, 16_385, 16_386, 16_387, 70_000, 2_097_155, 2_097_156, 2_097_157]) {
      const n = payloadForSize(topic, size, version as 3 | 4 | 5);
      if (n < 0) continue; // a size no payload can make (the varint grows by a byte)
      const bytes = encode(
        { type: 'PUBLISH', dup: false, qos: 0, retain: false, topic, payload: Buffer.alloc(n) },
        version as 3 | 4 | 5,
      );
      expect(bytes.length, `size ${size}`).toBe(size);
    }
  });
});

function context(timeoutMs: number): ProbeContext {
  return {
    client: {
      transport: 'mqtt',
      host: '127.0.0.1',
      port: 1,
      version: 5,
      clientId: '',
      keepalive: 60,
      clean: true,
    },
    version: 5,
    connack: { type: 'CONNACK', sessionPresent: false, reasonCode: 0 },
    prefix: 'p',
    timeoutMs,
    maxProbe: 1024,
    newClientId: () => 'id',
    shared: new Map(),
  };
}

describe('the runner', () => {
  test('failures become results; the time limit holds; cleanup runs whatever happened', async () => {
    const cleaned: string[] = [];
    const check = (
      id: string,
      run: (s: CheckScope) => Promise<never> | Promise<{ status: 'pass'; detail: string }>,
    ) => ({
      section: 'delivery' as const,
      id,
      title: id,
      run: (s: CheckScope) => {
        s.onCleanup(async () => {
          cleaned.push(id);
        });
        return run(s);
      },
    });
    const started = Date.now();
    const results = await runChecks(
      [
        check('ok', async () => ({ status: 'pass', detail: 'fine' })),
        check('verdict', async () => {
          throw new Verdict({ status: 'unsupported', detail: 'not offered' });
        }),
        check('lost', async () => {
          throw new SourceClosed('the broker closed the connection while waiting for SUBACK');
        }),
        // Ignores its signal entirely: still ends at the time limit.
        check('hangs', () => new Promise<never>(() => {})),
        check('bug', async () => {
          throw new TypeError('x is undefined');
        }),
        {
          section: 'delivery',
          id: 'v5only',
          title: 'v5only',
          v5: true,
          run: async () => ({ status: 'pass', detail: '' }),
        },
      ],
      { ...context(200), version: 4 },
      { concurrency: 3 },
    );
    expect(Date.now() - started).toBeLessThan(2000);
    const byId = Object.fromEntries(results.map((r) => [r.id, `${r.status}: ${r.detail}`]));
    expect(byId).toEqual({
      ok: 'pass: fine',
      verdict: 'unsupported: not offered',
      lost: 'fail: connection lost: the broker closed the connection while waiting for SUBACK',
      hangs: 'fail: no answer within 0.2 s: time is up',
      bug: 'fail: probe error: x is undefined',
      v5only: 'skipped: MQTT 5 only (the probe runs in MQTT 3.1.1)',
    });
    expect(cleaned.sort()).toEqual(['bug', 'hangs', 'lost', 'ok', 'verdict']);
  });

  test('stopped from outside: running and waiting checks end as skipped, cleanup still runs', async () => {
    const stop = new AbortController();
    let cleaned = 0;
    const slow = (id: string) => ({
      section: 'limits' as const,
      id,
      title: id,
      run: async (s: CheckScope) => {
        s.onCleanup(async () => {
          cleaned++;
        });
        await s.sleep(10_000);
        return { status: 'pass' as const, detail: '' };
      },
    });
    const done = runChecks([slow('a'), slow('b'), slow('c')], context(20_000), {
      concurrency: 2,
      signal: stop.signal,
    });
    setImmediate(() => stop.abort());
    const results = await done;
    expect(results.map((r) => `${r.id} ${r.status} ${r.detail}`)).toEqual([
      'a skipped interrupted',
      'b skipped interrupted',
      'c skipped interrupted before it ran',
    ]);
    expect(cleaned).toBe(2);
  });

  test('checks that wait on purpose start first', () => {
    const ctx = context(5000);
    const waits = limitChecks.map((c) => [c.id, c.extraMs?.(ctx) ?? 0]);
    expect(waits).toContainEqual(['keepalive', 3000]);
  });
});

describe('the report', () => {
  const result = (
    r: Partial<CheckResult> & Pick<CheckResult, 'section' | 'id' | 'title' | 'status' | 'detail'>,
  ) => ({ ms: 1, ...r }) as CheckResult;
  const report: ProbeReport = {
    target: 'localhost:1883',
    transport: 'mqtt',
    version: 5,
    prefix: 'mq-probe/0a0b0c0d',
    connack: { type: 'CONNACK', sessionPresent: false, reasonCode: 0 },
    results: [
      result({ section: 'versions', id: 'mqtt5', title: 'MQTT 5.0', status: 'pass', detail: 'accepted' }),
      result({
        section: 'limits',
        id: 'maximumPacketSize',
        title: 'Largest packet',
        status: 'pass',
        value: 10_000,
        unit: 'bytes',
        bounded: false,
        detail: '10000 bytes',
      }),
      result({
        section: 'delivery',
        id: 'retained',
        title: 'Retained',
        status: 'fail',
        detail: 'not kept',
        cleanupError: 'no answer within 5 s',
      }),
    ],
    durationMs: 2345,
    interrupted: false,
  };

  test('text: sections in order, aligned columns, a summary', () => {
    expect(formatReport(report)).toBe(
      [
        'mq probe localhost:1883: MQTT 5.0, topics under mq-probe/0a0b0c0d',
        '',
        'Versions',
        '  MQTT 5.0        pass           accepted',
        '',
        'Delivery',
        '  Retained        FAIL           not kept (cleanup failed: no answer within 5 s)',
        '',
        'Limits',
        '  Largest packet  pass           10000 bytes',
        '',
        '2 pass, 1 fail, 0 not supported, 0 skipped, 0 info in 2.3 s',
        '',
      ].join('\n'),
    );
  });

  test('JSON: sections as keys, checks under their ids, numbers as numbers', () => {
    expect(reportJson(report)).toEqual({
      target: 'localhost:1883',
      transport: 'mqtt',
      version: '5.0',
      prefix: 'mq-probe/0a0b0c0d',
      durationMs: 2345,
      interrupted: false,
      summary: { pass: 2, fail: 1, unsupported: 0, skipped: 0, info: 0 },
      versions: { mqtt5: { status: 'pass', detail: 'accepted', ms: 1 } },
      delivery: {
        retained: { status: 'fail', detail: 'not kept', ms: 1, cleanupError: 'no answer within 5 s' },
      },
      limits: {
        maximumPacketSize: {
          status: 'pass',
          value: 10_000,
          unit: 'bytes',
          bounded: false,
          detail: '10000 bytes',
          ms: 1,
        },
      },
    });
  });

  test('JSON: in each check the verdict and the figures come before the words', () => {
    const limits = reportJson(report).limits as Record<string, object>;
    expect(Object.keys(limits.maximumPacketSize!)).toEqual([
      'status',
      'value',
      'unit',
      'bounded',
      'detail',
      'ms',
    ]);
  });

  test('a detail carrying raw network text (an error message) reaches the terminal escaped', () => {
    const raw = { ...report, results: [{ ...report.results[0]!, detail: 'refused (\u001b]0;pwned\u0007)' }] };
    const text = formatReport(raw);
    expect(text).not.toMatch(/[\u0007\u001b]/);
    expect(text).toContain('pass           refused (\\x1b]0;pwned\\x07)\n');
  });

  test('strings from the network are quoted, control and bidi characters escaped', () => {
    expect(quoted('mosquitto\u001b[31m\u202e 2.0')).toBe('"mosquitto\\u001b[31m\\u202e 2.0"');
    expect(quoted('x'.repeat(100), 10)).toBe(`"${'x'.repeat(10)}..."`);
  });
});
