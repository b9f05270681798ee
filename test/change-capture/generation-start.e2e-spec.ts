import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

interface ChangesBody {
  changes: { id: string; op: string }[];
  cursor: string;
}

/**
 * A new index generation starts at the end of the change log. Where it starts must be stored with
 * the generation: a reader that starts again (restart, reconnect, takeover) before the first append
 * must not replay the retained log into it.
 */
describe('a new index generation', () => {
  let db: TestDatabase;
  let redis: OwnedRedisServer;
  let writer: Client;
  let app: ItemsApp | null = null;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    redis = await OwnedRedisServer.start();
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await app?.close();
    await writer?.end();
    await redis?.stop();
    await db?.drop();
  });

  const start = async () => (app = await startItemsApp(db.url, { redis: { url: redis.url } }));
  const stop = async () => {
    await app?.close();
    app = null;
  };

  it('is not filled with the retained log when the app restarts before its first write', async () => {
    // History: 1,000 changes in the retained change log.
    await start();
    await writer.query(
      "INSERT INTO items (run, body) SELECT 1, 'old ' || g FROM generate_series(1, 1000) g",
    );
    await stop();

    // Redis loses everything; the app starts a new generation at the end of the log, and a
    // follower takes the feed's head cursor from it.
    await redis.flushAll();
    const first = await start();
    const head = await fetch(`${first.url}/runs/1/changes`);
    expect(head.status).toBe(200);
    const { cursor } = (await head.json()) as ChangesBody;
    expect(cursor).toMatch(/\.0\./); // position 0 of the new generation

    // The app restarts before anything is written, then one write.
    await stop();
    const second = await start();
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'new') RETURNING id",
    );

    const res = await fetch(`${second.url}/runs/1/changes?since=${cursor}&wait=10`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as ChangesBody;
    expect(body.changes.map((c) => c.id)).toEqual([rows[0].id]);
  });
});
