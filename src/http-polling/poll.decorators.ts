import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { POLL_ROUTE_METADATA } from './poll.constants';
import { pollRouteOpenApi } from './poll-openapi';
import type { PollRouteMetadata, PollRouteOptions } from './poll-route-options.interface';
import { PollingInterceptor } from './polling.interceptor';

function pollRoute(options: PollRouteOptions, hold: boolean, snapshot = false) {
  const metadata: PollRouteMetadata = { ...options, hold, snapshot };
  return applyDecorators(
    SetMetadata(POLL_ROUTE_METADATA, metadata),
    UseInterceptors(PollingInterceptor),
    // since, wait, Prefer, If-None-Match and the answers, when @nestjs/swagger is installed.
    ...(snapshot ? [] : pollRouteOpenApi({ hold, ...options })),
  );
}

/** A short-poll route: answers at once (200 with changes, 304 when the ETag still matches). */
export const Poll = (options: PollRouteOptions) => pollRoute(options, false);

/** A long-poll route: holds the request until the feed changes or the wait elapses (204). */
export const LongPoll = (options: PollRouteOptions) => pollRoute(options, true);

/**
 * A list endpoint of a feed (a snapshot page): the feed head is read *before* the handler's page
 * query and sent as Poll-Cursor, so a client that pages through the snapshot and then follows the
 * feed from that cursor misses nothing. The handler gets a PollContext with `cursor`.
 */
export const FeedSnapshot = (options: Pick<PollRouteOptions, 'feed' | 'partition'>) =>
  pollRoute(options, false, true);
