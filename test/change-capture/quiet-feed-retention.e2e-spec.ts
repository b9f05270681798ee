import Redis from 'ioredis';
import { Client } from 'pg';
import type { PollingModuleOptions } from '../../src';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const MAX_AGE_MS = 4000;
const FOLLOW_MS = 9000;

/**
 * Index retention must not turn a quiet feed's followers away. While other feeds keep changing,
 * the index floor rises at every prune round; a client that keeps long-polling a feed that never
 * changes (or whose last change aged out) holds a current cursor and must never get a 409: it
 * missed nothing, and a 409 makes it reload its whole state (every quiet feed's client, once per
 * prune round). Its holds (1 s) are within the retention (4 s) or, where the retention is
 * shorter than one poll (20 rows), within the minimum time a quiet feed's floor is remembered.
 */
describe.each([
  ['Redis index, by age', true, { maxAgeMs: MAX_AGE_MS }],
  ['in-memory index, by age', false, { maxAgeMs: MAX_AGE_MS }],
  // 20 rows: the busy feed writes them in 0.2 s, far less than one long poll.
  ['Redis index, by rows', true, { maxRows: 20 }],
])('a quiet feed under index retention (%s)', (_label, shared, retention) => {
  let db: TestDatabase;
  let writer: Client;
  let redis: Redis | undefined;
  let items: ItemsApp | undefined;
  const keyPrefix = uniquePrefix('quiet');

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    const options: Partial<PollingModuleOptions> = {
      retention,
      reader: { pruneIntervalMs: 200 },
    };
    if (shared) {
      redis = new Redis(redisUrl());
      Object.assign(options, { redis: { url: redisUrl() }, keyPrefix });
    }
    items = await startItemsApp(db.url, options);
  });

  afterAll(async () => {
    await items?.close();
    await writer?.end();
    if (redis) {
      await deleteKeys(redis, keyPrefix);
      await redis.quit();
    }
    await db?.drop();
  });

  /** Long-polls `run` (1 s holds) for FOLLOW_MS; returns the statuses it got. */
  async function follow(run: number): Promise<number[]> {
    const first = await fetch(`${items!.url}/runs/${run}/changes`);
    expect(first.status).toBe(200);
    let cursor = ((await first.json()) as { cursor: string }).cursor;
    const statuses: number[] = [];
    const until = Date.now() + FOLLOW_MS;
    while (Date.now() < until) {
      const res = await fetch(`${items!.url}/runs/${run}/changes?since=${cursor}&wait=1`);
      statuses.push(res.status);
      const body = res.status === 204 ? null : ((await res.json()) as { cursor: string });
      cursor = body?.cursor ?? res.headers.get('poll-cursor')!;
    }
    return statuses;
  }

  /** Writes to feed run=2 every 50 ms until stopped: the floor keeps rising. */
  function busyFeed(): { stop(): Promise<void> } {
    let running = true;
    const loop = (async () => {
      while (running) {
        await writer.query(
          "INSERT INTO items (run, body) SELECT 2, 'busy' FROM generate_series(1, 5)",
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  // Both followers at once, under one busy feed: each follows for longer than the retention.
  it('never sends a 409 to a client following a feed that never changed, or whose changes aged out', async () => {
    await writer.query("INSERT INTO items (run, body) VALUES (3, 'once')");
    const busy = busyFeed();
    try {
      const [neverChanged, agedOut] = await Promise.all([follow(1), follow(3)]);
      expect(neverChanged.length).toBeGreaterThan(3);
      expect(neverChanged.filter((s) => s !== 204)).toEqual([]);
      expect(agedOut.length).toBeGreaterThan(3);
      // The first poll may still see the change; after it, nothing but "no change".
      expect(agedOut.slice(1).filter((s) => s !== 204)).toEqual([]);
    } finally {
      await busy.stop();
    }
  }, 30_000);
});
