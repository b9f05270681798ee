import Redis from 'ioredis';
import { Client } from 'pg';
import { filter, firstValueFrom } from 'rxjs';
import type { ChangeNotice } from '../../src/change-bus/change-notice.interface';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  loggedChanges,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

describe('two instances sharing Postgres and Redis', () => {
  let db: TestDatabase;
  let a: PollingApp;
  let b: PollingApp;
  let writer: Client;
  const keyPrefix = uniquePrefix('takeover');

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    const options = itemsOptions(db, {
      redis: { url: redisUrl() },
      keyPrefix,
      reader: { leaderRetryMs: 100 },
    });
    a = await startPollingApp(options);
    b = await startPollingApp(options);
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await a?.close();
    await b?.close();
    const redis = new Redis(redisUrl());
    await deleteKeys(redis, keyPrefix);
    await redis.quit();
    await db?.drop();
  });

  const leaderAndFollower = () => (a.reader.role === 'leader' ? [a, b] : [b, a]);

  it('elects exactly one leader', async () => {
    await waitFor(() => [a, b].filter((x) => x.reader.role === 'leader').length === 1, {
      message: 'one leader',
    });
    expect([a.reader.role, b.reader.role].sort()).toEqual(['follower', 'leader']);
  });

  it('wakes subscribers in both instances for a change the leader read', async () => {
    const seen = (app: PollingApp) =>
      firstValueFrom(
        app.bus.notices$.pipe(
          filter((n: ChangeNotice) => n.kind === 'changes' && n.feeds.includes('items:7')),
        ),
      );
    const both = Promise.all([seen(a), seen(b)]);
    await writer.query('INSERT INTO items (run, body) VALUES (7, $1)', ['hello both']);
    const [na, nb] = await both;
    expect(na).toEqual(nb);
  });

  it('hands over to the other instance when the leader connection dies, without gaps or duplicates', async () => {
    const [leader, follower] = leaderAndFollower();
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.query('INSERT INTO items (run, body) VALUES (1, $1)', ['across the takeover']);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await new Promise((r) => setTimeout(r, 100));

    const admin = new Client(db.config);
    await admin.connect();
    await admin.query('SELECT pg_terminate_backend($1)', [leader.reader.backendPid]);
    await admin.end();

    await waitFor(() => follower.reader.role === 'leader', { message: 'the follower took over' });
    await waitFor(() => leader.reader.role === 'follower', { message: 'the old leader follows' });
    await new Promise((r) => setTimeout(r, 100));
    writing = false;
    await writes;

    const logged = await loggedChanges(writer, 'items:1');
    await waitFor(
      async () => (await indexedChanges(follower.index, 'items:1')).length === logged.length,
      {
        message: 'the new leader caught up',
      },
    );
    const indexed = await indexedChanges(follower.index, 'items:1');
    expect(indexed.map((c) => c.resourceId)).toEqual(logged);

    // Dense positions: exactly one position per logged change, in one generation.
    const { rows } = await writer.query('SELECT count(*)::int AS n FROM polling_changes');
    const head = (await follower.index.head())!;
    expect(head.position).toBe(rows[0].n);
    const positions = indexed.map((c) => c.position);
    expect(new Set(positions).size).toBe(positions.length);
  });
});
