import { Injectable } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { readPartition } from './poll-request.parser';
import type { PollRouteOptions } from './poll-route-options.interface';

/** Which full feed a request follows: the route's feed, plus its partition when partitioned. */
@Injectable()
export class FeedNames {
  private readonly partitioned: Map<string, boolean>;

  constructor(@InjectPollingOptions() options: ResolvedOptions) {
    this.partitioned = new Map(options.tables.map((t) => [t.feed, t.partition !== null]));
  }

  /** The full feed name of a request, e.g. `messages:general`. */
  feedOf(route: Pick<PollRouteOptions, 'feed' | 'partition'>, req: PollingRequest): string {
    if (!this.partitioned.get(route.feed)) return route.feed;
    return `${route.feed}:${readPartition(req, route.partition!)}`;
  }
}
