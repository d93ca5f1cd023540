/** Bridge topics in Mosquitto's `topic` syntax: parsing, Mosquitto's validity table, remapping. */
import { describe, expect, it } from 'vitest';
import {
  BridgeSubscriptions,
  BridgeTopicError,
  parseBridgeTopic,
  toLocal,
  toRemote,
} from '../../src/broker/bridge/topics.js';

describe('parseBridgeTopic', () => {
  it('defaults as Mosquitto: direction out, QoS 0, no prefixes', () => {
    expect(parseBridgeTopic('sensors/#')).toMatchObject({
      pattern: 'sensors/#',
      direction: 'out',
      qos: 0,
      localFilter: 'sensors/#',
      remoteFilter: 'sensors/#',
    });
    expect(parseBridgeTopic('a/+ IN 2')).toMatchObject({ direction: 'in', qos: 2 });
  });

  it('filters are prefix + pattern on each side', () => {
    expect(parseBridgeTopic('# both 1 local/topic/ remote/topic/')).toMatchObject({
      localFilter: 'local/topic/#',
      remoteFilter: 'remote/topic/#',
    });
  });

  // mosquitto.conf(5), "topic": which combinations of "" are valid.
  it.each([
    ['t/# in 1 lp/ rp/', true],
    ['t/# in 1 lp/ ""', true],
    ['t/# in 1 "" rp/', true],
    ['t/# in 1 "" ""', true],
    ['"" in 1 lp/t rp/t', true],
    ['"" in 1 lp/t ""', false],
    ['"" in 1 "" rp/t', false],
    ['"" in 1 "" ""', false],
  ])('%s valid: %s', (spec, valid) => {
    if (valid) expect(() => parseBridgeTopic(spec)).not.toThrow();
    else expect(() => parseBridgeTopic(spec)).toThrow(/pattern "" needs both prefixes/);
  });

  it.each([
    ['', /empty/],
    ['a/# sideways', /direction 'sideways' is not in, out or both/],
    ['a/# in 3', /QoS '3' is not 0, 1 or 2/],
    ['a/# in one', /QoS 'one'/],
    ['a/# in 1 l/', /local prefix 'l\/' without a remote prefix/],
    ['a/# in 1 l/ r/ extra', /at most 5/],
    ['a/#/b in 1', /pattern: .*'#'/],
    ['a+ in 1', /pattern: /],
    ['a/# in 1 l/+/ r/', /local prefix: .*wildcard/],
    ['a/# in 1 l/ r/#', /remote prefix: .*wildcard/],
    ['$share/g/a/# in 1', /shared subscription/],
  ])('%j is refused: %s', (spec, message) => {
    expect(() => parseBridgeTopic(spec)).toThrow(BridgeTopicError);
    expect(() => parseBridgeTopic(spec)).toThrow(message);
  });
});

describe('remapping', () => {
  const topics = [
    parseBridgeTopic('sensors/# in 1 lab/ prod/site1/'),
    parseBridgeTopic('cmd/# out 1 "" site1/'),
    parseBridgeTopic('shared/+ both 2 l/ r/'),
    parseBridgeTopic('"" in 0 local/clients remote/$SYS/broker/clients/total'),
    parseBridgeTopic('# out 0'),
  ];

  it('in: remote prefix off, local prefix on', () => {
    expect(toLocal(topics, 'prod/site1/sensors/t1')).toBe('lab/sensors/t1');
    expect(toLocal(topics, 'r/shared/x')).toBe('l/shared/x');
    expect(toLocal(topics, 'remote/$SYS/broker/clients/total')).toBe('local/clients');
  });

  it('out: local prefix off, remote prefix on', () => {
    expect(toRemote(topics, 'cmd/door/open')).toBe('site1/cmd/door/open');
    expect(toRemote(topics, 'l/shared/x')).toBe('r/shared/x');
  });

  it('the first matching topic maps a message (in its direction); none: undefined', () => {
    // 'shared/x' is not l/shared/x: the catch-all '# out' maps it unchanged.
    expect(toRemote(topics, 'shared/x')).toBe('shared/x');
    expect(toLocal(topics, 'sensors/t1')).toBeUndefined();
    expect(toLocal(topics, 'cmd/x')).toBeUndefined();
    expect(toRemote([parseBridgeTopic('a/# in 1')], 'a/b')).toBeUndefined();
  });
});

describe('BridgeSubscriptions', () => {
  const topics = ['# in 0', 'alerts/# in 2', 'alerts/# both 1', 'cmd/# out 1 l/ r/'].map(parseBridgeTopic);

  it('one subscription per filter of its side, at the highest QoS of the topics sharing it', () => {
    expect(new BridgeSubscriptions(topics, 'in').list.map((s) => [s.filter, s.qos])).toEqual([
      ['#', 0],
      ['alerts/#', 2],
    ]);
    expect(new BridgeSubscriptions(topics, 'out').list.map((s) => [s.filter, s.qos])).toEqual([
      ['alerts/#', 1],
      ['l/cmd/#', 1],
    ]);
  });

  it('Subscription Identifiers come from the filter: the same in another run with other topics', () => {
    const a = new BridgeSubscriptions(topics, 'in').list.find((s) => s.filter === 'alerts/#');
    const b = new BridgeSubscriptions([parseBridgeTopic('alerts/# in 1')], 'in').list[0];
    expect(a?.id).toBe(b?.id);
    expect(a?.id).toBeGreaterThanOrEqual(1);
    expect(a?.id).toBeLessThanOrEqual(268_435_455);
  });

  it('copyFor: the subscription of the highest QoS among those that match (the first such)', () => {
    const inSubs = new BridgeSubscriptions(topics, 'in');
    const id = (filter: string) => inSubs.list.find((s) => s.filter === filter)?.id;
    expect(inSubs.copyFor('alerts/fire')).toBe(id('alerts/#'));
    expect(inSubs.copyFor('weather/rain')).toBe(id('#'));
    expect(new BridgeSubscriptions(topics, 'out').copyFor('weather/rain')).toBeUndefined();
  });
});
