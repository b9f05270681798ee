import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

/**
 * An index whose app was down for longer than the reader state's live window (10 minutes) while
 * another index of the same change log pruned it: the rows it never read are gone, so its
 * followers must be told to refetch (a new generation), never given the rest with a 200.
 */
describe('an index that comes back after the live window', () => {
  const prefix = uniquePrefix('reader-down');
  const options = { keyPrefix: prefix, retention: { maxRows: 5 }, reader: { pruneIntervalMs: 50 } };
  let db: TestDatabase;
  let admin: Redis;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    admin = new Redis(redisUrl());
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await deleteKeys(admin, prefix);
    admin.disconnect();
    await db?.drop();
  });

  async function poll(items: ItemsApp, cursor: string | null) {
    const query = cursor === null ? '' : `?since=${cursor}&wait=2`;
    const res = await fetch(`${items.url}/runs/1/changes${query}`);
    const body = res.status === 200 ? ((await res.json()) as ChangesBody) : null;
    return { status: res.status, ids: body?.changes.map((c) => c.id) ?? [], cursor: body?.cursor };
  }

  it('tells the follower of an index that was down past the live window to refetch', async () => {
    // The Redis-backed app keeps the default retention (a day): only the other app prunes.
    const redisOptions = { keyPrefix: prefix, redis: { url: redisUrl() } };
    const down = await startItemsApp(db.url, redisOptions);
    const pruning = await startItemsApp(db.url, options);
    let back: ItemsApp | null = null;
    try {
      const cursor = (await poll(down, null)).cursor!;
      await new Promise((resolve) => setTimeout(resolve, 200)); // both stored their state
      await down.close();
      // It stays away for longer than the 10-minute live window (its row is made that old).
      await writer.query(
        `UPDATE polling_reader_state SET updated_at = now() - interval '11 minutes'
         WHERE index_key NOT LIKE '%memory:%'`,
      );
      const { rows } = await writer.query<{ id: string }>(
        "INSERT INTO items (run, body) SELECT 1, 'row ' || g FROM generate_series(1, 20) g RETURNING id",
      );
      const index = pruning.app.get<ChangeIndex>(CHANGE_INDEX);
      const start = (await index.head())!.position;
      await waitFor(async () => (await index.head())?.position === start + 20, {
        message: 'the other app read the 20 changes',
      });
      await new Promise((resolve) => setTimeout(resolve, 1000)); // ~20 prune rounds

      back = await startItemsApp(db.url, redisOptions);
      let seen = await poll(back, cursor);
      const ids = [...seen.ids];
      while (seen.status === 200 && ids.length < 20) {
        seen = await poll(back, seen.cursor!);
        ids.push(...seen.ids);
      }
      if (seen.status !== 409) expect(ids).toEqual(rows.map((r) => r.id));
      expect([200, 409]).toContain(seen.status);
    } finally {
      await back?.close();
      await pruning.close();
    }
  }, 30_000);

  it('keeps its generation across a reconnect after a rebuild on a change log pruning emptied', async () => {
    // A database of its own: the first test's readers still count as live in this one.
    const own = await createTestDatabase();
    await createItemsTable(own);
    const ownWriter = new Client(own.config);
    await ownWriter.connect();
    const redis = await OwnedRedisServer.start();
    const app = await startItemsApp(own.url, {
      redis: { url: redis.url },
      retention: { maxAgeMs: 500 },
      reader: { pruneIntervalMs: 100 },
    });
    try {
      await ownWriter.query(
        "INSERT INTO items (run, body) SELECT 3, 'x' FROM generate_series(1, 5)",
      );
      await waitFor(
        async () =>
          (await ownWriter.query('SELECT count(*)::int AS n FROM polling_changes')).rows[0].n === 0,
        { timeoutMs: 20_000, message: 'pruning emptied the change log' },
      );
      // The index is lost and rebuilt on the empty log.
      await redis.flushAll();
      const index = app.app.get<ChangeIndex>(CHANGE_INDEX);
      await waitFor(async () => (await index.head()) !== null, { message: 'rebuilt' });
      const rebuilt = (await index.head())!.generation;

      // The reader reconnects: it carries on with that generation.
      const reader = app.app.get(ChangeReader);
      const pid = reader.backendPid;
      await ownWriter.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor(() => reader.role === 'leader' && reader.backendPid !== pid, {
        message: 'the reader reconnected',
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await index.head())!.generation).toBe(rebuilt);
    } finally {
      await app.close();
      await redis.stop();
      await ownWriter.end();
      await own.drop();
    }
  }, 30_000);
});
