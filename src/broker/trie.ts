/**
 * The subscription trie: one node per topic level, '+' and '#' kept apart from literal children so
 * a match walks at most three branches per level. Filters are validated before they get here
 * (protocol/topic.ts); this module only stores and matches.
 */
import type { QoS } from '../protocol/index.js';
import { parseSharedSubscription } from '../protocol/topic.js';
import type { Session } from './session.js';

/** One subscription of one session (the key in Session.subs is `filter`, shares included). */
export interface SubEntry {
  session: Session;
  /** The full filter as subscribed, `$share/g/a/b` included. */
  filter: string;
  /** The filter without the `$share/group/` prefix. */
  topicFilter: string;
  group: string | undefined;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId: number | undefined;
}

/** The subscription of `session` to `filter` (a valid filter; `$share/group/...` is a shared one). */
export function subEntry(
  session: Session,
  filter: string,
  qos: QoS,
  options: Pick<SubEntry, 'noLocal' | 'retainAsPublished' | 'retainHandling' | 'subscriptionId'>,
): SubEntry {
  const shared = parseSharedSubscription(filter);
  return {
    session,
    filter,
    topicFilter: shared?.filter ?? filter,
    group: shared?.group,
    qos,
    noLocal: options.noLocal,
    retainAsPublished: options.retainAsPublished,
    retainHandling: options.retainHandling,
    subscriptionId: options.subscriptionId,
  };
}

/** Members of one `$share/group/filter`, served round-robin. */
export interface SharedGroup {
  name: string;
  members: SubEntry[];
  next: number;
}

/**
 * One topic level. The first literal child is kept inline (`key`, `only`); a Map is made only for
 * a second one: most nodes have one child (a chain like `a/b/c`, or `////` from a hostile filter),
 * and a Map per level cost ~250 bytes where the inline child costs ~80.
 */
class Node {
  key: string | undefined = undefined;
  only: Node | undefined = undefined;
  children: Map<string, Node> | undefined = undefined;
  plus: Node | undefined = undefined;
  hash: Node | undefined = undefined;
  subs: SubEntry[] | undefined = undefined;
  shared: Map<string, SharedGroup> | undefined = undefined;

  child(level: string): Node | undefined {
    if (this.children !== undefined) return this.children.get(level);
    return this.key === level ? this.only : undefined;
  }

  addChild(level: string, node: Node): void {
    if (this.children !== undefined) this.children.set(level, node);
    else if (this.only === undefined) {
      this.key = level;
      this.only = node;
    } else {
      this.children = new Map([[this.key!, this.only]]);
      this.children.set(level, node);
      this.key = undefined;
      this.only = undefined;
    }
  }

  deleteChild(level: string): void {
    if (this.children !== undefined) this.children.delete(level);
    else if (this.key === level) {
      this.key = undefined;
      this.only = undefined;
    }
  }

  get empty(): boolean {
    return (
      this.only === undefined &&
      (this.children === undefined || this.children.size === 0) &&
      this.plus === undefined &&
      this.hash === undefined &&
      (this.subs === undefined || this.subs.length === 0) &&
      (this.shared === undefined || this.shared.size === 0)
    );
  }
}

/** One copy to deliver: 3.1.1 sessions get one per session at the highest QoS, v5 one per subscription. */
export interface Target {
  session: Session;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  subIds: number[] | undefined;
}

/** What a topic matched: plain subscriptions and shared groups (one member of each gets a copy). */
export interface MatchResult {
  subs: SubEntry[];
  shared: SharedGroup[];
  /** Derived from subs by the broker on first use; dropped with the cache. */
  targets?: Target[];
}

const EMPTY: MatchResult = { subs: [], shared: [] };
/**
 * Topics longer than this are matched every time, not cached: the cache holds its keys, and
 * 10,000 distinct 64 KB topics (no subscriber needed) would have pinned 655 MB.
 */
const MAX_CACHED_TOPIC = 1024;

export class SubscriptionTrie {
  private readonly root = new Node();
  private readonly cache = new Map<string, MatchResult>();
  private cacheLimit = 10_000;
  count = 0;

  /** Adds or replaces (same session, same full filter) a subscription. */
  add(entry: SubEntry): void {
    const node = this.walk(entry.topicFilter, true)!;
    this.cache.clear();
    if (entry.group === undefined) {
      node.subs ??= [];
      const i = node.subs.findIndex((s) => s.session === entry.session);
      if (i >= 0) node.subs[i] = entry;
      else {
        node.subs.push(entry);
        this.count++;
      }
      return;
    }
    node.shared ??= new Map();
    let group = node.shared.get(entry.group);
    if (group === undefined) {
      group = { name: entry.group, members: [], next: 0 };
      node.shared.set(entry.group, group);
    }
    const i = group.members.findIndex((s) => s.session === entry.session);
    if (i >= 0) group.members[i] = entry;
    else {
      group.members.push(entry);
      this.count++;
    }
  }

