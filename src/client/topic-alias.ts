/**
 * MQTT 5 topic aliases (3.3.2.3.4), one object per direction, reset on every new connection.
 */

/**
 * Outgoing: a topic gets an alias the second time it is published (a one-off message gains
 * nothing from one): that PUBLISH carries the topic and the fresh alias, later ones an empty topic
 * and the alias alone. Aliases are assigned until the broker's Topic Alias Maximum is used up;
 * topics beyond that go out in full.
 */
export class OutgoingAliases {
  private readonly byTopic = new Map<string, number>();
  /** Topics published once so far (bounded: forgotten in bulk when it grows large). */
  private readonly seen = new Set<string>();
  constructor(readonly maximum: number) {}

  /**
   * The alias for `topic`: `{ alias, known }` where known means the broker has it already (send an
   * empty topic), not known means a fresh one (send topic and alias). undefined: send the topic
   * without an alias (table full, or aliases not allowed).
   */
  apply(topic: string): { topic: string; alias?: number } {
    const alias = this.aliasFor(topic);
    if (alias === 0) return { topic };
    return { topic: alias > 0 ? '' : topic, alias: Math.abs(alias) };
  }

  /**
   * Allocation-free form of apply() for the send path: > 0 the broker knows this alias (send an
   * empty topic), < 0 a fresh alias -n (send the topic too), 0 no alias.
   */
  aliasFor(topic: string): number {
    if (this.maximum <= 0 || topic === '') return 0;
    const known = this.byTopic.get(topic);
    if (known !== undefined) return known;
    if (this.byTopic.size >= this.maximum) return 0;
    if (!this.seen.has(topic)) {
      if (this.seen.size >= 4096) this.seen.clear();
      this.seen.add(topic);
      return 0;
    }
    this.seen.delete(topic);
    const alias = this.byTopic.size + 1;
    this.byTopic.set(topic, alias);
    return -alias;
  }

  /** The user set an explicit alias for a topic: remember it so later sends agree. */
  remember(topic: string, alias: number): void {
    for (const [t, a] of this.byTopic) if (a === alias) this.byTopic.delete(t);
    this.byTopic.set(topic, alias);
  }

  reset(): void {
    this.byTopic.clear();
    this.seen.clear();
  }
}

/** Incoming: resolves aliases the broker sets; `maximum` is what the client announced in CONNECT. */
export class IncomingAliases {
  private readonly byAlias = new Map<number, string>();
  constructor(readonly maximum: number) {}

  /**
   * The topic a PUBLISH stands for. Returns an error message (for DISCONNECT 0x94 Topic Alias
   * invalid) when the alias is 0 or above the maximum (a Protocol Error, 5.0 3.3.2.3.4), or unknown with an empty topic.
   */
  resolve(topic: string, alias: number | undefined): { topic: string } | { error: string } {
    if (alias === undefined) return { topic };
    if (alias === 0 || alias > this.maximum) {
      return {
        error: `topic alias ${alias} is outside 1..${this.maximum} (the Topic Alias Maximum mq announced)`,
      };
    }
    if (topic !== '') {
      this.byAlias.set(alias, topic);
      return { topic };
    }
    const known = this.byAlias.get(alias);
    if (known === undefined) return { error: `topic alias ${alias} was never set on this connection` };
    return { topic: known };
  }

  reset(): void {
    this.byAlias.clear();
  }
}
