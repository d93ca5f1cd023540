/**
 * Topic names and topic filters (MQTT 5.0 section 4.7 and 4.8.2, 3.1.1 section 4.7): pure functions
 * that never throw, whatever they are given.
 *
 * - A topic name is what a PUBLISH carries: non-empty, no wildcards, no U+0000, at most 65,535
 *   UTF-8 bytes. (A v5 PUBLISH may carry an empty name together with a Topic Alias; that is the
 *   codec's business, not a property of topic names.)
 * - A topic filter is what a SUBSCRIBE carries: '+' and '#' each take a whole level, '#' only as
 *   the last one. Empty levels ('a//b', '/a', 'a/') are valid and match literally.
 * - `$share/{ShareName}/{filter}` is a shared subscription (5.0 4.8.2).
 *
 * Rule ids differ between the specs: 5.0 numbers the '#' rule MQTT-4.7.1-1 and the '+' rule
 * MQTT-4.7.1-2, 3.1.1 numbers them MQTT-4.7.1-2 and MQTT-4.7.1-3. Pass the version to get the ids
 * of the spec in use (default 5).
 */
import type { ProtocolVersion } from './types.js';

/** A rule a topic or filter breaks: a message that says what is wrong, and the spec rule id. */
export interface TopicProblem {
  message: string;
  rule?: string;
}

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;
const MAX_BYTES = 65_535;
const SHARE_PREFIX = '$share/';

/** Spec rule ids per version (3.1 has no ids; it gets the 3.1.1 ones). */
const RULES = {
  5: {
    nameWildcard: 'MQTT-3.3.2-2',
    hash: 'MQTT-4.7.1-1',
    plus: 'MQTT-4.7.1-2',
    empty: 'MQTT-4.7.3-1',
    nul: 'MQTT-4.7.3-2',
    tooLong: 'MQTT-4.7.3-3',
    surrogate: 'MQTT-1.5.4-1',
  },
  4: {
    nameWildcard: 'MQTT-3.3.2-2',
    hash: 'MQTT-4.7.1-2',
    plus: 'MQTT-4.7.1-3',
    empty: 'MQTT-4.7.3-1',
    nul: 'MQTT-4.7.3-2',
    tooLong: 'MQTT-4.7.3-3',
    surrogate: 'MQTT-1.5.3-1',
  },
} as const;

function rulesFor(version: ProtocolVersion | undefined): (typeof RULES)[4 | 5] {
  return version === 3 || version === 4 ? RULES[4] : RULES[5];
}

/** `'a/+'` for messages: control characters escaped, long strings cut. */
export function quoteTopic(s: string): string {
  const max = 80;
  let cut = s.length > max ? s.slice(0, max) : s;
  // Do not leave half a surrogate pair at the cut.
  if (cut.length === max) {
    const last = cut.charCodeAt(max - 1);
    if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  }
  const shown = cut.replace(
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return `'${shown}${s.length > max ? '...' : ''}'`;
}

/**
 * UTF-8 length of `s` (lone surrogates count 3 bytes, as Buffer.from writes U+FFFD), and the index
 * of the first U+0000 and of the first lone surrogate (-1 when none).
 */
function scan(s: string): { bytes: number; nul: number; surrogate: number } {
  let bytes = 0;
  let nul = -1;
  let surrogate = -1;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
      if (c === 0 && nul < 0) nul = i;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
        if (surrogate < 0) surrogate = i;
      }
    } else {
      bytes += 3;
      if (c >= 0xdc00 && c <= 0xdfff && surrogate < 0) surrogate = i;
    }
  }
  return { bytes, nul, surrogate };
}

/** Problems every topic name and filter can have: empty, U+0000, a lone surrogate, too long. */
function commonProblem(
  s: string,
  what: string,
  version: ProtocolVersion | undefined,
): TopicProblem | undefined {
  const rules = rulesFor(version);
  if (s.length === 0) return { message: `${what} is empty`, rule: rules.empty };
  const { bytes, nul, surrogate } = scan(s);
  if (nul >= 0) {
    return { message: `${what} ${quoteTopic(s)} contains U+0000 at character ${nul}`, rule: rules.nul };
  }
  if (surrogate >= 0) {
    return {
      message: `${what} ${quoteTopic(s)} contains an unpaired UTF-16 surrogate at character ${surrogate} (not encodable as UTF-8)`,
      rule: rules.surrogate,
    };
  }
  if (bytes > MAX_BYTES) {
    return {
      message: `${what} is ${bytes} bytes long, more than the maximum ${MAX_BYTES}`,
      rule: rules.tooLong,
    };
  }
  return undefined;
}

