import { Client } from 'pg';
import { ChangeReader, PollingHealthIndicator } from '../../src';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/** Rows committed behind the open transaction; read one per read (batchSize 1) after it ends. */
const BEHIND = 20_000;

/**
 * The reader measures its lag (rows held back, the oldest open transaction, since when changes
 * stall) only after a read that came back empty. Once the transaction that held the horizon ends,
 * the changes behind it flow: every read returns rows and the lag is never measured again until
 * the flow stops. Health kept reporting "N committed changes held back ... behind an open
 * transaction" (503 by default) with the transaction's age still growing, though no transaction
 * was open and nothing was held back: under steady writers that lasts as long as they write.
 */
describe('reader lag once the transaction that held the horizon has ended', () => {
  let db: TestDatabase;
  let app: ItemsApp;
  let long: Client;
  let writer: Client;
  const read = ChangeLogQueries.prototype.read;
  let reads: number[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    long = new Client(db.config);
    writer = new Client(db.config);
    await Promise.all([long.connect(), writer.connect()]);
    jest.spyOn(ChangeLogQueries.prototype, 'read').mockImplementation(async function (
      this: ChangeLogQueries,
      ...args: Parameters<ChangeLogQueries['read']>
    ) {
      const batch = await read.apply(this, args);
      reads.push(batch.rows.length);
      return batch;
    });
    app = await startItemsApp(db.url, {
      reader: { batchSize: 1 },
      health: { horizonStallMs: 300 },
    });
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await app?.close();
    await long?.end().catch(() => undefined);
    await writer?.end();
    await db?.drop();
  });

  it('stops reporting a stall and an open transaction while the changes behind it are read', async () => {
    const reader = app.app.get(ChangeReader);
    const health = app.app.get(PollingHealthIndicator);
    await reader.whenLive();

    await long.query('BEGIN');
    await long.query('INSERT INTO items (run) VALUES (8)');
    await writer.query('INSERT INTO items (run) SELECT 9 FROM generate_series(1, $1::int)', [
      BEHIND,
    ]);
    await waitFor(() => health.reader().reader.state === 'degraded', {
      timeoutMs: 10_000,
      message: 'health never reported the stall',
    });

    await long.query('COMMIT');
    reads = [];
    // The reader is reading the changes that were held back: no transaction is open any more.
    await waitFor(() => reads.length >= 500, { timeoutMs: 20_000, message: 'no drain' });
    // Give the reader a few lag-check periods (250 ms) worth of reads.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const answer = health.reader().reader;
    const open = await writer.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND datname = current_database()',
    );
    const drainingStill = !reads.includes(0);

    expect(drainingStill).toBe(true); // precondition: sampled while every read returned rows
    expect(open.rows[0].n).toBe(0);
    // (The server is shared: another database's transaction may be open, so no age is asserted.)
    expect(answer).toMatchObject({ status: 'up', state: 'ok', heldBackRows: 0 });
  }, 60_000);
});
