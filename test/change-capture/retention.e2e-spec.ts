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
});
