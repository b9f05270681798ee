import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Client } from 'pg';
import { OwnedPostgres } from './owned-postgres';

function pgrep(pattern: string): string {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim();
  } catch {
    return ''; // exit status 1: no process matched
  }
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  return client;
}

describe('OwnedPostgres', () => {
  let owned: OwnedPostgres | null = null;

  beforeAll(async () => {
    const started = await OwnedPostgres.start();
    if ('skipped' in started) console.warn(`OwnedPostgres skipped: ${started.skipped}`);
    else owned = started;
  });

  afterAll(() => owned?.destroy());

  it('keeps a prepared transaction across a fast restart, then leaves nothing behind', async () => {
    if (!owned) return;
    const url = await owned.createDatabase('owned_check');
    expect(url).toBe(`postgres://postgres@127.0.0.1:${owned.port}/owned_check`);

    const before = await connect(url);
    before.on('error', () => {}); // the restart ends this session
    await before.query('CREATE TABLE t (id int)');
    await before.query('BEGIN');
    await before.query('INSERT INTO t VALUES (1)');
    await before.query("PREPARE TRANSACTION 'owned_tx'");

    await owned.restart('fast');
    await expect(before.query('SELECT 1')).rejects.toThrow();
    await before.end().catch(() => {});

    const after = await connect(url);
    try {
      const { rows } = await after.query('SELECT gid FROM pg_prepared_xacts');
      expect(rows).toEqual([{ gid: 'owned_tx' }]);
      await after.query("COMMIT PREPARED 'owned_tx'");
      expect((await after.query('SELECT id FROM t')).rows).toEqual([{ id: 1 }]);
    } finally {
      await after.end();
    }

    expect(pgrep(owned.dataDir)).not.toBe('');
    await owned.destroy();
    expect(pgrep(owned.dataDir)).toBe('');
    expect(existsSync(owned.dataDir)).toBe(false);
    await expect(owned.destroy()).resolves.toBeUndefined();
  });
});
