import {
  Controller,
  Get,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { Request } from 'express';
import { Client } from 'pg';
import { of, tap, type Observable } from 'rxjs';
import { LongPoll, PollContext } from '../../src';
import { createItemsTable, insertItem } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import { ScopedBatchController } from './scoped-feeds';

/*
 * An app that caches GET answers by URL for every route (Nest's documented auto-caching:
 * `APP_INTERCEPTOR` + @nestjs/cache-manager's CacheInterceptor, keyed by the request URL). A feed
 * GET carries its cursor in the URL (`?since=`), so a cached answer is always one for that
 * cursor. Inside a batch a feed's request is that GET: a cached answer for another cursor (the
 * head, say) must never stand in for this one.
 */

@Injectable()
class UrlCacheInterceptor implements NestInterceptor {
  static readonly cache = new Map<string, unknown>();

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = context.switchToHttp().getRequest<Request>();
    if (req.method !== 'GET') return next.handle();
    const key = req.originalUrl;
    if (UrlCacheInterceptor.cache.has(key)) return of(UrlCacheInterceptor.cache.get(key));
    return next.handle().pipe(
      tap((answer) => {
        if (answer !== undefined) UrlCacheInterceptor.cache.set(key, answer);
      }),
    );
  }
}

@Controller()
class CachedFeedController {
  @Get('cached/:run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, cursor: poll.cursor };
  }
}

let db: TestDatabase;
let writer: Client;
let host: Started;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(db, { controllers: [CachedFeedController, ScopedBatchController] }, (app) =>
    app.useGlobalInterceptors(new UrlCacheInterceptor()),
  );
}, 30_000);

afterAll(async () => {
  await host?.close();
  await writer?.end();
  await db?.drop();
});

it('the GET: each cursor has its own URL, so a cached head never answers a cursor', async () => {
  const key = '/cached/1/changes';
  const head = (await (await fetch(`${host.url}${key}`)).json()) as { cursor: string };
  const id = await insertItem(writer, 1);
  const res = await fetch(`${host.url}${key}?since=${encodeURIComponent(head.cursor)}&wait=5`);
  expect(await res.json()).toMatchObject({ ids: [id] });
});

it('a batch: a feed is answered for its own cursor, not with a cached answer of another', async () => {
  const key = '/cached/2/changes';
  const start = await batch(host.url, { [key]: null });
  expectStatus(start, 200);
  const id = await insertItem(writer, 2);
  const answer = await batch(host.url, { [key]: start.feeds[key].cursor! }, {}, 5);
  expectStatus(answer, 200);
  expect(answer.feeds[key]).toMatchObject({ status: 200, body: { ids: [id] } });
  expect(answer.feeds[key].cursor).toBeDefined();
});
