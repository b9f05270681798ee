import Redis from 'ioredis';
import { Client } from 'pg';
import { PollingHealthIndicator } from '../../src';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

/**
 * The lag (held-back rows, the oldest open transaction, the stall) is measured by the leader only.
 * A leader that loses its connection during a stall and comes back as a follower kept the lag it
 * measured last: its health said "degraded" (503) for good, the stall and the transaction's age
 * growing, long after the transaction ended and the new leader had read everything.
 */
describe('a leader that becomes a follower during a stall', () => {
  let db: TestDatabase;
  let a: PollingApp;
  let b: PollingApp;
  let long: Client;
  let writer: Client;
  const keyPrefix = uniquePrefix('follower-lag');

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    const options = itemsOptions(db, {
      redis: { url: redisUrl() },
      keyPrefix,
      reader: { leaderRetryMs: 100 },
      health: { horizonStallMs: 300 },
    });
    a = await startPollingApp(options);
    b = await startPollingApp(options);
    long = new Client(db.config);
    writer = new Client(db.config);
    await Promise.all([long.connect(), writer.connect()]);
  });

  afterAll(async () => {
    await long?.end().catch(() => undefined);
    await writer?.end();
    await a?.close();
    await b?.close();
    const redis = new Redis(redisUrl());
    await deleteKeys(redis, keyPrefix);
    await redis.quit();
    await db?.drop();
  });

  const health = (app: PollingApp) => app.app.get(PollingHealthIndicator).reader().reader;

  it('reports no stall once the transaction has ended and the new leader has read past it', async () => {
    await waitFor(() => [a, b].filter((x) => x.reader.role === 'leader').length === 1, {
      message: 'one leader',
    });
    const [first, second] = a.reader.role === 'leader' ? [a, b] : [b, a];

    await long.query('BEGIN');
    await long.query('INSERT INTO items (run) VALUES (8)');
    await writer.query('INSERT INTO items (run) VALUES (9)');
    await waitFor(() => health(first).state === 'degraded', {
      timeoutMs: 10_000,
      message: 'the leader never reported the stall',
    });

    // The leader's connection dies; the other instance takes the lock (retry if the old leader
    // wins it back first).
    const admin = new Client(db.config);
    await admin.connect();
    try {
      await waitFor(
        async () => {
          if (second.reader.role === 'leader' && first.reader.role === 'follower') return true;
          const pid = first.reader.role === 'leader' ? first.reader.backendPid : null;
          if (pid !== null) await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          return false;
        },
        { timeoutMs: 15_000, intervalMs: 300, message: 'the other instance never took over' },
      );
    } finally {
      await admin.end();
    }

    await long.query('COMMIT');
    await waitFor(async () => (await indexedChanges(second.index, 'items:9')).length === 1, {
      timeoutMs: 10_000,
      message: 'the new leader never indexed the held-back change',
    });
    await waitFor(() => health(second).state === 'ok', {
      timeoutMs: 10_000,
      message: 'the new leader never reported ok',
    });

    // Nothing is open and nothing is held back: both instances say so.
    const open = await writer.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND datname = current_database()',
    );
    expect(open.rows[0].n).toBe(0);
    expect(first.reader.role).toBe('follower');
    expect(health(first)).toMatchObject({ status: 'up', state: 'ok', heldBackRows: 0 });
    expect(health(first).oldestOpenTransactionMs).toBe(0);
  }, 60_000);
});
