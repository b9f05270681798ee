import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { installChangeLogSql } from '../../src';
import { captureTriggerName } from '../../src/change-capture/schema/schema-name';
import { retrackAllSql } from '../../src/change-capture/schema/change-log.sql';
import { adminUrl, createTestDatabase, type TestDatabase } from '../support/test-database';

/**
 * The capture functions run as the role that tracked the table (often a superuser or the
 * database owner), so nothing a writer controls may run inside them or inside polling_track.
 */
describe('capture functions: nothing a writer controls runs with the owner rights', () => {
  let db: TestDatabase;
  let owner: Client;
  let admin: Client;
  const roles: string[] = [];

  /** A login role for this test; dropped (with what it owns) in afterAll. */
  async function role(name: string): Promise<{ name: string; client: Client }> {
    const full = `polling_${name}_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE ROLE ${full} LOGIN NOSUPERUSER`);
    roles.push(full);
    const client = new Client({ ...db.config, user: full, password: undefined });
    await client.connect();
    return { name: full, client };
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new Client({ connectionString: adminUrl() });
    await admin.connect();
    owner = new Client(db.config);
    await owner.connect();
    await owner.query('CREATE TABLE items (id int PRIMARY KEY, run int NOT NULL DEFAULT 0)');
    // What the migrations do, as the owner.
    await owner.query(installChangeLogSql('public'));
    await owner.query(`SELECT polling_track('items', 'id', 'run')`);
  });

  afterAll(async () => {
    await owner?.end();
    await db?.drop();
    for (const r of roles) await admin.query(`DROP ROLE IF EXISTS ${r}`);
    await admin?.end();
  });

  it('a role granted EXECUTE on every function cannot fire a capture function for a table of its own', async () => {
    const { name, client: writer } = await role('writer');
    try {
      await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON items TO ${name}`);
      // A common production recipe for an app role.
      await owner.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ${name}`);
      const { rows } = await owner.query(
        `SELECT tgfoid::regprocedure::text AS fn FROM pg_trigger
         WHERE tgrelid = 'items'::regclass AND tgname = $1`,
        [captureTriggerName('public', 'insert')],
      );
      // A temp type whose cast to text is the writer's own code: the capture function's key cast
      // would run it with the capture function's (the owner's) rights.
      await writer.query(`CREATE TYPE pg_temp.key_t AS ENUM ('k')`);
      await writer.query(`
        CREATE FUNCTION pg_temp.key_text(pg_temp.key_t) RETURNS text LANGUAGE sql AS
          $$ SELECT set_config('polling_test.ran_as', current_user::text, false) $$`);
      await writer.query(
        'CREATE CAST (pg_temp.key_t AS text) WITH FUNCTION pg_temp.key_text(pg_temp.key_t)',
      );
      await writer.query('CREATE TEMP TABLE mine (id pg_temp.key_t, run int)');
      await writer.query(
        `CREATE TRIGGER polling_capture_insert AFTER INSERT ON mine REFERENCING NEW TABLE AS
         new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${rows[0].fn}`,
      );

      const inserted = await writer.query(`INSERT INTO mine VALUES ('k', 7)`).then(
        () => null,
        (e: Error) => e,
      );
      const ranAs = await writer.query(
        `SELECT current_setting('polling_test.ran_as', true) AS who`,
      );
      const logged = await owner.query(`SELECT count(*)::int AS n FROM polling_changes`);

      expect(ranAs.rows[0].who ?? '').toBe('');
      expect(logged.rows[0].n).toBe(0);
      expect(inserted?.message).toMatch(/not tracked/);
      // The tracked table itself still captures this writer's writes.
      await writer.query('INSERT INTO items VALUES (1, 3)');
      expect((await owner.query('SELECT feed, resource_id FROM polling_changes')).rows).toEqual([
        { feed: 'items:3', resource_id: '1' },
      ]);
    } finally {
      await writer.end();
      await owner.query(`DROP OWNED BY ${name}`);
    }
  });

  it("polling_track and the upgrade's re-track never call functions a writer planted on the caller's search_path", async () => {
    const { name, client: planter } = await role('planter');
    try {
      // Clusters upgraded from PostgreSQL 14 or older still let every role create in public.
      await owner.query(`GRANT CREATE ON SCHEMA public TO ${name}`);
      const spy = (signature: string, call: string) => `
        CREATE FUNCTION public.${signature} RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM set_config('polling_test.hijacked_by', current_user::text, false);
          RETURN ${call};
        END $$`;
      await planter.query(spy('format(text, text, text)', 'pg_catalog.format($1, $2, $3)'));
      await planter.query(spy('quote_literal(text)', 'pg_catalog.quote_literal($1)'));
      await planter.query(spy('lower(character varying)', 'pg_catalog.lower($1)'));

      // The owner runs the migrations with the default search_path ("$user", public).
      await owner.query(installChangeLogSql('public'));
      await owner.query(`SELECT polling_track('items', 'id', 'run')`);
      await owner.query(retrackAllSql('public'));
      await owner.query(`SELECT polling_capture_function('items')`);
      const { rows } = await owner.query(
        `SELECT current_setting('polling_test.hijacked_by', true) AS who`,
      );
      expect(rows[0].who ?? '').toBe('');
    } finally {
      await planter.end();
      await owner.query(`DROP OWNED BY ${name}`);
    }
  });
});
