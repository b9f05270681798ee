import { DataSource } from 'typeorm';
import { pollingMigrations } from '../../migrations';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const OBJECTS = `
  SELECT c.relname AS name FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relname IN ('polling_changes', 'polling_reader_state', 'polling_tracked_tables', 'polling_wake_gate')
  UNION ALL
  SELECT p.proname FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proname = 'polling_track'
  ORDER BY 1`;

describe('polling migrations (TypeORM)', () => {
  let db: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = new DataSource({ type: 'postgres', url: db.url, migrations: pollingMigrations });
    await dataSource.initialize();
  });

  afterAll(async () => {
    if (dataSource?.isInitialized) await dataSource.destroy();
    await db?.drop();
  });

  const objects = async (): Promise<string[]> =>
    (await dataSource.query(OBJECTS)).map((r: { name: string }) => r.name);

  it('runs up, tracks a table from a user migration-style call, and reverts cleanly', async () => {
    const ran = await dataSource.runMigrations();
    expect(ran.map((m) => m.name)).toEqual([
      'PollingChangeLog1732350000000',
      'PollingCaptureFunctions1764900000000',
    ]);
    expect(await objects()).toEqual([
      'polling_changes',
      'polling_reader_state',
      'polling_track',
      'polling_tracked_tables',
      'polling_wake_gate',
    ]);

    await dataSource.query(
      'CREATE TABLE messages (id bigserial PRIMARY KEY, channel text NOT NULL, body text)',
    );
    await dataSource.query(`SELECT polling_track('messages', 'id', 'channel')`);
    await dataSource.query(`INSERT INTO messages (channel, body) VALUES ('general', 'hi')`);
    const changes = await dataSource.query('SELECT feed, resource_id, op FROM polling_changes');
    expect(changes).toEqual([{ feed: 'messages:general', resource_id: '1', op: 'u' }]);

    await dataSource.undoLastMigration();
    await dataSource.undoLastMigration();
    expect(await objects()).toEqual([]);
    // Revert untracks first, so the user's table keeps working without the change log.
    const triggers = await dataSource.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'messages'::regclass AND NOT tgisinternal`,
    );
    expect(triggers).toEqual([]);
    await dataSource.query(`INSERT INTO messages (channel, body) VALUES ('general', 'after')`);
  });
});
