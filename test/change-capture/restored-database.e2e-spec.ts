import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { OwnedPostgres } from '../support/owned-postgres';
import { OwnedRedisServer } from '../support/redis-server';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

/**
 * A database restored from a backup (or a standby promoted after asynchronous replication) has
 * the change log's identity (same cluster, database oid, schema) but not its latest history: the
 * index it finds in Redis was built from transactions the database no longer has, and its
 * checkpoint lies past the transaction ids the database hands out next.
 */
describe('a database restored from a backup', () => {
  let owned: OwnedPostgres | null = null;
  let redis: OwnedRedisServer;
  let url: string;
  let backupDir: string;
  let app: ItemsApp | null = null;

  beforeAll(async () => {
    const started = await OwnedPostgres.start();
    if ('skipped' in started) {
      console.warn(`restored-database skipped: ${started.skipped}`);
      return;
    }
    owned = started;
    url = await owned.createDatabase('restored');
    await sql(
      'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
    );
    redis = await OwnedRedisServer.start();
    backupDir = mkdtempSync(join(tmpdir(), 'owned-pg-backup-'));
  });

  afterAll(async () => {
    await app?.close();
    await redis?.stop();
    await owned?.destroy();
    if (backupDir) rmSync(backupDir, { recursive: true, force: true });
  });

  async function sql<T extends object>(text: string): Promise<T[]> {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  }

  const insert = async (body: string) =>
    (
      await sql<{ id: string }>(`INSERT INTO items (run, body) VALUES (1, '${body}') RETURNING id`)
    )[0].id;

  const start = async () => (app = await startItemsApp(url, { redis: { url: redis.url } }));
  const stop = async () => {
    await app?.close();
    app = null;
  };

  /** A file-level copy of the stopped cluster (cp -a keeps the server user's ownership). */
  async function copyCluster(from: string, to: string): Promise<void> {
    await owned!.stop();
    rmSync(to, { recursive: true, force: true });
    execFileSync('cp', ['-a', from, to]);
    await owned!.restart(); // pg_ctl restart starts a stopped server
  }

  async function poll(items: ItemsApp, cursor: string | null, waitS = 0) {
    const query = cursor === null ? '' : `?since=${cursor}&wait=${waitS}`;
    const res = await fetch(`${items.url}/runs/1/changes${query}`);
    const body = res.status === 200 ? ((await res.json()) as ChangesBody) : null;
    return { status: res.status, ids: body?.changes.map((c) => c.id) ?? [], cursor: body?.cursor };
  }

  it('starts a new index generation instead of skipping the writes made after the restore', async () => {
    if (!owned) return;
    await start();
    await insert('before the backup');
    await stop();
    const backup = join(backupDir, 'data');
    await copyCluster(owned.dataDir, backup);

    // After the backup the app indexes 20 more transactions; a follower sees them.
    const items = await start();
    const head = (await poll(items, null)).cursor!;
    for (let i = 0; i < 20; i += 1) await insert(`lost ${i}`);
    let seen = await poll(items, head, 10);
    let cursor = seen.cursor!;
    while (seen.ids.length < 20 && seen.status === 200) {
      const more = await poll(items, cursor, 10);
      seen = { ...more, ids: [...seen.ids, ...more.ids] };
      cursor = more.cursor ?? cursor;
    }
    expect(seen.ids).toHaveLength(20);
    await stop();

    // The database is restored from the backup: those 20 transactions never happened.
    await copyCluster(backup, owned.dataDir);

    const restored = await start();
    // A client that loads the feed now gets the next write.
    const fresh = (await poll(restored, null)).cursor!;
    const id = await insert('after the restore');
    const next = await poll(restored, fresh, 5);
    expect(next.status).toBe(200);
    expect(next.ids).toEqual([id]);
    // The follower's cursor names changes the database no longer has: it must reload (409).
    expect((await poll(restored, cursor, 0)).status).toBe(409);
  });
});
