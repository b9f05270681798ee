import { Client } from 'pg';
import { followRunOne, startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

const WRITES = 20;

/**
 * Two apps on one database, each with a change log in a schema of its own, both following the
 * same table, on one Redis with the default keyPrefix: each app's feed gets every change.
 */
describe('two change logs in one database tracking one table', () => {
  let db: TestDatabase;
  let redis: OwnedRedisServer;
  let writer: Client;
  const apps: ItemsApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    redis = await OwnedRedisServer.start();
    writer = new Client(db.config);
    await writer.connect();
    for (const schema of ['orders_polling', 'billing_polling']) {
      await writer.query(`CREATE SCHEMA ${schema}`);
      apps.push(await startItemsApp(db.url, { schema, redis: { url: redis.url } }));
    }
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await writer?.end();
    await redis?.stop();
    await db?.drop();
  });

  it('delivers every change to both apps', async () => {
    const cursors = await Promise.all(
      apps.map(async (app) => {
        const res = await fetch(`${app.url}/runs/1/changes`);
        return ((await res.json()) as ChangesBody).cursor;
      }),
    );
    const { rows } = await writer.query<{ id: string }>(
      `INSERT INTO items (run, body) SELECT 1, 'x' FROM generate_series(1, ${WRITES}) RETURNING id`,
    );
    const seen = await Promise.all(
      apps.map((app, i) => followRunOne(app, cursors[i], WRITES, 10_000)),
    );
    const expected = rows.map((r) => r.id);
    expect(seen).toEqual([expected, expected]);
  }, 30_000);
});
