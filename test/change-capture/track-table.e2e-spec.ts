import { DataSource, type MigrationInterface, type QueryRunner } from 'typeorm';
import { pollingMigrationsFor, trackTable, untrackTable } from '../../src';
import { indexedChanges, startPollingApp, type PollingApp } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

// A user's own migration, written the way the README shows: no raw SQL, the module's schema.
class TrackMessages1800000000000 implements MigrationInterface {
  name = 'TrackMessages1800000000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE TABLE messages (id bigserial PRIMARY KEY, channel text NOT NULL)');
    await trackTable(q, 'messages', { key: 'id', partition: 'channel', schema: 'live' });
  }
  async down(q: QueryRunner): Promise<void> {
    await untrackTable(q, 'messages', { schema: 'live' });
  }
}

describe('trackTable / pollingMigrationsFor(schema) in TypeORM migrations', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let app: PollingApp | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = new DataSource({
      type: 'postgres',
      url: db.url,
      migrations: [...pollingMigrationsFor('live'), TrackMessages1800000000000],
    });
    await dataSource.initialize();
  });

  afterAll(async () => {
    await app?.close();
    if (dataSource?.isInitialized) await dataSource.destroy();
    await db?.drop();
  });

  it('installs into the given schema, tracks from a migration, and the module with that schema starts on it', async () => {
    const ran = await dataSource.runMigrations();
    expect(ran.map((m) => m.name)).toEqual([
      'PollingChangeLog1732350000000',
      'PollingCaptureFunctions1764900000000',
      'TrackMessages1800000000000',
    ]);
    const [{ where }] = await dataSource.query(
      `SELECT to_regclass('live.polling_changes')::text AS where`,
    );
    expect(where).toBe('live.polling_changes');
    expect(
      (await dataSource.query(`SELECT to_regclass('public.polling_changes') AS t`))[0].t,
    ).toBeNull();

    // No installSchema: the module only checks, so this passes only if the migrations agree.
    app = await startPollingApp({
      postgres: { url: db.url },
      schema: 'live',
      tables: [{ table: 'messages', key: 'id', partition: 'channel' }],
    });
    await dataSource.query(`INSERT INTO messages (channel) VALUES ('general')`);
    await waitFor(async () => (await indexedChanges(app!.index, 'messages:general')).length === 1);
    await app.close();
    app = undefined;

    await dataSource.undoLastMigration();
    const triggers = await dataSource.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'messages'::regclass AND NOT tgisinternal`,
    );
    expect(triggers).toEqual([]);
    expect(await dataSource.query('SELECT * FROM live.polling_tracked_tables')).toEqual([]);
  });

  it('a schema name that cannot be an identifier fails before any SQL runs', () => {
    expect(() => pollingMigrationsFor('Live; DROP')).toThrow(/schema name .* is invalid/);
  });
});
