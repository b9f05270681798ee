import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  loggedChanges,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';
import { requireCommand } from '../support/system-tools';

describe('capture lives in the database; long transactions stall, never skip', () => {
  let db: TestDatabase;
  let polling: PollingApp;
  const clients: Client[] = [];

  async function connect(): Promise<Client> {
    const client = new Client(db.config);
    await client.connect();
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    polling = await startPollingApp(itemsOptions(db));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
    await polling?.close();
    await db?.drop();
  });

  it('captures a write made with psql, outside the app', async () => {
    await promisify(execFile)(requireCommand('psql'), [
      db.url,
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      "INSERT INTO items (run, body) VALUES (10, 'from psql')",
    ]);
    await waitFor(async () => (await indexedChanges(polling.index, 'items:10')).length === 1, {
      message: 'the psql write reached the index',
    });
  });

  it('holds the feed behind a long writing transaction, shows the lag, and resumes when it ends', async () => {
    const long = await connect();
    const other = await connect();
    await long.query('BEGIN');
    await long.query("INSERT INTO items (run, body) VALUES (11, 'long transaction')");
    for (let i = 0; i < 20; i++) {
      await other.query("INSERT INTO items (run, body) VALUES (11, 'committed behind it')");
    }

    await waitFor(() => polling.reader.lag.heldBackRows === 20, { message: 'lag counts 20 rows' });
    const lag = polling.reader.lag;
    expect(lag.stalledSince).not.toBeNull();
    expect(lag.oldestOpenTransactionMs).toBeGreaterThan(0);
    expect(await indexedChanges(polling.index, 'items:11')).toEqual([]);

    await long.query('COMMIT');
    const logged = await loggedChanges(other, 'items:11');
    expect(logged).toHaveLength(21);
    await waitFor(async () => (await indexedChanges(polling.index, 'items:11')).length === 21, {
      message: 'all 21 changes after the commit',
    });
    expect((await indexedChanges(polling.index, 'items:11')).map((c) => c.resourceId)).toEqual(
      logged,
    );
    await waitFor(() => polling.reader.lag.stalledSince === null, { message: 'lag clears' });
  });
});
