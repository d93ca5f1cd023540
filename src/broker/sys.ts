/** $SYS/broker/...: the broker's counters as retained messages, published when a value changed. */
import type { BrokerCore } from './core.js';
import { Message } from './message.js';
import type { BrokerStats } from './options.js';
import { route } from './routing.js';

export class SysTopics {
  private readonly core: BrokerCore;
  private readonly last = new Map<string, string>();

  constructor(core: BrokerCore) {
    this.core = core;
  }

  /** Publishes what changed since the last call; `stats` as Broker.stats reports them. */
  publish(st: BrokerStats, uptimeSeconds: number): void {
    const values: [string, string][] = [
      ['uptime', `${uptimeSeconds} seconds`],
      ['clients/connected', String(st.clientsConnected)],
      ['clients/disconnected', String(st.clientsTotal - st.clientsConnected)],
      ['clients/maximum', String(st.clientsMaximum)],
      ['clients/total', String(st.clientsTotal)],
      // Like Mosquitto: messages/* counts packets of every type, publish/messages/* PUBLISH only.
      ['messages/received', String(st.packetsReceived)],
      ['messages/sent', String(st.packetsSent)],
      ['publish/messages/received', String(st.messagesReceived)],
      ['publish/messages/sent', String(st.messagesSent)],
      ['bytes/received', String(st.bytesReceived)],
      ['bytes/sent', String(st.bytesSent)],
      ['publish/messages/dropped', String(st.messagesDropped)],
      ['retained messages/count', String(st.retainedCount)],
      ['subscriptions/count', String(st.subscriptionCount)],
      ['version', 'mq broker'],
    ];
    for (const [name, value] of values) {
      const topic = `$SYS/broker/${name}`;
      // Like Mosquitto: retained, and only when the value changed.
      if (this.last.get(topic) === value) continue;
      this.last.set(topic, value);
      const msg = new Message(topic, Buffer.from(value), 0, true, undefined, undefined, undefined);
      msg.owned = true;
      route(this.core, msg);
    }
  }
}
