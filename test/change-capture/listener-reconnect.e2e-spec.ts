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

describe('LISTEN connection killed while writes continue', () => {
  let db: TestDatabase;
  let polling: PollingApp;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    // A long backstop: after the reconnect, only a working LISTEN can deliver quickly.
    polling = await startPollingApp(itemsOptions(db, { reader: { backstopMs: 60_000 } }));
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await polling?.close();
    await db?.drop();
  });

  it('reconnects, listens again, catches up and loses nothing', async () => {
    const firstPid = polling.reader.backendPid;
    expect(firstPid).not.toBeNull();
    expect(await polling.reader.listeningChannels()).toEqual(['polling_wake_public']);

    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.query('INSERT INTO items (run, body) VALUES (1, $1)', ['during the fault']);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    await new Promise((r) => setTimeout(r, 100));
    const admin = new Client(db.config);
    await admin.connect();
    const { rows } = await admin.query('SELECT pg_terminate_backend($1) AS killed', [firstPid]);
    await admin.end();
    expect(rows[0].killed).toBe(true);

    await waitFor(
      () => polling.reader.backendPid !== null && polling.reader.backendPid !== firstPid,
      { message: 'reader reconnected with a new backend' },
    );
    await waitFor(async () => (await polling.reader.listeningChannels()).length === 1, {
      message: 'reader listens again',
    });
    await new Promise((r) => setTimeout(r, 100));
    writing = false;
    await writes;

    const logged = await loggedChanges(writer, 'items:1');
    await waitFor(
      async () => (await indexedChanges(polling.index, 'items:1')).length === logged.length,
      {
        message: 'index caught up after the reconnect',
      },
    );
    expect((await indexedChanges(polling.index, 'items:1')).map((c) => c.resourceId)).toEqual(
      logged,
    );

    // Idle again: a single write must arrive through NOTIFY, well before the 60 s backstop.
    await new Promise((r) => setTimeout(r, 200));
    const { rows: inserted } = await writer.query(
      'INSERT INTO items (run, body) VALUES (2, $1) RETURNING id',
      ['after the fault'],
    );
    await waitFor(async () => (await indexedChanges(polling.index, 'items:2')).length === 1, {
      timeoutMs: 2000,
      message: 'a NOTIFY woke the reconnected reader',
    });
    expect((await indexedChanges(polling.index, 'items:2'))[0].resourceId).toBe(inserted[0].id);
  });
});
