import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { installChangeLogSql, PollingConfigError } from '../../src';
import { adminUrl, createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { indexedChanges, startPollingApp, type PollingApp } from '../support/polling-app';
import { captureTriggerName } from '../../src/change-capture/schema/schema-name';

// Two feeds that share their first 50 characters: cut to 63 bytes, their old function names
// (`polling_capture_<feed>`) were the same.
const PREFIX = 'tenant_invoices_archive_for_the_accounting_team_of';
const FEED_A = `${PREFIX}_north`;
const FEED_B = `${PREFIX}_south`;

describe('capture functions: one per feed, callable by writers without grants', () => {
  let db: TestDatabase;
  let owner: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    owner = new Client(db.config);
    await owner.connect();
    await owner.query('CREATE TABLE north (id int PRIMARY KEY, body text)');
    await owner.query('CREATE TABLE south (id int PRIMARY KEY, body text)');
  });

  afterAll(async () => {
    await owner?.end();
    await db?.drop();
  });

  async function start(): Promise<PollingApp> {
    return startPollingApp({
      postgres: { url: db.url },
      tables: [
        { table: 'north', feed: FEED_A },
        { table: 'south', feed: FEED_B },
      ],
      installSchema: true,
    });
  }

  it('two feeds with a long common prefix each capture into their own feed', async () => {
    const polling = await start();
    try {
      await owner.query("INSERT INTO north VALUES (1, 'n')");
      await owner.query("INSERT INTO south VALUES (2, 's')");
      await owner.query("UPDATE north SET body = 'n2'");
      const { rows } = await owner.query(
        'SELECT feed, resource_id FROM polling_changes ORDER BY xid, id',
      );
      expect(rows).toEqual([
        { feed: FEED_A, resource_id: '1' },
        { feed: FEED_B, resource_id: '2' },
        { feed: FEED_A, resource_id: '1' },
      ]);
      await waitFor(async () => (await polling.index.head())?.position === 3, {
        message: 'the three changes indexed',
      });
      expect((await indexedChanges(polling.index, FEED_A)).map((c) => c.resourceId)).toEqual(['1']);
      expect((await indexedChanges(polling.index, FEED_B)).map((c) => c.resourceId)).toEqual(['2']);
    } finally {
      await polling.close();
    }
  });

  it("fails start-up with a clear PollingConfigError when a table's trigger calls another table's function", async () => {
    const insert = captureTriggerName('public', 'insert');
    const { rows } = await owner.query(
      `SELECT tgfoid::regprocedure::text AS fn FROM pg_trigger
       WHERE tgrelid = 'north'::regclass AND tgname = $1`,
      [insert],
    );
    await owner.query(`DROP TRIGGER ${insert} ON south`);
    await owner.query(
      `CREATE TRIGGER ${insert} AFTER INSERT ON south
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${rows[0].fn}`,
    );
    const started = startPollingApp({
      postgres: { url: db.url },
      tables: [
        { table: 'north', feed: FEED_A },
        { table: 'south', feed: FEED_B },
      ],
      installSchema: false,
    });
    const error = await started.then(
      async (app) => (await app.close(), null), // old code started here: close what it opened
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(PollingConfigError);
    const message = (error as Error).message;
    expect(message).toContain('table "south" is not tracked as configured');
    expect(message).toMatch(/its triggers call .*polling_capture_tenant_invoices_archive/);
    expect(message).toContain(rows[0].fn);
    expect(message).toContain(
      `run SELECT "public".polling_track('south', 'id', NULL, '${FEED_B}')`,
    );
    // What the message says to run repairs it.
    await owner.query(`SELECT polling_track('south', 'id', NULL, $1)`, [FEED_B]);
    const polling = await start();
    await polling.close();
  });

  it('fails start-up when a capture trigger is disabled, and polling_track enables it again', async () => {
    // Left over from a bulk load: ALTER TABLE ... DISABLE TRIGGER (pg_restore --disable-triggers).
    await owner.query(
      `ALTER TABLE north DISABLE TRIGGER ${captureTriggerName('public', 'update')}`,
    );
    const tables = [
      { table: 'north', feed: FEED_A },
      { table: 'south', feed: FEED_B },
    ];
    const error = await startPollingApp({ postgres: { url: db.url }, tables }).then(
      async (app) => (await app.close(), null),
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(PollingConfigError);
    expect((error as Error).message).toContain('table "north" is not tracked as configured');
    expect((error as Error).message).toContain('1 of its capture triggers are disabled');

    await owner.query(`SELECT polling_track('north', 'id', NULL, $1)`, [FEED_A]);
    const polling = await startPollingApp({ postgres: { url: db.url }, tables });
    try {
      const before = (await polling.index.head())!.position;
      await owner.query(`UPDATE north SET body = 'enabled again'`);
      await waitFor(async () => (await polling.index.head())?.position === before + 1, {
        message: 'the update captured',
      });
    } finally {
      await polling.close();
    }
  });

  it('a writer with rights on the tracked table only inserts, updates and deletes, and the changes are delivered', async () => {
    const suffix = randomBytes(4).toString('hex');
    const role = `polling_writer_${suffix}`;
    const appRole = `polling_app_${suffix}`;
    const admin = new Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER`);
    await admin.query(`CREATE ROLE ${appRole} LOGIN NOSUPERUSER`);
    let writer: Client | null = null;
    let polling: PollingApp | null = null;
    try {
      // Migrations run as the owner: install the change log and track both tables.
      await owner.query(installChangeLogSql('public'));
      await owner.query(`SELECT polling_track('north', 'id', NULL, $1)`, [FEED_A]);
      await owner.query(`SELECT polling_track('south', 'id', NULL, $1)`, [FEED_B]);
      await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON north TO ${role}`);
      // The app's own role: the grants the README lists for the reader (migrations as the owner).
      await owner.query(`GRANT SELECT, DELETE ON polling_changes TO ${appRole}`);
      await owner.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON polling_reader_state TO ${appRole}`,
      );
      await owner.query(`GRANT SELECT ON polling_tracked_tables TO ${appRole}`);
      await owner.query(`GRANT SELECT, UPDATE ON SEQUENCE polling_wake_gate TO ${appRole}`);
      const appUrl = new URL(db.url);
      appUrl.username = appRole;
      polling = await startPollingApp({
        postgres: { url: appUrl.toString() },
        tables: [
          { table: 'north', feed: FEED_A },
          { table: 'south', feed: FEED_B },
        ],
        installSchema: false,
      });
      writer = new Client({ ...db.config, user: role, password: undefined });
      await writer.connect();
      const before = (await polling.index.head())!.position;
      await writer.query("INSERT INTO north VALUES (10, 'by the app role')");
      await writer.query("UPDATE north SET body = 'updated' WHERE id = 10");
      await writer.query('DELETE FROM north WHERE id = 10');
      await waitFor(async () => (await polling!.index.head())?.position === before + 3, {
        message: "the restricted writer's three changes indexed",
      });
      const { rows } = await owner.query(
        `SELECT resource_id, op FROM polling_changes WHERE feed = $1 AND resource_id = '10'
         ORDER BY xid, id`,
        [FEED_A],
      );
      expect(rows).toEqual([
        { resource_id: '10', op: 'u' },
        { resource_id: '10', op: 'u' },
        { resource_id: '10', op: 'd' },
      ]);
      // Idle again, the reader arms its bit of the wake gate as the app role.
      await waitFor(
        async () =>
          (await owner.query('SELECT last_value <> 0 AS armed FROM polling_wake_gate')).rows[0]
            .armed,
        { message: 'the app role armed the wake gate' },
      );
    } finally {
      await writer?.end();
      await polling?.close();
      await owner.query(`DROP OWNED BY ${role}, ${appRole}`);
      await admin.query(`DROP ROLE ${role}`);
      await admin.query(`DROP ROLE ${appRole}`);
      await admin.end();
    }
  });
});
