import { randomBytes } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { indexKeys } from '../../src/change-capture/index-keys';
import { RedisChangeIndex } from '../../src/change-index/redis-change-index';
import { OwnedRedisCluster } from '../support/redis-cluster';
import { describeChangeIndexContract } from './change-index.contract';

jest.setTimeout(60_000);

let cluster: OwnedRedisCluster;
let client: Cluster;

beforeAll(async () => {
  cluster = await OwnedRedisCluster.start({ masters: 3 });
  client = cluster.client();
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

/** The prefix the module gives an index on a cluster: the identity is the hash tag. */
function clusterPrefix(): string {
  return indexKeys('test:', 'public', randomBytes(6).toString('hex'), true).prefix;
}

// The cluster belongs to this file and goes at the end: nothing to clean up per test.
describeChangeIndexContract('RedisChangeIndex on a 3-master Redis Cluster', async () => ({
  index: new RedisChangeIndex(client, clusterPrefix()),
  cleanup: async () => undefined,
}));

describe('RedisChangeIndex on a Redis Cluster', () => {
  it('keeps every key of an index in one slot, whatever the feeds', async () => {
    const prefix = clusterPrefix();
    const index = new RedisChangeIndex(client, prefix);
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    const feeds = Array.from({ length: 50 }, (_, n) => `feed-${n}`);
    const appended = await index.append({
      generation: 'g',
      expectedPosition: 0,
      changes: feeds.map((feed) => ({ feed, resourceId: '1' })),
      readerXid: '10',
      readerId: '1',
    });
    expect(appended).toMatchObject({ ok: true, head: { position: 50 } });
    await index.trim(50);
    const master = await cluster.masterOf(`${prefix}meta`);
    for (const feed of ['feed-0', 'feed-49']) {
      expect(await cluster.masterOf(`${prefix}feed:${feed}`)).toBe(master);
    }
    expect(await index.feedPosition('feed-7')).toEqual({
      kind: 'position',
      generation: 'g',
      position: 50,
      floor: 50,
    });
  });
});
