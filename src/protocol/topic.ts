/**
 * Topic names and topic filters (MQTT 5.0 4.7, 3.1.1 4.7): pure functions that never throw.
 * TODO(helper): implementation in progress.
 */

/** A rule a topic or filter breaks: a message that says what is wrong, and the spec rule id. */
export interface TopicProblem {
  message: string;
  rule?: string;
}

/** undefined when `name` is a valid topic name (non-empty, no wildcards, no U+0000, <= 65,535 bytes). */
export function validateTopicName(name: string): TopicProblem | undefined {
  void name;
  return undefined;
}

/** undefined when `filter` is a valid topic filter ('#' last and alone in its level, '+' alone in its level; shared subscriptions checked). */
export function validateTopicFilter(filter: string): TopicProblem | undefined {
  void filter;
  return undefined;
}

/** Does `topic` match `filter`? '$'-topics are not matched by a leading '#' or '+'. Never throws. */
export function matches(filter: string, topic: string): boolean {
  return filter === topic;
}
