import Redis from 'ioredis';
import { Client } from 'pg';
import type { ChangeNotice } from '../../src/change-bus/change-notice.interface';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { OwnedRedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

/** Redis is an index, not the truth: after losing it, a new generation goes on from Postgres. */
describe('Redis index loss', () => {
  let db: TestDatabase;
  let redis: OwnedRedisServer;
  let polling: PollingApp;
  let writer: Client;
  const notices: ChangeNotice[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    redis = await OwnedRedisServer.start();
    polling = await startPollingApp(
      itemsOptions(db, { redis: { url: redis.url }, reader: { backstopMs: 200 } }),
    );
    polling.bus.notices$.subscribe((n) => notices.push(n));
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await polling?.close();
    await redis?.stop();
    await db?.drop();
  });

  async function writeAndIndex(count: number): Promise<void> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const { rows } = await writer.query<{ id: string }>(
        'INSERT INTO items (run, body) VALUES (1, $1) RETURNING id',
        [`row ${i}`],
      );
      ids.push(rows[0].id);
    }
    await waitFor(
      async () => {
        const indexed = new Set(
          (await indexedChanges(polling.index, 'items:1')).map((c) => c.resourceId),
        );
        return ids.every((id) => indexed.has(id));
      },
      { message: 'the index holds every change just written' },
    );
  }

  async function expectRebuiltAfter(loss: () => Promise<void>): Promise<void> {
    await writeAndIndex(5);
    const before = (await polling.index.head())!;
    const consumerPosition = before.position;
    notices.length = 0;

    await loss();

    await waitFor(
      async () => {
        const head = await polling.index.head().catch(() => null);
        return head !== null && head.generation !== before.generation;
      },
      { message: 'a new generation started' },
    );
    // The new generation starts at the end of the change log: none of the old changes are in it
    // (their clients reload anyway), so a rebuild costs nothing in proportion to the retention.
    expect(await indexedChanges(polling.index, 'items:1')).toEqual([]);

    // A consumer still holding a position of the old generation must refetch, not get "nothing new".
    const answer = await polling.index.changesSince(
      'items:1',
      before.generation,
      consumerPosition,
      100,
    );
    expect(answer).toMatchObject({ kind: 'refetch', reason: 'generation' });
    expect(notices).toContainEqual({ kind: 'wake-all', reason: 'generation' });

    // And the new generation keeps flowing: the next change is its first.
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'after the loss') RETURNING id",
    );
    await waitFor(async () => (await indexedChanges(polling.index, 'items:1')).length === 1, {
      message: 'the change after the loss is indexed',
    });
    expect((await indexedChanges(polling.index, 'items:1')).map((c) => c.resourceId)).toEqual([
      rows[0].id,
    ]);
  }

  it('wakes every local waiter after the pub/sub connection is killed', async () => {
    notices.length = 0;
    const admin = new Redis(redis.url);
    const killed = await admin.client('KILL', 'TYPE', 'pubsub');
    await admin.quit();
    expect(Number(killed)).toBeGreaterThanOrEqual(1);
    await waitFor(() => notices.some((n) => n.kind === 'wake-all' && n.reason === 'reconnect'), {
      message: 'a wake-all after the subscriber reconnected',
    });
  });

  it('rebuilds after FLUSHALL', async () => {
    await expectRebuiltAfter(() => redis.flushAll());
  });

  it('rebuilds after a Redis crash and restart', async () => {
    await expectRebuiltAfter(() => redis.restart());
  });
});
