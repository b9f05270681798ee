import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { TcpProxy } from '../support/tcp-proxy';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

/**
 * Pruning keeps every row a live reader has not consumed, as each index records in
 * `polling_reader_state`. Two indexes of one change log (here a Redis-backed app and an app with
 * the in-memory index, both with the default keyPrefix) must record their positions apart.
 */
describe('the reader state of two indexes on one change log', () => {
  const prefix = uniquePrefix('reader-state');
  // One keyPrefix for both apps, as with the default one.
  const options = { keyPrefix: prefix, retention: { maxRows: 5 }, reader: { pruneIntervalMs: 50 } };
  let db: TestDatabase;
  let admin: Redis;
  let writer: Client;
  let shared: ItemsApp | null = null;
  let memory: ItemsApp | null = null;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    admin = new Redis(redisUrl());
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await shared?.close();
    await memory?.close();
    await writer?.end();
    await deleteKeys(admin, prefix);
    admin.disconnect();
    await db?.drop();
  });

  const startShared = () => startItemsApp(db.url, { ...options, redis: { url: redisUrl() } });

  async function poll(items: ItemsApp, cursor: string | null) {
    const query = cursor === null ? '' : `?since=${cursor}&wait=2`;
    const res = await fetch(`${items.url}/runs/1/changes${query}`);
    const body = res.status === 200 ? ((await res.json()) as ChangesBody) : null;
    return { status: res.status, ids: body?.changes.map((c) => c.id) ?? [], cursor: body?.cursor };
  }

  it('never lets one index prune the rows the other has not read yet', async () => {
    shared = await startShared();
    memory = await startItemsApp(db.url, options);
    const cursor = (await poll(shared, null)).cursor!;

    // The Redis-backed app is down for a moment (a deploy) while 20 changes are written; the
    // other app reads them all and prunes the log to its newest 5 rows where it may.
    await shared.close();
    shared = null;
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) SELECT 1, 'row ' || g FROM generate_series(1, 20) g RETURNING id",
    );
    const index = memory.app.get<ChangeIndex>(CHANGE_INDEX);
    await waitFor(async () => (await index.head())?.position === 20, {
      message: 'the in-memory index read the 20 changes',
    });
    await new Promise((resolve) => setTimeout(resolve, 1000)); // ~20 prune rounds

    // Back up, the Redis-backed app's follower gets every change (or a 409), never a silent gap.
    shared = await startShared();
    let seen = await poll(shared, cursor);
    const ids = [...seen.ids];
    while (seen.status === 200 && ids.length < 20) {
      seen = await poll(shared, seen.cursor!);
      ids.push(...seen.ids);
    }
    // A 409 is honest (the index itself keeps 5 rows, so its floor may pass the cursor first);
    // a 200 must carry all 20 changes.
    if (seen.status !== 409) expect(ids).toEqual(rows.map((r) => r.id));
    expect([200, 409]).toContain(seen.status);
  });

  it('never lets one in-memory instance prune the rows another has not read yet', async () => {
    // Two replicas of an app without Redis: each leads an in-memory index of its own over the
    // one change log. The lagging one reaches Postgres through a proxy.
    const proxy = await TcpProxy.start(Number(new URL(db.url).port || 5432));
    const proxied = new URL(db.url);
    proxied.port = String(proxy.port);
    const lagging = await startItemsApp(proxied.toString(), options);
    const ahead = await startItemsApp(db.url, options);
    try {
      const cursor = (await poll(lagging, null)).cursor!;
      await new Promise((resolve) => setTimeout(resolve, 200)); // both stored their state

      // The lagging replica's reader loses its session and cannot reconnect for a while (a
      // network blip); the other one reads 20 changes and prunes the log where it may.
      proxy.dropWhenClientSends('nestjs-polling reader');
      const reader = lagging.app.get(ChangeReader);
      await writer.query('SELECT pg_terminate_backend($1)', [reader.backendPid]);
      await waitFor(() => reader.role !== 'leader', { message: 'the reader lost its session' });
      const { rows } = await writer.query<{ id: string }>(
        "INSERT INTO items (run, body) SELECT 1, 'row ' || g FROM generate_series(1, 20) g RETURNING id",
      );
      const index = ahead.app.get<ChangeIndex>(CHANGE_INDEX);
      await waitFor(async () => (await index.head())?.position === 20, {
        message: 'the other replica read the 20 changes',
      });
      await new Promise((resolve) => setTimeout(resolve, 1000)); // ~20 prune rounds
      proxy.dropWhenClientSends(null);
      const end = (await index.head())!;
      const behind = lagging.app.get<ChangeIndex>(CHANGE_INDEX);
      await waitFor(async () => (await behind.head())?.readerId === end.readerId, {
        timeoutMs: 15_000,
        message: 'the lagging replica caught up with the change log',
      });

      // Its follower gets every change (or a 409), never a silent gap.
      let seen = await poll(lagging, cursor);
      const ids = [...seen.ids];
      while (seen.status === 200 && ids.length < 20) {
        seen = await poll(lagging, seen.cursor!);
        ids.push(...seen.ids);
      }
      if (seen.status !== 409) expect(ids).toEqual(rows.map((r) => r.id));
      expect([200, 409]).toContain(seen.status);
    } finally {
      await lagging.close();
      await ahead.close();
      await proxy.close();
    }
  }, 30_000);
});
