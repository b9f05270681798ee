import {
  Controller,
  Get,
  Injectable,
  NotFoundException,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { PollingRequest as Request } from '../../src';
import { LongPoll, PollContext } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { waitFor } from '../support/wait-for';
import { batch, expectStatus, feedAppFixture } from './feed-app';
import { ScopedBatchController } from './scoped-feeds';

/*
 * Feed routes behind a guard, whose partition comes from the request: an organisation looked up
 * from the path (unknown: 404), or the signed-in user's organisation (what the guard attached).
 * Inside a batch, as on their GET, the guard decides first: a caller it refuses learns nothing
 * about the feed (not whether the organisation exists, nor whether its cursor is valid), and a
 * partition read from `req.user` sees the user the guard attached.
 */

type UserRequest = Request & { user?: { name: string; org: string } };
const ORGS: Record<string, string> = { acme: '1', globex: '2' };
const guardRuns = { count: 0 };

@Injectable()
class UserGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    guardRuns.count++;
    const req = context.switchToHttp().getRequest<UserRequest>();
    const name = req.headers['x-user'] as string | undefined;
    if (!name) throw new UnauthorizedException('sign in first');
    req.user = { name, org: 'globex' };
    return true;
  }
}

function orgPartition(req: Request): string {
  const org = ORGS[String(req.params.org)];
  if (!org) throw new NotFoundException('no such organisation');
  return org;
}

@Controller()
@UseGuards(UserGuard)
class OrgFeedController {
  @Get('orgs/:org/changes')
  @LongPoll({ feed: 'items', partition: orgPartition })
  org(@PollContext() poll: PollContext) {
    return { feed: poll.feed };
  }

  @Get('my-org/changes')
  @LongPoll({ feed: 'items', partition: (req) => ORGS[(req as UserRequest).user!.org] })
  mine(@PollContext() poll: PollContext) {
    return { feed: poll.feed };
  }
}

const fixture = feedAppFixture(
  { controllers: [OrgFeedController, ScopedBatchController] },
  undefined,
  { http: { maxHeldPerClient: 1 } },
);

describe('a caller the guard refuses', () => {
  it.each([
    ['an organisation that exists', { '/orgs/acme/changes': null }],
    ['one that does not', { '/orgs/initech/changes': null }],
    ['a cursor that is not one', { '/orgs/acme/changes': 'forged' }],
    ['a partition read from the user', { '/my-org/changes': null }],
  ])('gets the guard’s 401 for %s, as on the GET', async (_case, feeds) => {
    const [key] = Object.keys(feeds);
    const get = await fetch(`${fixture.host.url}${key}`);
    expect(get.status).toBe(401);
    const answer = await batch(fixture.host.url, feeds);
    expectStatus(answer, 401);
    expect(JSON.parse(answer.text)).toMatchObject({ statusCode: 401, message: 'sign in first' });
  });
});

describe('a signed-in caller', () => {
  it('gets 404 for an unknown organisation, as on the GET', async () => {
    const answer = await batch(
      fixture.host.url,
      { '/orgs/initech/changes': null },
      { 'x-user': 'ann' },
    );
    expectStatus(answer, 404);
  });

  it('follows a partition read from what the guard attached', async () => {
    const key = '/my-org/changes';
    const answer = await batch(fixture.host.url, { [key]: null }, { 'x-user': 'ann' });
    expectStatus(answer, 200);
    expect(answer.feeds[key]).toMatchObject({ status: 200, body: { feed: 'items:2' } });
  });
});

it('refuses a batch over the client’s held limit before running any feed route', async () => {
  const key = '/my-org/changes';
  const user = { 'x-user': 'ann' };
  const start = await batch(fixture.host.url, { [key]: null }, user);
  const since = { [key]: start.feeds[key].cursor! };
  const stop = new AbortController();
  const first = fetch(`${fixture.host.url}/poll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...user },
    body: JSON.stringify({ feeds: since, wait: 10 }),
    signal: stop.signal,
  }).catch((error: unknown) => error);
  const held = fixture.host.app.get(HeldRequests);
  await waitFor(() => held.size === 1);
  const runs = guardRuns.count;
  const many = Object.fromEntries(
    Array.from({ length: 5 }, (_, i) => [
      `/orgs/${i % 2 ? 'acme' : 'globex'}/changes?n=${i}`,
      since[key],
    ]),
  );
  const second = await batch(fixture.host.url, many, user, 10);
  expectStatus(second, 429);
  // The limit answered first: none of the 5 feed routes (their guards) ran for it.
  expect(guardRuns.count).toBe(runs);
  stop.abort();
  await first;
  await waitFor(() => held.size === 0);
});
