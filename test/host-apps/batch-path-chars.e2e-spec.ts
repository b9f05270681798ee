import { Controller, Get, Param, Req } from '@nestjs/common';
import type { Request } from 'express';
import { LongPoll, PollContext } from '../../src';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import { ScopedBatchController } from './scoped-feeds';

/*
 * Batch keys are the paths a client would GET. Paths with sub-delimiters and other characters
 * RFC 3986 allows unencoded in a segment (`@ ~ $ & ' , ; =`), in a route parameter or in the
 * route's own literal segments (`/users/@me`, OData's `$metadata`), raw or percent-encoded, must
 * reach the route and params their GET reaches, with the same answer.
 */

@Controller()
class CharsFeedController {
  @Get('chars/:name/changes')
  @LongPoll({ feed: 'items', partition: 'name' })
  named(@Param('name') name: string, @Req() req: Request, @PollContext() poll: PollContext) {
    return { route: 'named', name, feed: poll.feed, path: req.path };
  }

  @Get('users/@me/changes')
  @LongPoll({ feed: 'items', partition: () => 'me' })
  me(@Req() req: Request, @PollContext() poll: PollContext) {
    return { route: 'me', feed: poll.feed, path: req.path };
  }

  @Get('~alice/$feed/changes')
  @LongPoll({ feed: 'items', partition: () => 'alice' })
  tilde(@Req() req: Request, @PollContext() poll: PollContext) {
    return { route: 'tilde', feed: poll.feed, path: req.path };
  }
}

let db: TestDatabase;
let host: Started;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  host = await startApp(db, { controllers: [CharsFeedController, ScopedBatchController] });
}, 30_000);

afterAll(async () => {
  await host?.close();
  await db?.drop();
});

const names = ['a@b', 'x~y', 'p$q', 'k&v', "o'brien", 'a,b', 'a;b', 'k=v', "@~$&',;="];

async function get(key: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${host.url}${key}`);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

describe('a route parameter with sub-delimiters', () => {
  it.each(
    names.flatMap((name) => [
      [name, name],
      [name, encodeURIComponent(name)],
    ]),
  )('%s as %s reaches the route with its GET params and answer', async (name, written) => {
    const key = `/chars/${written}/changes`;
    const own = await get(key);
    expect(own).toMatchObject({
      status: 200,
      body: { route: 'named', name, feed: `items:${name}` },
    });
    const answer = await batch(host.url, { [key]: null });
    expectStatus(answer, 200);
    expect(answer.feeds[key]).toMatchObject({ status: 200, body: own.body });
  });
});

describe('a route whose literal segments hold such characters', () => {
  it.each([
    ['/users/@me/changes', 'me'],
    ['/~alice/$feed/changes', 'tilde'],
  ])('%s is a feed key, answered as its GET', async (key, route) => {
    const own = await get(key);
    expect(own).toMatchObject({ status: 200, body: { route } });
    const answer = await batch(host.url, { [key]: null });
    expectStatus(answer, 200);
    expect(answer.feeds[key]).toMatchObject({ status: 200, body: own.body });
  });

  it.each(['/users/%40me/changes', '/%7Ealice/%24feed/changes'])(
    '%s (percent-encoded) answers as its GET does',
    async (key) => {
      const own = await get(key);
      const answer = await batch(host.url, { [key]: null });
      if (own.status === 200) {
        expectStatus(answer, 200);
        expect(answer.feeds[key]).toMatchObject({ status: 200, body: own.body });
      } else {
        // The GET does not reach the route: the batch names no feed either.
        expectStatus(answer, 400);
      }
    },
  );
});
