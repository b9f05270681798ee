import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { scrape } from '../support/prometheus-text';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/**
 * A leader that loses its Postgres session (a timeout, a restart, a killed backend) connects
 * again and takes the leader lock back. It announced everything it appended, so nothing is owed
 * to anybody: its reconnects must not wake every held request of every instance (each wake costs
 * an index read and the route's authorize per held request; a reader that reconnects twice a
 * second would multiply that load on every instance).
 */
describe("a leader's own reconnect", () => {
  const keyPrefix = uniquePrefix('reconnect-wake');
  let db: TestDatabase;
  let admin: Redis;
  let writer: Client;
  const apps: ItemsApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    admin = new Redis(redisUrl());
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await writer?.end();
    await deleteKeys(admin, keyPrefix);
    admin.disconnect();
    await db?.drop();
  });

  it('wakes no held request on another instance', async () => {
    const options = { redis: { url: redisUrl() }, keyPrefix, metrics: { enabled: true } };
    const leader = await startItemsApp(db.url, options);
    apps.push(leader);
    // The follower does not try for the lock during the test: the leader takes it back itself.
    const follower = await startItemsApp(db.url, {
      ...options,
      reader: { leaderRetryMs: 3_600_000 },
    });
    apps.push(follower);
    const reader = leader.app.get(ChangeReader);
    expect(reader.role).toBe('leader');

    const head = await fetch(`${follower.url}/runs/1/changes`);
    const { cursor } = (await head.json()) as { cursor: string };
    const poll = fetch(`${follower.url}/runs/1/changes?since=${cursor}&wait=30`);
    await new Promise((r) => setTimeout(r, 300)); // held by now

    for (let i = 0; i < 3; i++) {
      const pid = reader.backendPid;
      await writer.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor(() => reader.role === 'leader' && reader.live && reader.backendPid !== pid, {
        message: 'the leader reconnected and leads again',
      });
    }
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'after the reconnects') RETURNING id",
    );
    const res = await poll;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { changes: { id: string }[] }).changes.map((c) => c.id)).toEqual([
      rows[0].id,
    ]);

    const metrics = await scrape(`${follower.url}/metrics`);
    expect(metrics.value('polling_wakeups_total', { reason: 'reset' })).toBe(0);
    expect(metrics.value('polling_wakeups_total', { reason: 'change' })).toBe(1);
  });
});
