import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

describe('retention', () => {
  let db: TestDatabase;
  let polling: PollingApp;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    polling = await startPollingApp(
      itemsOptions(db, { retention: { maxRows: 5 }, reader: { pruneIntervalMs: 50 } }),
    );
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await polling?.close();
    await db?.drop();
  });

  it('prunes the change log and trims the index past retention; old positions must refetch', async () => {
    const first = (await polling.index.head())!;
    for (let i = 0; i < 20; i++) {
      await writer.query('INSERT INTO items (run, body) VALUES (1, $1)', [`row ${i}`]);
    }
    await waitFor(async () => (await polling.index.head())!.position === 20, {
      message: 'all 20 changes indexed',
    });
    await waitFor(
      async () => {
        const { rows } = await writer.query('SELECT count(*)::int AS n FROM polling_changes');
        return rows[0].n === 5;
      },
      { message: 'the change log keeps the newest 5 rows' },
    );
    await waitFor(async () => (await polling.index.head())!.floor >= 15, {
      message: 'the index floor follows retention',
    });

    expect(await indexedChanges(polling.index, 'items:1')).toHaveLength(5);
    const stale = await polling.index.changesSince('items:1', first.generation, 3, 100);
    expect(stale).toMatchObject({ kind: 'refetch', reason: 'trimmed' });
    const recent = await polling.index.changesSince('items:1', first.generation, 18, 100);
    expect(recent).toMatchObject({ kind: 'changes', feedPosition: 20 });
  });

  it('keeps the newest maxRows rows however their ids and xids compare as text', async () => {
    // One statement: 20 rows of one transaction, their ids past a digit boundary (96 … 115). A
    // new session, since each one caches the ids it draws.
    await writer.query(`SELECT setval(pg_get_serial_sequence('polling_changes', 'id'), 95)`);
    const session = new Client(db.config);
    await session.connect();
    const { rows } = await session
      .query<{ id: string }>(
        "INSERT INTO items (run, body) SELECT 2, 'batch ' || g FROM generate_series(1, 20) g RETURNING id",
      )
      .finally(() => session.end());
    const head = (await polling.index.head())!.position;
    await waitFor(
      async () =>
        (await indexedChanges(polling.index, 'items:2')).length >= 5 &&
        (await polling.index.head())!.position >= head,
      { message: 'the batch indexed' },
    );
    await new Promise((resolve) => setTimeout(resolve, 1000)); // ~20 prune rounds
    const { rows: kept } = await writer.query<{ resource_id: string }>(
      'SELECT resource_id FROM polling_changes ORDER BY xid, id',
    );
    expect(kept.map((r) => r.resource_id)).toEqual(rows.slice(-5).map((r) => r.id));
  });
});