/**
 * undefined when `name` is a valid topic name (non-empty, no wildcards, no U+0000, <= 65,535 UTF-8
 * bytes). `version` only selects the rule ids reported.
 */
export function validateTopicName(name: string, version?: ProtocolVersion): TopicProblem | undefined {
  if (typeof name !== 'string') return { message: 'topic name is not a string' };
  const common = commonProblem(name, 'topic name', version);
  if (common) return common;
  const plus = name.indexOf('+');
  const hash = name.indexOf('#');
  if (plus >= 0 || hash >= 0) {
    const which = hash < 0 || (plus >= 0 && plus < hash) ? '+' : '#';
    return {
      message: `topic name ${quoteTopic(name)} contains the wildcard '${which}'`,
      rule: rulesFor(version).nameWildcard,
    };
  }
  return undefined;
}

/** The wildcard rules for a plain (not shared) filter: '+' and '#' alone in their level, '#' last. */
function wildcardProblem(
  filter: string,
  whole: string,
  version: ProtocolVersion | undefined,
): TopicProblem | undefined {
  const rules = rulesFor(version);
  const n = filter.length;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c !== PLUS && c !== HASH) continue;
    const alone =
      (i === 0 || filter.charCodeAt(i - 1) === SLASH) && (i === n - 1 || filter.charCodeAt(i + 1) === SLASH);
    if (c === PLUS) {
      if (!alone) {
        return {
          message: `topic filter ${quoteTopic(whole)} has '+' at character ${i} that does not take a whole level`,
          rule: rules.plus,
        };
      }
    } else if (!alone) {
      return {
        message: `topic filter ${quoteTopic(whole)} has '#' at character ${i} that does not take a whole level`,
        rule: rules.hash,
      };
    } else if (i !== n - 1) {
      return {
        message: `topic filter ${quoteTopic(whole)} has '#' at character ${i} that is not the last level`,
        rule: rules.hash,
      };
    }
  }
  return undefined;
}

/**
 * undefined when `filter` is a valid topic filter: '#' last and alone in its level, '+' alone in
 * its level, non-empty, no U+0000, <= 65,535 UTF-8 bytes. For version 5 (the default),
 * `$share/{ShareName}/{filter}` is checked as a shared subscription [MQTT-4.8.2-1] [MQTT-4.8.2-2];
 * for 3.1 and 3.1.1 it is an ordinary filter.
 */
