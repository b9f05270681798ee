import Redis from 'ioredis';
import { Client } from 'pg';
import type { IndexKeys } from '../../src/change-capture/index-keys';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { POLLING_INDEX_KEYS } from '../../src/polling.tokens';
import { createItemsTable, insertItem } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import { MemberFeedsController } from './member-feeds';
import { ScopedBatchController } from './scoped-feeds';

/*
 * One feed of a batch that cannot be read from the index (its key in a shared Redis is damaged:
 * every read of it fails) answers that feed's own 503; the batch still delivers the other feeds.
 * Only when no feed can be read is the batch itself the 503 (with Retry-After).
 */

let db: TestDatabase;
let writer: Client;
let redis: Redis;
let host: Started;
let held: HeldRequests;
const keyPrefix = uniquePrefix('batch-feed-errors');

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  redis = new Redis(redisUrl());
  host = await startApp(
    db,
    { controllers: [MemberFeedsController, ScopedBatchController] },
    undefined,
    { redis: { url: redisUrl() }, keyPrefix },
  );
  held = host.app.get(HeldRequests);
}, 30_000);

afterAll(async () => {
  await host?.close();
  await writer?.end();
  if (redis) {
    await deleteKeys(redis, keyPrefix);
    await redis.quit();
  }
  await db?.drop();
});

/** Replaces the feed's sorted set in the index with a string: every read of that feed fails. */
async function damage(feed: string): Promise<void> {
  const keys = host.app.get<IndexKeys>(POLLING_INDEX_KEYS);
  await redis.set(`${keys.prefix}feed:${feed}`, 'not a sorted set');
}

it('answers 503 for the unreadable feed and delivers the others', async () => {
  const broken = '/members/41/typed';
  const fine = '/members/42/typed';
  const start = await batch(host.url, { [broken]: null, [fine]: null });
  expectStatus(start, 200);
  const since = { [broken]: start.feeds[broken].cursor!, [fine]: start.feeds[fine].cursor! };
  await insertItem(writer, 41, 'member');
  const id = await insertItem(writer, 42, 'member');
  const indexed = await batch(host.url, { [fine]: since[fine] }, {}, 5);
  expect(indexed.feeds[fine]).toMatchObject({ status: 200, body: { ids: [id] } });
  await damage('items:41');

  const answer = await batch(host.url, since, {}, 5);
  expectStatus(answer, 200);
  expect(answer.feeds[fine]).toMatchObject({ status: 200, body: { ids: [id] } });
  expect(answer.feeds[broken]).toMatchObject({ status: 503, body: { statusCode: 503 } });
  expect(held.size).toBe(0);
});

it('is a 503 with Retry-After when no feed of the batch can be read', async () => {
  const broken = '/members/43/typed';
  const start = await batch(host.url, { [broken]: null });
  expectStatus(start, 200);
  await damage('items:43');
  const res = await fetch(`${host.url}/poll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ feeds: { [broken]: start.feeds[broken].cursor }, wait: 5 }),
  });
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(await res.json()).toMatchObject({ statusCode: 503 });
});
