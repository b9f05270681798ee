import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { readChangeLogIdentity } from '../../src/change-capture/change-log-identity';
import { indexKeys } from '../../src/change-capture/index-keys';
import { RedisChangeIndex } from '../../src/change-index/redis-change-index';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

const WAIT_S = 8;

/**
 * A leader that dies between appending a change to the index and announcing it on the bus: the
 * test plays that leader (it holds the leader lock, appends like a leader, then dies without a
 * publish). The instance that takes over must wake every instance's held polls to re-check.
 */
describe('a takeover after a leader died between append and publish', () => {
  let db: TestDatabase;
  let redis: Redis;
  let dyingLeader: Client;
  let writer: Client;
  const apps: ItemsApp[] = [];
  const keyPrefix = uniquePrefix('takeover-wake');

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    redis = new Redis(redisUrl());
    writer = new Client(db.config);
    await writer.connect();
    dyingLeader = new Client(db.config);
    await dyingLeader.connect();
  });

  afterAll(async () => {
    await dyingLeader?.end().catch(() => undefined);
    await writer?.end();
    for (const app of apps) await app.close();
    await deleteKeys(redis, keyPrefix);
    await redis?.quit();
    await db?.drop();
  });

  it('answers a held poll on another instance at once, not when its wait ends', async () => {
    // The test leads: it holds the leader lock and starts the index generation like a leader.
    const identity = await readChangeLogIdentity(dyingLeader, 'public');
    const keys = indexKeys(keyPrefix, 'public', identity);
    const index = new RedisChangeIndex(redis, keys.prefix);
    const id = await index.claimId('dying-leader');
    const { rows: lock } = await dyingLeader.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok',
      [`${keys.leaderLock}${id}`],
    );
    expect(lock[0].ok).toBe(true);
    await index.startGeneration('dying', { readerXid: '0', readerId: '0' });

    // Two instances follow it, each with a poll held on the feed.
    const options = { redis: { url: redisUrl() }, keyPrefix, reader: { leaderRetryMs: 100 } };
    for (let i = 0; i < 2; i++) apps.push(await startItemsApp(db.url, options));
    const head = await fetch(`${apps[0].url}/runs/1/changes`);
    const { cursor } = (await head.json()) as ChangesBody;
    const polls = apps.map((app) =>
      fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=${WAIT_S}`),
    );
    await new Promise((r) => setTimeout(r, 300)); // both polls are held by now

    // A write; the leader reads it and appends it to the index ...
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES (1, 'appended, never announced') RETURNING id",
    );
    const { rows: logged } = await dyingLeader.query<{ xid: string; id: string; feed: string }>(
      'SELECT xid::text AS xid, id::text AS id, feed FROM polling_changes ORDER BY xid, id',
    );
    expect(logged).toHaveLength(1);
    const appended = await index.append({
      generation: 'dying',
      expectedPosition: 0,
      changes: [{ feed: logged[0].feed, resourceId: rows[0].id }],
      readerXid: logged[0].xid,
      readerId: logged[0].id,
    });
    expect(appended.ok).toBe(true);
    // ... and dies before it publishes: its session ends, the lock is free.
    const diedAt = Date.now();
    await dyingLeader.end();

    const replies = await Promise.all(
      polls.map(async (poll) => {
        const res = await poll;
        const body = res.status === 200 ? ((await res.json()) as ChangesBody) : null;
        return {
          status: res.status,
          ids: body?.changes.map((c) => c.id),
          afterMs: Date.now() - diedAt,
        };
      }),
    );
    // One instance took over; the other's poll is a follower instance's.
    const roles = apps.map((app) => app.app.get(ChangeReader).role);
    expect(roles.sort()).toEqual(['follower', 'leader']);
    for (const reply of replies) {
      expect(reply).toMatchObject({ status: 200, ids: [rows[0].id] });
      // The new leader takes over within a few leaderRetryMs; the wait would end after 8 s.
      expect(reply.afterMs).toBeLessThan(3000);
    }
  });
});