export function validateTopicFilter(filter: string, version?: ProtocolVersion): TopicProblem | undefined {
  if (typeof filter !== 'string') return { message: 'topic filter is not a string' };
  if (plainValidFilter(filter)) return undefined;
  const common = commonProblem(filter, 'topic filter', version);
  if (common) return common;
  // Quoted only on failure: valid filters (the codec checks every SUBSCRIBE) cost no string work.
  const shown = (): string => quoteTopic(filter);
  if (version !== 3 && version !== 4 && filter.startsWith(SHARE_PREFIX)) {
    const end = filter.indexOf('/', SHARE_PREFIX.length);
    const group = end < 0 ? filter.slice(SHARE_PREFIX.length) : filter.slice(SHARE_PREFIX.length, end);
    if (group.length === 0) {
      return { message: `shared subscription ${shown()} has an empty share name`, rule: 'MQTT-4.8.2-1' };
    }
    const bad = group.search(/[+#]/);
    if (bad >= 0) {
      return {
        message: `shared subscription ${shown()} has '${group[bad]}' in its share name '${group}'`,
        rule: 'MQTT-4.8.2-2',
      };
    }
    if (end < 0 || end === filter.length - 1) {
      return {
        message: `shared subscription ${shown()} has no topic filter after the share name '${group}'`,
        rule: 'MQTT-4.8.2-2',
      };
    }
    return wildcardProblem(filter.slice(end + 1), filter, version);
  }
  return wildcardProblem(filter, filter, version);
}

/**
 * The common case in one pass, for the codec's hot path: a printable-ASCII filter that does not
 * start with '$', whose '+' and '#' each stand alone in their level ('#' last). false means "take
 * the full path", not "invalid".
 */
function plainValidFilter(f: string): boolean {
  const n = f.length;
  if (n === 0 || n > 16_383 || f.charCodeAt(0) === DOLLAR) return false;
  let levelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = f.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
    if (c === SLASH) levelStart = i + 1;
    else if (c === PLUS) {
      if (i !== levelStart || (i + 1 < n && f.charCodeAt(i + 1) !== SLASH)) return false;
    } else if (c === HASH) {
      if (i !== levelStart || i !== n - 1) return false;
    }
  }
  return true;
}

/**
 * `$share/{group}/{filter}` split into its parts; undefined when `filter` is not a well-formed
 * shared subscription (validateTopicFilter says why). The inner filter is not validated.
 */
export function parseSharedSubscription(filter: string): { group: string; filter: string } | undefined {
  if (typeof filter !== 'string' || !filter.startsWith(SHARE_PREFIX)) return undefined;
  const end = filter.indexOf('/', SHARE_PREFIX.length);
  if (end <= SHARE_PREFIX.length || end === filter.length - 1) return undefined;
  const group = filter.slice(SHARE_PREFIX.length, end);
  if (group.includes('+') || group.includes('#')) return undefined;
  return { group, filter: filter.slice(end + 1) };
}

/** Does `filter` (or, for a shared subscription, its inner filter) contain a wildcard? */
export function isWildcard(filter: string): boolean {
  if (typeof filter !== 'string') return false;
  const inner = parseSharedSubscription(filter)?.filter ?? filter;
  return inner.includes('+') || inner.includes('#');
}

/**
 * Does `topic` (a topic name, or a filter without its `$share/group/` prefix) have more than `max`
 * levels? A topic shorter than `max` cannot, so the usual case costs no scan.
 */
export function hasMoreLevelsThan(topic: string, max: number): boolean {
  const n = topic.length;
  if (n < max) return false;
  let slashes = 0;
  for (let i = 0; i < n; i++) if (topic.charCodeAt(i) === SLASH && ++slashes >= max) return true;
  return false;
}

/** Is `topic` a `$`-topic ($SYS/...), which a leading wildcard does not match [MQTT-4.7.2-1]? */
export function isDollarTopic(topic: string): boolean {
  return typeof topic === 'string' && topic.charCodeAt(0) === DOLLAR;
}

/**
 * Does `topic` match `filter`? '+' matches one level (an empty one too), '#' the parent level and
 * any number of levels below; '$'-topics are not matched by a leading '+' or '#' [MQTT-4.7.2-1]. A
 * shared subscription matches what its inner filter matches. Wildcards that break the filter rules
 * ('a#', '+a', 'a/#/b') are taken literally. Never throws; no allocation for plain filters.
 */
export function matches(filter: string, topic: string): boolean {
  if (typeof filter !== 'string' || typeof topic !== 'string') return false;
  if (filter.charCodeAt(0) === DOLLAR && filter.startsWith(SHARE_PREFIX)) {
    const shared = parseSharedSubscription(filter);
    if (shared) filter = shared.filter;
  }
  const fl = filter.length;
  const tl = topic.length;
  let fi = 0;
  let ti = 0;
  // [MQTT-4.7.2-1] a leading wildcard level does not match a '$' topic.
  if (tl > 0 && topic.charCodeAt(0) === DOLLAR && fl > 0) {
    const c = filter.charCodeAt(0);
    if ((c === PLUS || c === HASH) && (fl === 1 || filter.charCodeAt(1) === SLASH)) return false;
  }
  for (;;) {
    // Both fi and ti are at the start of a level.
    const c = fi < fl ? filter.charCodeAt(fi) : -1;
    if (c === HASH && fi === fl - 1) return true;
    if (c === PLUS && (fi === fl - 1 || filter.charCodeAt(fi + 1) === SLASH)) {
      while (ti < tl && topic.charCodeAt(ti) !== SLASH) ti++;
      fi++;
    } else {
      while (fi < fl) {
        const f = filter.charCodeAt(fi);
        if (f === SLASH) break;
        if (ti >= tl || topic.charCodeAt(ti) !== f) return false;
        fi++;
        ti++;
      }
      if (ti < tl && topic.charCodeAt(ti) !== SLASH) return false;
    }
    // Both at a '/' or at the end.
    if (fi >= fl) return ti >= tl;
    if (ti >= tl) {
      // The topic ended: 'a/#' still matches 'a' ('#' includes the parent level).
      return fi + 2 === fl && filter.charCodeAt(fi + 1) === HASH;
    }
    fi++;
    ti++;
  }
}