  /** Removes `entry` (matched by session and full filter); true when it was there. */
  remove(entry: SubEntry): boolean {
    const path: Node[] = [];
    const node = this.walk(entry.topicFilter, false, path);
    if (node === undefined) return false;
    let removed = false;
    if (entry.group === undefined) {
      const i = node.subs?.findIndex((s) => s.session === entry.session) ?? -1;
      if (i >= 0) {
        node.subs!.splice(i, 1);
        removed = true;
      }
    } else {
      const group = node.shared?.get(entry.group);
      const i = group?.members.findIndex((s) => s.session === entry.session) ?? -1;
      if (group !== undefined && i >= 0) {
        group.members.splice(i, 1);
        if (group.next > i) group.next--;
        if (group.members.length === 0) node.shared!.delete(entry.group);
        removed = true;
      }
    }
    if (!removed) return false;
    this.count--;
    this.cache.clear();
    this.prune(entry.topicFilter, path);
    return true;
  }

  /** Invalidates cached match results (after a session's protocol version changed, say). */
  invalidate(): void {
    this.cache.clear();
  }

  /** Every subscription matching `topic` (a valid topic name); cached until the trie changes. */
  match(topic: string): MatchResult {
    const cached = this.cache.get(topic);
    if (cached !== undefined) return cached;
    const out: MatchResult = { subs: [], shared: [] };
    const levels = topic.split('/');
    // [MQTT-4.7.2-1] topics starting with '$' are not matched by a leading wildcard.
    collect(this.root, levels, out, topic.charCodeAt(0) === 0x24);
    const result = out.subs.length === 0 && out.shared.length === 0 ? EMPTY : out;
    if (topic.length > MAX_CACHED_TOPIC) return result;
    if (this.cache.size >= this.cacheLimit) this.cache.clear();
    this.cache.set(topic, result);
    return result;
  }

  private walk(filter: string, create: boolean, path?: Node[]): Node | undefined {
    let node = this.root;
    for (const level of filter.split('/')) {
      path?.push(node);
      let next: Node | undefined;
      if (level === '+') {
        next = node.plus;
        if (next === undefined && create) next = node.plus = new Node();
      } else if (level === '#') {
        next = node.hash;
        if (next === undefined && create) next = node.hash = new Node();
      } else {
        next = node.child(level);
        if (next === undefined && create) {
          next = new Node();
          node.addChild(level, next);
        }
      }
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private prune(filter: string, path: Node[]): void {
    const levels = filter.split('/');
    for (let i = levels.length - 1; i >= 0; i--) {
      const parent = path[i]!;
      const level = levels[i]!;
      const child = level === '+' ? parent.plus : level === '#' ? parent.hash : parent.child(level);
      if (child === undefined || !child.empty) return;
      if (level === '+') parent.plus = undefined;
      else if (level === '#') parent.hash = undefined;
      else parent.deleteChild(level);
    }
  }
}

/**
 * Every subscription matching the topic `levels`, depth first with an explicit stack: a topic has
 * as many levels as the client sent (a recursive walk of 20,000 levels overflowed the stack). The
 * literal child is visited before '+', as the recursive walk did, so the order of `out` is the same.
 */
function collect(root: Node, levels: string[], out: MatchResult, dollar: boolean): void {
  const n = levels.length;
  const nodes: Node[] = [root];
  const depths: number[] = [0];
  for (;;) {
    const node = nodes.pop();
    if (node === undefined) return;
    const i = depths.pop()!;
    const wild = !(dollar && i === 0);
    if (wild && node.hash !== undefined) add(node.hash, out);
    if (i === n) {
      add(node, out);
      continue;
    }
    if (wild && node.plus !== undefined) {
      nodes.push(node.plus);
      depths.push(i + 1);
    }
    const child = node.child(levels[i]!);
    if (child !== undefined) {
      nodes.push(child);
      depths.push(i + 1);
    }
  }
}

function add(node: Node, out: MatchResult): void {
  if (node.subs !== undefined) for (const s of node.subs) out.subs.push(s);
  if (node.shared !== undefined) for (const g of node.shared.values()) out.shared.push(g);
}
