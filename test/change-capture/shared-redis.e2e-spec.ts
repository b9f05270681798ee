import Redis from 'ioredis';
import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

interface ChangesBody {
  changes?: { id: string }[];
  cursor: string;
}

interface Side {
  db: TestDatabase;
  app: ItemsApp;
  writer: Client;
}

const WRITES = 150;

/**
 * Two apps with their own databases on one Redis, both with the default keyPrefix (a throw-away
 * redis-server, so the default prefix touches nothing else): each must get an index of its own.
 */
describe('two change logs sharing one Redis and the default keyPrefix', () => {
  let redis: OwnedRedisServer;
  const sides: Side[] = [];

  beforeAll(async () => {
    redis = await OwnedRedisServer.start();
    for (const firstId of [1, 1_000_001]) {
      const db = await createTestDatabase();
      await createItemsTable(db);
      const writer = new Client(db.config);
      await writer.connect();
      // Disjoint ids, so a change of the other database is recognisable in a feed.
      await writer.query(`ALTER SEQUENCE items_id_seq RESTART WITH ${firstId}`);
      const app = await startItemsApp(db.url, { redis: { url: redis.url } });
      sides.push({ db, app, writer });
    }
  });

  afterAll(async () => {
    for (const { db, app, writer } of sides) {
      await writer.end();
      await app.close();
      await db.drop();
    }
    await redis?.stop();
  });

  /**
   * Follows a feed over HTTP like a client (a 409 is counted, then followed from its head) until
   * the writes are done and every id written on its own side arrived, or 15 s passed.
   */
  async function follow(app: ItemsApp, cursor: string, writesDone: () => boolean) {
    const seen = new Set<string>();
    let refetches = 0;
    const deadline = Date.now() + 15_000;
    const complete = () => writesDone() && (written.get(app) ?? []).every((id) => seen.has(id));
    while (!complete() && Date.now() < deadline) {
      const res = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=1`);
      if (res.status === 204) continue;
      const body = (await res.json()) as ChangesBody;
      if (res.status === 409) refetches++;
      else expect(res.status).toBe(200);
      for (const change of body.changes ?? []) seen.add(change.id);
      cursor = body.cursor;
    }
    return { seen, refetches };
  }

  const written = new Map<ItemsApp, string[]>();

  it('delivers every committed change to its own app only', async () => {
    const cursors = await Promise.all(
      sides.map(async ({ app }) => {
        const res = await fetch(`${app.url}/runs/1/changes`);
        expect(res.status).toBe(200);
        return ((await res.json()) as ChangesBody).cursor;
      }),
    );
    let writing = sides.length;
    const writes = sides.map(async ({ app, writer }) => {
      const ids: string[] = [];
      written.set(app, ids);
      for (let i = 0; i < WRITES; i++) {
        const { rows } = await writer.query<{ id: string }>(
          "INSERT INTO items (run, body) VALUES (1, 'x') RETURNING id",
        );
        ids.push(rows[0].id);
      }
      writing--;
    });
    const follows = sides.map(({ app }, i) => follow(app, cursors[i], () => writing === 0));
    await Promise.all(writes);
    const results = await Promise.all(follows);

    const outcome = results.map(({ seen, refetches }, i) => {
      const own = written.get(sides[i].app)!;
      const missing = own.filter((id) => !seen.has(id)).length;
      const foreign = [...seen].filter((id) => !own.includes(id)).length;
      return { missing, foreign, refetches };
    });
    const clean = { missing: 0, foreign: 0, refetches: 0 };
    expect(outcome).toEqual([clean, clean]);

    // Two indexes under the one prefix, each named after its change log.
    const admin = new Redis(redis.url);
    const heads = await admin.keys('polling:*meta');
    await admin.quit();
    expect(heads).toHaveLength(2);
    heads.forEach((key) => expect(key).toMatch(/^polling:[0-9a-f]{12}:meta$/));
  });
});
