import { Module, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { createPlatformApp } from '../support/http-platform';
import { ThrottlerGuard, ThrottlerModule, ThrottlerStorageService } from '@nestjs/throttler';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import { ChangeReader, installJsonHttpErrors, PollingModule } from '../../src';
import { createItemsTable, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { HostClient, type HostAnswer } from './host-client';
import { FEED_LIMIT, throttledFeedsController } from './throttled-feeds.controller';

/*
 * @nestjs/throttler on feed routes, and a batch poll naming them: a batch request is one request
 * of each feed it names, so it takes one hit of each feed's limit, also when its feeds change
 * while it is held (guards admit a request once; on a wake-up `authorize` re-checks, not guards).
 */

interface BatchAnswer {
  feeds: Record<string, { status: number; cursor: string; body: unknown }>;
}

/** The throttler's own in-memory storage, counting the hits it is asked to record. */
class CountingStorage extends ThrottlerStorageService {
  hits = 0;

  override increment(...args: Parameters<ThrottlerStorageService['increment']>) {
    this.hits++;
    return super.increment(...args);
  }
}

function expectStatus(answer: HostAnswer, status: number): void {
  if (answer.status !== status) {
    throw new Error(`expected ${status}, got ${answer.status}: ${answer.text.slice(0, 300)}`);
  }
}

describe.each([
  ['@UseGuards(ThrottlerGuard) on the feed routes', false],
  ['ThrottlerGuard as a global APP_GUARD', true],
])('throttled feed routes in a batch poll: %s', (_name: string, global: boolean) => {
  let db: TestDatabase;
  let writer: Client;
  let app: INestApplication;
  let client: HostClient;
  const storage = new CountingStorage();

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();

    @Module({
      imports: [
        PollingModule.forRoot(itemsOptions(db)),
        // The app-wide default is generous (the batch route itself, in the global variant).
        ThrottlerModule.forRoot({ throttlers: [{ ttl: 60_000, limit: 100 }], storage }),
      ],
      controllers: [throttledFeedsController(!global)],
      providers: global ? [{ provide: APP_GUARD, useClass: ThrottlerGuard }] : [],
    })
    class ThrottledAppModule {}

    app = await createPlatformApp(ThrottledAppModule, {
      logger: process.env.TEST_LOGS ? undefined : ['error'],
    });
    app.enableShutdownHooks();
    await app.listen(0, '127.0.0.1');
    installJsonHttpErrors(app);
    await app.get(ChangeReader).whenLive();
    const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
    client = new HostClient({ kind: 'tcp', host: '127.0.0.1', port });
  }, 30_000);

  afterAll(async () => {
    (app?.getHttpServer() as Server | undefined)?.closeAllConnections();
    await app?.close();
    await writer?.end();
    await db?.drop();
  });

  const batch = (feeds: Record<string, string | null>, wait?: number) =>
    client.send('POST', '/poll', { json: wait === undefined ? { feeds } : { feeds, wait } });

  it('one hit per feed per batch request, also when its feeds change during the hold', async () => {
    const changing = ['/a/runs/1/changes', '/b/runs/1/changes'];
    const quiet = '/c/runs/2/changes';
    const keys = [...changing, quiet];

    // Request 1 of each feed: the heads.
    const heads = await batch(Object.fromEntries(keys.map((key) => [key, null])));
    expectStatus(heads, 200);
    const cursors: Record<string, string> = {};
    for (const key of keys)
      cursors[key] = (JSON.parse(heads.text) as BatchAnswer).feeds[key].cursor;

    // Requests 2 .. FEED_LIMIT - 1: held until run 1 changes (feeds a and b; c stays quiet).
    for (let request = 2; request < FEED_LIMIT; request++) {
      const before = storage.hits;
      const poll = batch(cursors, 10);
      // Each feed's guard runs after that feed's first index read, so once all of them ran (and
      // the batch route's own, when global) the change can only reach the batch by waking it.
      await waitFor(() => storage.hits >= before + keys.length + (global ? 1 : 0));
      const { rows } = await writer.query<{ id: string }>(
        "INSERT INTO items (run, body) VALUES (1, 'throttled') RETURNING id",
      );
      const answer = await poll;
      expectStatus(answer, 200);
      const feeds = (JSON.parse(answer.text) as BatchAnswer).feeds;
      expect(Object.keys(feeds).sort()).toEqual(changing);
      for (const key of changing) {
        expect({ key, ...feeds[key] }).toMatchObject({
          key,
          status: 200,
          body: { ids: [rows[0].id], reason: 'change' },
        });
        cursors[key] = feeds[key].cursor;
      }
    }

    // The last request the limit allows, as the route's own GET: the throttler's headers say so.
    for (const key of keys) {
      const get = await client.get(`${key}?since=${cursors[key]}&wait=0`);
      expectStatus(get, 200);
      expect({
        key,
        limit: get.headers['x-ratelimit-limit'],
        remaining: get.headers['x-ratelimit-remaining'],
      }).toEqual({ key, limit: String(FEED_LIMIT), remaining: '0' });
    }

    // One more batch request of these feeds is over the limit: the throttler refuses it.
    const refused = await batch(cursors, 10);
    expectStatus(refused, 429);
    expect(JSON.parse(refused.text)).toMatchObject({ statusCode: 429 });
    // With the throttler's Retry-After, as the feed's own GET would have it.
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
  }, 30_000);
});
