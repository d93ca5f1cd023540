/** UNSUBSCRIBE: each filter's subscription goes; UNSUBACK says per filter what was found (v5). */
import { ReasonCode, type UnsubscribePacket, validateTopicFilter } from '../../protocol/index.js';
import { hasMoreLevelsThan, parseSharedSubscription } from '../../protocol/topic.js';
import type { Connection } from '../connection.js';
import type { BrokerCore } from '../core.js';

export function handleUnsubscribe(core: BrokerCore, c: Connection, p: UnsubscribePacket): void {
  const s = c.session!;
  const codes: number[] = [];
  for (const filter of p.topicFilters) {
    const entry = s.subs.get(filter);
    if (entry !== undefined) {
      s.subs.delete(filter);
      core.trie.remove(entry);
      codes.push(0);
    } else if (
      validateTopicFilter(filter, 5) !== undefined ||
      hasMoreLevelsThan(parseSharedSubscription(filter)?.filter ?? filter, core.maxTopicLevels)
    ) {
      codes.push(ReasonCode.TopicFilterInvalid);
    } else codes.push(ReasonCode.NoSubscriptionExisted);
  }
  c.writePacket({ type: 'UNSUBACK', packetId: p.packetId, reasonCodes: c.version === 5 ? codes : [] });
  core.persist?.session(s);
}
