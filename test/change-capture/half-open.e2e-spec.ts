import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  loggedChanges,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

import Redis from 'ioredis';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';

describe.each(['memory', 'redis'] as const)('half-open listener socket (%s index)', (kind) => {
  const keyPrefix = uniquePrefix('half-open');
  let db: TestDatabase;
  let proxy: TcpProxy;
  let polling: PollingApp;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    proxy = await TcpProxy.start(Number(new URL(db.url).port || 5432));
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    polling = await startPollingApp(
      itemsOptions(db, {
        postgres: { url: viaProxy.toString() },
        reader: { backstopMs: 200, queryTimeoutMs: 500, leaderRetryMs: 100 },
        ...(kind === 'redis' ? { redis: { url: redisUrl() }, keyPrefix } : {}),
      }),
    );
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await polling?.close();
    await proxy?.close();
    if (kind === 'redis') {
      const redis = new Redis(redisUrl());
      await deleteKeys(redis, keyPrefix);
      await redis.quit();
    }
    await db?.drop();
  });

  it('notices the dead socket through its heartbeat, reconnects and catches up', async () => {
    const before = polling.reader.backendPid;
    proxy.freezeOpenConnections();
    for (let i = 0; i < 10; i++) {
      await writer.query("INSERT INTO items (run, body) VALUES (1, 'while the socket is dead')");
    }
    await waitFor(
      () => polling.reader.backendPid !== null && polling.reader.backendPid !== before,
      {
        timeoutMs: 5000,
        message: 'reader reconnected through a fresh socket',
      },
    );
    // The frozen session held the leader lock; the reader ended it and leads again.
    await waitFor(() => polling.reader.role === 'leader', { message: 'leads again' });
    const logged = await loggedChanges(writer, 'items:1');
    await waitFor(async () => (await indexedChanges(polling.index, 'items:1')).length === 10, {
      message: 'the writes made while the socket was dead arrive',
    });
    expect((await indexedChanges(polling.index, 'items:1')).map((c) => c.resourceId)).toEqual(
      logged,
    );
  });
});
