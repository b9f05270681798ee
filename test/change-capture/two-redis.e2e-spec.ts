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
 * Two apps on one change log (same database and schema), each with a Redis of its own and the
 * default keyPrefix: two indexes, so each needs a reader of its own. (With one leader lock for
 * both, named after the change log alone, one app's index was never written.)
 */
describe('two indexes of one change log in two Redis servers', () => {
  let db: TestDatabase;
  const servers: OwnedRedisServer[] = [];
  let writer: Client;
  const apps: ItemsApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    for (let i = 0; i < 2; i++) {
      const redis = await OwnedRedisServer.start();
      servers.push(redis);
      apps.push(await startItemsApp(db.url, { redis: { url: redis.url } }));
    }
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const server of servers) await server.stop();
    await writer?.end();
    await db?.drop();
  });

  it('delivers every change to both apps', async () => {
    const cursors = await Promise.all(
      apps.map(async (app) => {
        const res = await fetch(`${app.url}/runs/1/changes`);
        expect(res.status).toBe(200);
        return ((await res.json()) as ChangesBody).cursor;
      }),
    );
    const { rows } = await writer.query<{ id: string }>(
      `INSERT INTO items (run, body) SELECT 1, 'x' FROM generate_series(1, ${WRITES}) RETURNING id`,
    );
    const seen = await Promise.all(
      apps.map((app, i) => followRunOne(app, cursors[i], WRITES, 8000)),
    );
    const expected = rows.map((r) => r.id);
    expect(seen).toEqual([expected, expected]);
  }, 30_000);
});
