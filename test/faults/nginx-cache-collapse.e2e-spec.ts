import { CollapseStack, type CollapseRound } from '../support/cache-collapse';
import { createItemsTable } from '../support/polling-app';
import { redisUrl } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const FOLLOWERS = 2000;

/**
 * nginx's proxy_cache with proxy_cache_lock (docker/nginx.conf) in front of two instances:
 * followers of a public feed at one cursor collapse into one app request per change; a private
 * feed's polls are never cached.
 */
describe('a caching proxy in front of public feeds (docker/nginx.conf)', () => {
  let db: TestDatabase;
  let stack: CollapseStack;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    stack = await CollapseStack.start(db.url, redisUrl());
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
  });

  it(`answers ${FOLLOWERS} followers of one public feed with at most 2 app requests per instance`, async () => {
    const round: CollapseRound = await stack.round(FOLLOWERS);
    process.stdout.write(`${JSON.stringify(round)}\n`);
    expect(round.delivered).toBe(FOLLOWERS);
    for (const requests of round.appRequests) expect(requests).toBeLessThanOrEqual(2);
    expect(round.appRequests.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('never caches a private feed, nor queues its polls behind a cache lock', async () => {
    const round = await stack.round(200, 'runs');
    expect(round.delivered).toBe(200);
    expect(round.appRequests.reduce((a, b) => a + b, 0)).toBe(200);
    // Not even consulted ('-'): a cache lock on this route would make each poll wait for the
    // one before it (nothing private is shareable), and a MISS/BYPASS would show the cache on.
    expect(round.cacheStatuses).toEqual({ '-': 200 });
  }, 60_000);
});
