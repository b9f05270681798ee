import { applyDecorators, Controller, Get, Post, UseGuards, type Type } from '@nestjs/common';
import { Throttle, ThrottlerGuard } from '@nestjs/throttler';
import { BatchPoll, LongPoll, PollContext } from '../../src';

/** Requests of each feed route per client the throttler allows within FEED_TTL_MS. */
export const FEED_LIMIT = 4;
export const FEED_TTL_MS = 60_000;

function answer(poll: PollContext) {
  return { ids: poll.changedIds, cursor: poll.cursor, reason: poll.reason };
}

/**
 * Three feed routes with a small throttler limit each (one throttler counter per route), as an
 * app limits an endpoint with @nestjs/throttler, and the batch poll. `guardRoutes`: the feed
 * routes carry `@UseGuards(ThrottlerGuard)`; otherwise the app installs it as an APP_GUARD.
 */
export function throttledFeedsController(guardRoutes: boolean): Type<unknown> {
  const Limited = () =>
    applyDecorators(
      ...(guardRoutes ? [UseGuards(ThrottlerGuard)] : []),
      Throttle({ default: { limit: FEED_LIMIT, ttl: FEED_TTL_MS } }),
      LongPoll({ feed: 'items', partition: 'run' }),
    );

  @Controller()
  class ThrottledFeedsController {
    @Get('a/runs/:run/changes')
    @Limited()
    a(@PollContext() poll: PollContext) {
      return answer(poll);
    }

    @Get('b/runs/:run/changes')
    @Limited()
    b(@PollContext() poll: PollContext) {
      return answer(poll);
    }

    @Get('c/runs/:run/changes')
    @Limited()
    c(@PollContext() poll: PollContext) {
      return answer(poll);
    }

    @Post('poll')
    @BatchPoll({ maxFeeds: 5 })
    batch() {
      throw new Error('the batch interceptor answers; this body never runs');
    }
  }
  return ThrottledFeedsController;
}
