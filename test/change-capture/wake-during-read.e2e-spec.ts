import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable, indexedChanges } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';

const BACKSTOP_MS = 60_000;

/**
 * The reader consumes the wake flag right before each read (a read answers every wake so far). A
 * commit whose NOTIFY reaches the reader after the read's snapshot was taken is not in that read:
 * its wake must survive until the next sleep, or the change waits for the backstop. The commit is
 * placed exactly there: after the armed reader's read returned, before the loop goes on.
 */
describe('a NOTIFY that arrives after the read that could not see its commit', () => {
  let db: TestDatabase;
  let app: ItemsApp;
  let writer: Client;
  let probe: Client;
  const read = ChangeLogQueries.prototype.read;
  let inject: (() => Promise<void>) | null = null;
  const gateArmed = async () =>
    Number((await probe.query('SELECT last_value FROM polling_wake_gate')).rows[0].last_value) !==
    0;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    probe = new Client(db.config);
    await Promise.all([writer.connect(), probe.connect()]);
    jest.spyOn(ChangeLogQueries.prototype, 'read').mockImplementation(async function (
      this: ChangeLogQueries,
      ...args: Parameters<ChangeLogQueries['read']>
    ) {
      const batch = await read.apply(this, args);
      const step = inject;
      // The read the armed reader makes right before it sleeps for the backstop.
      if (step && batch.rows.length === 0 && (await gateArmed())) {
        inject = null;
        await step();
      }
      return batch;
    });
    app = await startItemsApp(db.url, { reader: { backstopMs: BACKSTOP_MS } });
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await app?.close();
    await writer?.end();
    await probe?.end();
    await db?.drop();
  });

  it('reads the change at once instead of sleeping until the backstop', async () => {
    const reader = app.app.get(ChangeReader);
    const index = app.app.get<ChangeIndex>(CHANGE_INDEX);
    await reader.whenLive();
    await waitFor(gateArmed, { timeoutMs: 5000, message: 'the idle reader never armed the gate' });

    for (let round = 1; round <= 3; round++) {
      const signal = (reader as unknown as { signal: { woken: boolean } }).signal;
      let done = false;
      inject = async () => {
        // The read's snapshot is taken: commit now, and let the NOTIFY reach the reader.
        await writer.query('INSERT INTO items (run) VALUES (5)');
        await waitFor(() => signal.woken, {
          timeoutMs: 5000,
          message: 'no NOTIFY reached the reader',
        });
        done = true;
      };
      // Wake the sleeping reader so that it reads (the injected commit follows that read).
      await writer.query('INSERT INTO items (run) VALUES (4)');
      await waitFor(() => done, {
        timeoutMs: 5000,
        message: 'no empty read of the armed reader after the wake',
      });
      await waitFor(async () => (await indexedChanges(index, 'items:5')).length === round, {
        timeoutMs: BACKSTOP_MS / 6,
        message: `round ${round}: the change waited for the backstop`,
      });
      await waitFor(gateArmed, { timeoutMs: 5000, message: 'the reader never re-armed' });
    }
  }, 120_000);
});
