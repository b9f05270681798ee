import Redis from 'ioredis';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import type { ChangeNotice } from '../../src/change-bus/change-notice.interface';
import { PlainBusChannel } from '../../src/change-bus/plain-bus-channel';
import { RedisBusRelay } from '../../src/change-bus/redis-bus-relay';
import { redisUrl, uniquePrefix } from '../support/redis-test';
import { waitFor } from '../support/wait-for';

/** Two instances' buses linked through Redis; the first one's publisher connection drops. */
describe('a bus notice whose publish failed', () => {
  const channel = `${uniquePrefix('publish-retry')}bus`;
  const clients: Redis[] = [];
  const relays: RedisBusRelay[] = [];

  async function instance(): Promise<{ bus: ChangeBus; publisher: Redis; seen: ChangeNotice[] }> {
    const publisher = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
    publisher.on('error', () => undefined);
    clients.push(publisher);
    const bus = new ChangeBus();
    const relay = new RedisBusRelay(new PlainBusChannel(publisher, channel), bus);
    await relay.start();
    relays.push(relay);
    const seen: ChangeNotice[] = [];
    bus.notices$.subscribe((n) => seen.push(n));
    return { bus, publisher, seen };
  }

  afterAll(async () => {
    for (const relay of relays) await relay.close();
    for (const client of clients) client.disconnect();
  });

  it('wakes every other instance once publishing works again', async () => {
    const leader = await instance();
    const other = await instance();

    // The leader's publisher connection is gone: the notice reaches only its own process.
    leader.publisher.disconnect();
    await waitFor(() => leader.publisher.status === 'end', { message: 'publisher closed' });
    const notice: ChangeNotice = { kind: 'changes', generation: 'g', position: 1, feeds: ['a'] };
    leader.bus.publish(notice);
    expect(leader.seen).toEqual([notice]);
    await new Promise((r) => setTimeout(r, 300));
    expect(other.seen).toEqual([]);

    // Once it is back, the other instance is told to re-check everything.
    await leader.publisher.connect();
    await waitFor(() => other.seen.length > 0, {
      timeoutMs: 3000,
      message: 'the other instance was woken after the failed publish',
    });
    expect(other.seen).toEqual([{ kind: 'wake-all', reason: 'republish' }]);
  });
});
