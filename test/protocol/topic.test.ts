import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isDollarTopic,
  isWildcard,
  matches,
  parseSharedSubscription,
  quoteTopic,
  validateTopicFilter,
  validateTopicName,
} from '../../src/protocol/topic.js';

describe('validateTopicFilter', () => {
  // Short filters are where validators go wrong (aedes accepts 'a+', 'a#', '+a').
  const valid = [
    '#',
    '+',
    'a',
    '/',
    '//',
    '+/',
    '/+',
    '/#',
    '+/+',
    '+/#',
    'a/#',
    'a/+',
    'a/+/b',
    '+/a/#',
    'a//b',
    '/a',
    'a/',
    '$SYS/#',
    '$SYS/+/x',
    '$',
    'sport/tennis/player1/#',
    'ü/+/日本',
    '😀/#',
    'a b/c',
  ];
  it.each(valid)('accepts %j', (filter) => {
    expect(validateTopicFilter(filter)).toBeUndefined();
    expect(validateTopicFilter(filter, 4)).toBeUndefined();
  });

  const invalid: [string, string, string][] = [
    // filter, rule (5.0), rule (3.1.1)
    ['a#', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['#a', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['##', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['#/', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['#/a', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['a/#/b', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['a/b#', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['+#', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['#+', 'MQTT-4.7.1-1', 'MQTT-4.7.1-2'],
    ['+a', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['a+', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['++', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['a/b+/c', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['sport+', 'MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    ['', 'MQTT-4.7.3-1', 'MQTT-4.7.3-1'],
    ['a\u0000b', 'MQTT-4.7.3-2', 'MQTT-4.7.3-2'],
    ['\u0000', 'MQTT-4.7.3-2', 'MQTT-4.7.3-2'],
    ['a/\ud800', 'MQTT-1.5.4-1', 'MQTT-1.5.3-1'],
    ['x'.repeat(65_536), 'MQTT-4.7.3-3', 'MQTT-4.7.3-3'],
  ];
  it.each(invalid)('rejects %j citing %s (5.0) / %s (3.1.1)', (filter, rule5, rule4) => {
    expect(validateTopicFilter(filter)?.rule).toBe(rule5);
    expect(validateTopicFilter(filter, 5)?.rule).toBe(rule5);
    expect(validateTopicFilter(filter, 4)?.rule).toBe(rule4);
    expect(validateTopicFilter(filter, 3)?.rule).toBe(rule4);
  });

  it('says what is wrong and where', () => {
    expect(validateTopicFilter('a#')?.message).toBe(
      "topic filter 'a#' has '#' at character 1 that does not take a whole level",
    );
    expect(validateTopicFilter('a/#/b')?.message).toBe(
      "topic filter 'a/#/b' has '#' at character 2 that is not the last level",
    );
    expect(validateTopicFilter('+a')?.message).toBe(
      "topic filter '+a' has '+' at character 0 that does not take a whole level",
    );
    expect(validateTopicFilter('')?.message).toBe('topic filter is empty');
    expect(validateTopicFilter('a\u0000')?.message).toBe(
      "topic filter 'a\\x00' contains U+0000 at character 1",
    );
  });

  it('counts UTF-8 bytes, not characters, against the 65,535 limit [MQTT-4.7.3-3]', () => {
    expect(validateTopicFilter('é'.repeat(32_767))).toBeUndefined(); // 65,534 bytes
    expect(validateTopicFilter('é'.repeat(32_768))?.message).toBe(
      'topic filter is 65536 bytes long, more than the maximum 65535',
    );
    expect(validateTopicFilter(`${'😀'.repeat(16_383)}abc`)).toBeUndefined(); // 65,535 bytes
    expect(validateTopicFilter('😀'.repeat(16_384))?.rule).toBe('MQTT-4.7.3-3');
  });
});

describe('shared subscriptions (5.0 4.8.2)', () => {
  it.each([
    ['$share/g/a', 'g', 'a'],
    ['$share/group/#', 'group', '#'],
    ['$share/g/+/b', 'g', '+/b'],
    ['$share/g//', 'g', '/'],
    ['$share/ü/a/b', 'ü', 'a/b'],
  ])('%j is group %j, filter %j', (shared, group, filter) => {
    expect(validateTopicFilter(shared)).toBeUndefined();
    expect(parseSharedSubscription(shared)).toEqual({ group, filter });
  });

  it.each([
    ['$share//a', 'MQTT-4.8.2-1', 'empty share name'],
    ['$share/', 'MQTT-4.8.2-1', 'empty share name'],
    ['$share/g', 'MQTT-4.8.2-2', 'no topic filter after the share name'],
    ['$share/g/', 'MQTT-4.8.2-2', 'no topic filter after the share name'],
    ['$share/+/a', 'MQTT-4.8.2-2', "'+' in its share name"],
    ['$share/#/a', 'MQTT-4.8.2-2', "'#' in its share name"],
    ['$share/g+/a', 'MQTT-4.8.2-2', "'+' in its share name"],
    ['$share/g/a#', 'MQTT-4.7.1-1', "'#' at character 1"],
    ['$share/g/a/#/b', 'MQTT-4.7.1-1', 'not the last level'],
  ])('rejects %j citing %s', (shared, rule, text) => {
    const problem = validateTopicFilter(shared);
    expect(problem?.rule).toBe(rule);
    expect(problem?.message).toContain(text);
    expect(problem?.message).toContain(`'${shared}'`);
  });

  it('is an ordinary filter in 3.1.1, where shared subscriptions do not exist', () => {
    expect(validateTopicFilter('$share//a', 4)).toBeUndefined();
    expect(validateTopicFilter('$share/g', 4)).toBeUndefined();
    expect(validateTopicFilter('$share/+/a', 4)).toBeUndefined();
  });

  it('parseSharedSubscription refuses what is not a well-formed shared subscription', () => {
    for (const f of [
      'a/b',
      '$share',
      '$share/',
      '$share//a',
      '$share/g',
      '$share/g/',
      '$share/+/a',
      '$SHARE/g/a',
    ]) {
      expect(parseSharedSubscription(f)).toBeUndefined();
    }
  });

  it('matches what its inner filter matches', () => {
    expect(matches('$share/g/a/+', 'a/b')).toBe(true);
    expect(matches('$share/g/#', 'x/y')).toBe(true);
    expect(matches('$share/g/#', '$SYS/x')).toBe(false);
    expect(matches('$share/g/a', '$share/g/a')).toBe(false);
  });
});

describe('validateTopicName', () => {
  it.each(['a', '/', '//', 'a//b', '/a', 'a/', '$SYS/broker/uptime', 'ü', '😀/日本', ' ', 'a b'])(
    'accepts %j',
    (name) => {
      expect(validateTopicName(name)).toBeUndefined();
    },
  );

  it.each([
    ['+', "topic name '+' contains the wildcard '+'", 'MQTT-3.3.2-2'],
    ['#', "topic name '#' contains the wildcard '#'", 'MQTT-3.3.2-2'],
    ['a/+', "topic name 'a/+' contains the wildcard '+'", 'MQTT-3.3.2-2'],
    ['a/#', "topic name 'a/#' contains the wildcard '#'", 'MQTT-3.3.2-2'],
    ['a#+', "topic name 'a#+' contains the wildcard '#'", 'MQTT-3.3.2-2'],
    ['a+b', "topic name 'a+b' contains the wildcard '+'", 'MQTT-3.3.2-2'],
    ['', 'topic name is empty', 'MQTT-4.7.3-1'],
    ['a\u0000', "topic name 'a\\x00' contains U+0000 at character 1", 'MQTT-4.7.3-2'],
  ])('rejects %j: %s [%s]', (name, message, rule) => {
    expect(validateTopicName(name)).toEqual({ message, rule });
  });

  it('rejects names over 65,535 UTF-8 bytes [MQTT-4.7.3-3]', () => {
    expect(validateTopicName('a'.repeat(65_535))).toBeUndefined();
    expect(validateTopicName('a'.repeat(65_536))?.rule).toBe('MQTT-4.7.3-3');
    expect(validateTopicName('日'.repeat(21_846))?.message).toBe(
      'topic name is 65538 bytes long, more than the maximum 65535',
    );
  });

  it('quotes long or odd names readably in messages', () => {
    const msg = validateTopicName(`${'x'.repeat(100)}+`)?.message ?? '';
    expect(msg).toBe(`topic name '${'x'.repeat(80)}...' contains the wildcard '+'`);
    expect(quoteTopic('a\nb')).toBe("'a\\x0ab'");
    // a cut never leaves half a surrogate pair
    expect(quoteTopic(`${'x'.repeat(79)}😀zz`)).toBe(`'${'x'.repeat(79)}...'`);
  });
});

describe('matches', () => {
  // [filter, topic, expected]
  const table: [string, string, boolean][] = [
    // one- and two-character filters
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/', true],
    ['#', '/a', true],
    ['+', 'a', true],
    ['+', 'abc', true],
    ['+', '/', false],
    ['+', 'a/b', false],
    ['+', '', true],
    ['a', 'a', true],
    ['a', 'b', false],
    ['a', 'ab', false],
    ['a', 'a/', false],
    ['a', '/a', false],
    ['/', '/', true],
    ['/', 'a', false],
    ['/', '//', false],
    ['//', '//', true],
    ['//', '/', false],
    ['+/', 'a/', true],
    ['+/', '/', true],
    ['+/', 'a', false],
    ['+/', 'a/b', false],
    ['/+', '/a', true],
    ['/+', '/', true],
    ['/+', 'a/b', false],
    ['/#', '/', true],
    ['/#', '/a/b', true],
    ['/#', 'a', false],
    ['+/+', '/finance', true],
    ['+/+', 'a/b', true],
    ['+/+', 'a', false],
    ['+/+', 'a/b/c', false],
    // '#' matches the parent level too
    ['a/#', 'a', true],
    ['a/#', 'a/', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['a/#', 'b/a', false],
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['+/#', 'a', true],
    ['+/#', 'a/b/c', true],
    // '+' matches exactly one level, also an empty one
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a//c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c/d', false],
    ['+/+/+', 'a/b/c', true],
    // empty levels match literally
    ['a//b', 'a//b', true],
    ['a//b', 'a/b', false],
    ['a/b', 'a//b', false],
    ['/a', '/a', true],
    ['/a', 'a', false],
    ['a/', 'a/', true],
    ['a/', 'a', false],
    ['a', 'a/', false],
    // [MQTT-4.7.2-1] '$' topics and leading wildcards
    ['#', '$SYS', false],
    ['#', '$SYS/broker/uptime', false],
    ['+', '$SYS', false],
    ['+/#', '$SYS/broker', false],
    ['+/broker/#', '$SYS/broker/uptime', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['$SYS/#', '$SYS', true],
    ['$SYS/+/uptime', '$SYS/broker/uptime', true],
    ['$SYS', '$SYS', true],
    ['a/#', 'a/$SYS', true],
    ['a/+', 'a/$x', true],
    ['#', '$', false],
    ['$', '$', true],
    // case-sensitive, no normalisation [MQTT-4.7.3-4]
    ['A', 'a', false],
    ['caf\u00e9', 'cafe\u0301', false],
    // multi-byte characters
    ['ü', 'ü', true],
    ['ü', 'u', false],
    ['+', 'ü', true],
    ['😀/+', '😀/日本', true],
    ['😀/#', '😀', true],
    ['+/😀', 'x/😀', true],
    ['+/😀', 'x/😁', false],
    ['日本/+', '日本/東京', true],
    ['日本/+', '日/東京', false],
    // invalid filters: wildcards that do not take a whole level are literal
    ['a#', 'a#', true],
    ['a#', 'ab', false],
    ['+a', 'ba', false],
    ['+a', '+a', true],
    ['a+', 'ab', false],
    ['++', 'ab', false],
    ['a/#/b', 'a/x/b', false],
    ['a/#/b', 'a/#/b', true],
  ];
  it.each(table)('matches(%j, %j) is %s', (filter, topic, expected) => {
    expect(matches(filter, topic)).toBe(expected);
  });

  it('a filter without wildcards matches exactly itself', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', '/', 'ü', '😀') }), fc.string(), (t, u) => {
        fc.pre(!t.includes('+') && !t.includes('#'));
        expect(matches(t, t)).toBe(true);
        expect(matches(t, u)).toBe(t === u);
      }),
    );
  });

  it('agrees with a level-by-level reference on random valid filters', () => {
    const level = fc.constantFrom('', 'a', 'b', 'ab', 'ü', '$', '$S', '😀');
    const topicArb = fc
      .array(level, { minLength: 1, maxLength: 5 })
      .map((ls) => ls.join('/'))
      .filter((t) => t.length > 0);
    const filterArb = fc
      .tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 0, maxLength: 5 }), fc.boolean())
      .map(([ls, hash]) => (hash ? [...ls, '#'] : ls))
      .map((ls) => ls.join('/'))
      .filter((f) => f.length > 0);
    const reference = (filter: string, topic: string): boolean => {
      const f = filter.split('/');
      const t = topic.split('/');
      if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
      for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') return true;
        if (i >= t.length) return false;
        if (f[i] !== '+' && f[i] !== t[i]) return false;
      }
      return f.length === t.length;
    };
    fc.assert(
      fc.property(filterArb, topicArb, (filter, topic) => {
        expect(validateTopicFilter(filter)).toBeUndefined();
        expect(matches(filter, topic)).toBe(reference(filter, topic));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('helpers', () => {
  it('isWildcard', () => {
    expect(isWildcard('a/+')).toBe(true);
    expect(isWildcard('#')).toBe(true);
    expect(isWildcard('a/b')).toBe(false);
    expect(isWildcard('$share/g/a/b')).toBe(false);
    expect(isWildcard('$share/g/+')).toBe(true);
  });
  it('isDollarTopic', () => {
    expect(isDollarTopic('$SYS/x')).toBe(true);
    expect(isDollarTopic('a/$SYS')).toBe(false);
    expect(isDollarTopic('')).toBe(false);
  });
});

describe('never throws', () => {
  const anyString = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({ unit: fc.constantFrom('a', '/', '+', '#', '$', 'share', '\u0000', '\ud800', '😀') }),
  );
  it('on arbitrary strings', () => {
    fc.assert(
      fc.property(anyString, anyString, fc.constantFrom(3, 4, 5, undefined), (a, b, v) => {
        const version = v as 3 | 4 | 5 | undefined;
        validateTopicName(a, version);
        validateTopicFilter(a, version);
        parseSharedSubscription(a);
        isWildcard(a);
        expect(typeof matches(a, b)).toBe('boolean');
      }),
      { numRuns: 5000 },
    );
  });
  it('on values that are not strings', () => {
    for (const v of [undefined, null, 1, {}, [], Symbol('x')]) {
      const s = v as unknown as string;
      expect(validateTopicName(s)?.message).toBe('topic name is not a string');
      expect(validateTopicFilter(s)?.message).toBe('topic filter is not a string');
      expect(matches(s, 'a')).toBe(false);
      expect(matches('a', s)).toBe(false);
      expect(parseSharedSubscription(s)).toBeUndefined();
    }
  });
});
