import Redis from 'ioredis';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  itemsOptions,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

const FEEDS = 100_000;
const MAX_AGE_MS = 5000;

/**
 * Bounded Redis memory (issue 13): 100k partitioned feeds that age out leave the Redis index
 * entirely, also when the reader that wrote them is gone and a new one leads (a deploy more
 * frequent than the retention).
 */
describe('index retention across a restart', () => {
  let db: TestDatabase;
  let polling: PollingApp | undefined;
  let writer: Client;
  let redis: Redis;
  const keyPrefix = uniquePrefix('retention');
  const options = (pruneIntervalMs: number) =>
    itemsOptions(db, {
      redis: { url: redisUrl() },
      keyPrefix,
      retention: { maxAgeMs: MAX_AGE_MS },
      reader: { pruneIntervalMs },
      // Quiet feeds keep their floors for two retention windows, and at least two of the longest
      // holds: short ones here, so the retention decides.
      http: { maxWaitS: 2, defaultWaitS: 2 },
    });

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    redis = new Redis(redisUrl());
  });

  afterAll(async () => {
    await polling?.close();
    await writer?.end();
    await deleteKeys(redis, keyPrefix);
    await redis?.quit();
    await db?.drop();
  });

  /** Keys under the prefix, and the most entries any of them (but the head's hash) holds. */
  async function footprint(): Promise<{ keys: number; largest: number }> {
    let cursor = '0';
    let keys = 0;
    let largest = 0;
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 5000);
      cursor = next;
      keys += batch.length;
      for (const key of batch.filter((k) => !k.includes('feed:') && !k.endsWith('meta'))) {
        const type = await redis.type(key);
        const size =
          type === 'zset'
            ? await redis.zcard(key)
            : type === 'set'
              ? await redis.scard(key)
              : type === 'hash'
                ? await redis.hlen(key)
                : 0;
        largest = Math.max(largest, size);
      }
    } while (cursor !== '0');
    return { keys, largest };
  }

  it('drops 100k aged-out feeds after the reader that indexed them restarted', async () => {
    // Its one prune round runs at start, before the writes: it never trims them.
    polling = await startPollingApp(options(3_600_000));
    const start = (await polling.index.head())!.position;
    await writer.query('INSERT INTO items (run) SELECT g FROM generate_series(1, $1::int) g', [
      FEEDS,
    ]);
    await waitFor(async () => (await polling!.index.head())!.position === start + FEEDS, {
      timeoutMs: 60_000,
      message: '100k changes indexed',
    });
    await polling.close();
    polling = undefined;
    await new Promise((resolve) => setTimeout(resolve, MAX_AGE_MS)); // all of it aged out
    expect((await footprint()).keys).toBeGreaterThan(FEEDS);

    polling = await startPollingApp(options(250)); // a new leader, with none of the old one's memory
    await waitFor(
      async () => {
        const { keys, largest } = await footprint();
        return keys <= 5 && largest <= 2;
      },
      { timeoutMs: MAX_AGE_MS + 30_000, intervalMs: 500, message: 'aged-out feeds left Redis' },
    );
    const head = (await polling.index.head())!;
    expect(head.floor).toBe(start + FEEDS);
    expect(await polling.index.feedPosition('items:7')).toMatchObject({ floor: start + FEEDS });
  }, 120_000);
});
