import { Client } from 'pg';
import { installChangeLogSql, trackTable } from '../../src';
import { loggedChanges } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/*
 * What the README's "What is not captured" says, statement by statement: which writes to a
 * tracked table become changes of its feed, and which do not. (COPY FROM PROGRAM and
 * session_replication_role need a superuser, as the rest of the capture suites' servers give.)
 */

describe('which statements on a tracked table are captured', () => {
  let db: TestDatabase;
  let client: Client;

  /** The ids `sql` added to the feed `notes`, in commit order. */
  async function captured(sql: string): Promise<string[]> {
    const before = (await loggedChanges(client, 'notes')).length;
    await client.query(sql);
    return (await loggedChanges(client, 'notes')).slice(before);
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    client = new Client({ connectionString: db.url });
    await client.connect();
    await client.query(installChangeLogSql('public'));
    await client.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
    await trackTable(client, 'notes', { key: 'id' });
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it('captures INSERT, UPDATE, DELETE, INSERT ... ON CONFLICT and COPY FROM', async () => {
    expect(await captured("INSERT INTO notes VALUES (1, 'a'), (2, 'b')")).toEqual(['1', '2']);
    expect(await captured("UPDATE notes SET body = 'c' WHERE id = 2")).toEqual(['2']);
    expect(
      await captured(
        "INSERT INTO notes VALUES (1, 'd'), (3, 'e') ON CONFLICT (id) DO UPDATE SET body = excluded.body",
      ),
    ).toEqual(expect.arrayContaining(['1', '3']));
    expect(await captured("COPY notes FROM PROGRAM 'echo 4,f' WITH (FORMAT csv)")).toEqual(['4']);
    expect(await captured('DELETE FROM notes WHERE id = 4')).toEqual(['4']);
  });

  it('captures MERGE (PostgreSQL 15 and later)', async () => {
    const { rows } = await client.query('SHOW server_version_num');
    const version = Number(rows[0].server_version_num);
    if (version < 150000) return; // MERGE does not exist before 15
    const ids = await captured(
      `MERGE INTO notes USING (VALUES (1, 'm'), (5, 'n')) AS s (id, body) ON notes.id = s.id
       WHEN MATCHED THEN UPDATE SET body = s.body WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.body)`,
    );
    expect([...ids].sort()).toEqual(['1', '5']);
  });

  it('does not capture TRUNCATE, disabled triggers or session_replication_role = replica', async () => {
    expect(
      await captured(
        "SET session_replication_role = replica; INSERT INTO notes VALUES (10, 'r'); SET session_replication_role = origin",
      ),
    ).toEqual([]);
    expect(
      await captured(
        "ALTER TABLE notes DISABLE TRIGGER USER; INSERT INTO notes VALUES (11, 's'); ALTER TABLE notes ENABLE TRIGGER USER",
      ),
    ).toEqual([]);
    expect(await captured('TRUNCATE notes')).toEqual([]);
    // The triggers still work afterwards: only those statements went unseen.
    expect(await captured("INSERT INTO notes VALUES (12, 't')")).toEqual(['12']);
  });
});
