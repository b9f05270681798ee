import {
  Controller,
  Get,
  Injectable,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { LongPoll, PollContext, type PollingRequest } from '../../src';
import { batch, feedAppFixture } from './feed-app';
import { AppErrorFilter } from './host-app-configs';
import { ScopedBatchController } from './scoped-feeds';

/*
 * An app-wide exception filter with an error format of its own (`{error: {status, message}}`).
 * A batch that a feed route refuses answers that refusal as the app answers any refusal: in the
 * app's format, with the route's message, exactly as the feed's own GET does.
 */

@Injectable()
class SignedInGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    if (!context.switchToHttp().getRequest<PollingRequest>().headers['x-user']) {
      throw new UnauthorizedException('sign in first');
    }
    return true;
  }
}

@Controller()
class SignedInFeedController {
  @Get('signed-in/:run/changes')
  @UseGuards(SignedInGuard)
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
  }
}

const fixture = feedAppFixture(
  { controllers: [SignedInFeedController, ScopedBatchController] },
  (app) => app.useGlobalFilters(new AppErrorFilter()),
);

it('answers a feed route’s refusal in the app’s error format, with its message, as the GET', async () => {
  const key = '/signed-in/1/changes';
  const get = await fetch(`${fixture.host.url}${key}`);
  const own = { status: get.status, body: (await get.json()) as unknown };
  expect(own).toEqual({ status: 401, body: { error: { status: 401, message: 'sign in first' } } });
  const answer = await batch(fixture.host.url, { [key]: null });
  expect({ status: answer.status, body: JSON.parse(answer.text) as unknown }).toEqual(own);
});
