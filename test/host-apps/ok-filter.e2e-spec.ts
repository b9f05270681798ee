import {
  Catch,
  Controller,
  ForbiddenException,
  Get,
  HttpException,
  Injectable,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
} from '@nestjs/common';
import type { AnyReply } from '../support/http-platform';
import { LongPoll, PollContext, type PollingRequest } from '../../src';
import { Client } from 'pg';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import { ScopedBatchController } from './scoped-feeds';

/*
 * A feed controller whose exception filter answers every HTTP error as 200 `{ok: false, ...}`
 * (some API styles do). Inside a batch, a refusal of that route is the filter's answer, as its
 * GET's: that feed's answer, at once and without a cursor, never held until the feed changes.
 */

@Catch(HttpException)
class OkEnvelopeFilter implements ExceptionFilter {
  catch(error: HttpException, host: ArgumentsHost): void {
    host
      .switchToHttp()
      .getResponse<AnyReply>()
      .status(200)
      .send({ ok: false, status: error.getStatus(), message: error.message });
  }
}

@Injectable()
class TenantHeaderGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    if (!context.switchToHttp().getRequest<PollingRequest>().headers['x-tenant']) {
      throw new ForbiddenException('tenant required');
    }
    return true;
  }
}

@Controller('tenant')
class GuardedFeedController {
  @Get(':run/changes')
  @UseGuards(TenantHeaderGuard)
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
  }
}

/** The same route, with the filter on its controller (the batch route does not have it). */
@Controller('filtered')
@UseFilters(OkEnvelopeFilter)
class FilteredFeedController {
  @Get(':run/changes')
  @UseGuards(TenantHeaderGuard)
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
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
  host = await startApp(db, {
    controllers: [GuardedFeedController, FilteredFeedController, ScopedBatchController],
  });
}, 30_000);

afterAll(async () => {
  await host?.close();
  await writer?.end();
  await db?.drop();
});

const refused = { status: 200, body: { ok: false, status: 403, message: 'tenant required' } };

it("the feed route's GET answers the refusal as 200 without a cursor", async () => {
  const get = await fetch(`${host.url}/filtered/41/changes`);
  expect(get.status).toBe(200);
  expect(get.headers.get('poll-cursor')).toBeNull();
  expect(await get.json()).toEqual(refused.body);
});

it('a batch without a cursor answers the refusal as that feed, without a cursor', async () => {
  const answer = await batch(host.url, { '/filtered/43/changes': null });
  expectStatus(answer, 200);
  expect(answer.feeds['/filtered/43/changes']).toEqual(refused);
});

it('a batch with a cursor answers the refusal at once: it is not held', async () => {
  const start = await batch(host.url, { '/filtered/44/changes': null }, { 'x-tenant': 't1' });
  const cursor = start.feeds['/filtered/44/changes'].cursor!;
  expect(cursor).toEqual(expect.any(String));
  const began = Date.now();
  const answer = await batch(host.url, { '/filtered/44/changes': cursor }, {}, 5);
  expect(Date.now() - began).toBeLessThan(2000);
  expectStatus(answer, 200);
  expect(answer.feeds['/filtered/44/changes']).toEqual(refused);
});

it('a route without the filter still fails the whole batch with its 403', async () => {
  const answer = await batch(host.url, {
    '/tenant/45/changes': null,
    '/filtered/45/changes': null,
  });
  expectStatus(answer, 403);
});
