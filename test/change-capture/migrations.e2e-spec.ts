import { DataSource } from 'typeorm';
import { PollingChangeLog1732350000000, pollingMigrations } from '../../migrations';
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

describe('upgrading an install from before per-feed capture functions', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(() => db?.drop());

  it('the second migration re-tracks every table: own SECURITY DEFINER functions, the old one dropped', async () => {
    const first = new DataSource({
      type: 'postgres',
      url: db.url,
      migrations: [PollingChangeLog1732350000000],
    });
    await first.initialize();
    await first.runMigrations();
    // What an old install with two long feeds left: one shared function, writing one feed.
    await first.query(`
      CREATE TABLE north (id int PRIMARY KEY);
      CREATE TABLE south (id int PRIMARY KEY);
      CREATE FUNCTION polling_capture_old_shared() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO polling_changes (feed, resource_id, op) SELECT 'south', r.id::text, 'u' FROM new_rows r;
          RETURN NULL;
        END $$;
      DO $old$
      DECLARE t text;
      BEGIN
        FOREACH t IN ARRAY ARRAY['north', 'south'] LOOP
          EXECUTE format('CREATE TRIGGER polling_capture_insert AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION polling_capture_old_shared()', t);
          EXECUTE format('CREATE TRIGGER polling_capture_update AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION polling_capture_old_shared()', t);
          EXECUTE format('CREATE TRIGGER polling_capture_delete AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION polling_capture_old_shared()', t);
        END LOOP;
      END $old$;
      INSERT INTO polling_tracked_tables VALUES ('north', 'north', 'id', NULL), ('south', 'south', 'id', NULL);`);
    await first.destroy();

    const all = new DataSource({ type: 'postgres', url: db.url, migrations: pollingMigrations });
    await all.initialize();
    try {
      const ran = await all.runMigrations();
      expect(ran.map((m) => m.name)).toEqual(['PollingCaptureFunctions1764900000000']);
      await all.query('INSERT INTO north VALUES (1)');
      await all.query('INSERT INTO south VALUES (2)');
      expect(
        await all.query('SELECT feed, resource_id FROM polling_changes ORDER BY xid, id'),
      ).toEqual([
        { feed: 'north', resource_id: '1' },
        { feed: 'south', resource_id: '2' },
      ]);
      const functions = await all.query(
        `SELECT DISTINCT p.proname AS name, p.prosecdef AS definer FROM pg_trigger t
         JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgname LIKE 'polling_capture_%' ORDER BY 1`,
      );
      expect(functions).toEqual([
        { name: expect.stringMatching(/^polling_capture_north_[0-9a-f]{16}$/), definer: true },
        { name: expect.stringMatching(/^polling_capture_south_[0-9a-f]{16}$/), definer: true },
      ]);
      expect(await all.query(`SELECT to_regproc('polling_capture_old_shared') AS f`)).toEqual([
        { f: null },
      ]);
    } finally {
      await all.destroy();
    }
  });
});

describe('a tracked table dropped without polling_untrack', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(() => db?.drop());

  it('the upgrade re-tracks the tables that exist, the feed can be tracked again, and the migrations revert', async () => {
    const first = new DataSource({
      type: 'postgres',
      url: db.url,
      migrations: [PollingChangeLog1732350000000],
    });
    await first.initialize();
    await first.runMigrations();
    await first.query(`
      CREATE TABLE gone (id int PRIMARY KEY);
      CREATE TABLE kept (id int PRIMARY KEY);
      SELECT polling_track('gone', 'id');
      SELECT polling_track('kept', 'id');
      DROP TABLE gone;`);
    await first.destroy();

    const all = new DataSource({ type: 'postgres', url: db.url, migrations: pollingMigrations });
    await all.initialize();
    try {
      const ran = await all.runMigrations();
      expect(ran.map((m) => m.name)).toEqual(['PollingCaptureFunctions1764900000000']);
      await all.query('INSERT INTO kept VALUES (1)');
      expect(await all.query('SELECT feed, resource_id FROM polling_changes')).toEqual([
        { feed: 'kept', resource_id: '1' },
      ]);
      // A migration that creates the table again and tracks it under its old feed name.
      await all.query(`CREATE TABLE gone (id int PRIMARY KEY); SELECT polling_track('gone', 'id')`);
      await all.query('INSERT INTO gone VALUES (2)');
      expect(
        await all.query(`SELECT resource_id FROM polling_changes WHERE feed = 'gone'`),
      ).toEqual([{ resource_id: '2' }]);
      expect(
        await all.query('SELECT table_name::text AS t FROM polling_tracked_tables ORDER BY 1'),
      ).toEqual([{ t: 'gone' }, { t: 'kept' }]);

      await all.query('DROP TABLE kept');
      await all.undoLastMigration();
      await all.undoLastMigration();
      expect(await all.query(`SELECT to_regclass('polling_changes') AS t`)).toEqual([{ t: null }]);
      await all.query('INSERT INTO gone VALUES (3)'); // no trigger left calling a dropped function
    } finally {
      await all.destroy();
    }
  });
});
