import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

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

  /**
   * Waits until every change-log row is below the commit horizon. The horizon is cluster-wide: on
   * a shared server another database's open transaction holds it back, and a generation started
   * meanwhile starts before the rows above it (and indexes them), not at the log's end.
   */
  async function horizonPassesLog(): Promise<void> {
    await waitFor(
      async () => {
        const { rows } = await writer.query(
          `SELECT coalesce(pg_snapshot_xmin(pg_current_snapshot()) >
             (SELECT max(xid) FROM polling_changes), true) AS passed`,
        );
        return rows[0].passed === true;
      },
      { timeoutMs: 30_000, message: 'the commit horizon passed the change log' },
    );
  }

  /** The follower's starting point: the feed's head cursor, at position 0 of a new generation. */
  async function headCursor(items: ItemsApp): Promise<string> {
    const res = await fetch(`${items.url}/runs/1/changes`);
    expect(res.status).toBe(200);
    const { cursor } = (await res.json()) as ChangesBody;
    expect(cursor).toMatch(/\.0\./);
    return cursor;
  }

  /** The ids a long poll from `cursor` gets. */
  async function changesAfter(items: ItemsApp, cursor: string): Promise<string[]> {
    const res = await fetch(`${items.url}/runs/1/changes?since=${cursor}&wait=10`);
    expect(res.status).toBe(200);
    return ((await res.json()) as ChangesBody).changes.map((c) => c.id);
  }

  it('is not filled with the retained log when the app restarts before its first write', async () => {
    // History: 1,000 changes in the retained change log.
    await start();
    await writer.query(
      "INSERT INTO items (run, body) SELECT 1, 'old ' || g FROM generate_series(1, 1000) g",
    );
    await stop();

    // Redis loses everything; the app starts a new generation at the end of the log, and a
    // follower takes the feed's head cursor from it.
    await horizonPassesLog();
    await redis.flushAll();
    const first = await start();
    const cursor = await headCursor(first);

    // The app restarts before anything is written, then one write.
    await stop();
    const second = await start();
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'new') RETURNING id",
    );

    expect(await changesAfter(second, cursor)).toEqual([rows[0].id]);
  });

  it('is not filled with the retained log when the reader reconnects before its first write', async () => {
    await stop();
    await horizonPassesLog();
    await redis.flushAll();
    const items = await start();
    const cursor = await headCursor(items);

    // The reader's session dies; it connects again and leads on from the index's checkpoint.
    const reader = items.app.get(ChangeReader);
    const pid = reader.backendPid;
    await writer.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(() => reader.role === 'leader' && reader.backendPid !== pid, {
      message: 'the reader reconnected',
    });
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'after the reconnect') RETURNING id",
    );
    expect(await changesAfter(items, cursor)).toEqual([rows[0].id]);
  });
});
