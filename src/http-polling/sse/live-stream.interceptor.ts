import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { lastValueFrom, Observable, throwError } from 'rxjs';
import { ResponseAggregator } from '../../aggregation/response-aggregator.service';
import type { PollingRequest } from '../../polling-request.interface';
import { HttpPlatformHost } from '../platform/http-platform.host';
import type { PollContext } from '../poll-route-options.interface';
import { POLL_CONTEXT_KEY } from '../poll.constants';
import { FeedChecker } from '../watch/feed-checker.service';
import {
  DEFAULT_KEEP_ALIVE_S,
  LIVE_STREAM_METADATA,
  STREAM_START,
  type LiveStreamOptions,
  type StreamRequest,
} from './live-stream.metadata';
import { FeedStream } from './feed-stream';
import { headersOut } from './sse-writer';
import { StreamChannel, StreamGroup } from './stream-group';
import { InjectPollingOptions } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import { PollingEvents } from '../watch/polling-events.service';
import { tableFeed } from '../watch-http';

/**
 * The @LiveStream transport (see LiveStream). The stream writes its events to the response
 * itself and hands Nest's @Sse machinery an Observable that emits nothing and completes when the
 * stream ends: interceptors the app installs around every route (a response envelope, a
 * serializer) cannot renumber or rewrap the events. Once caught up, a stream follows the feed in
 * a StreamGroup with the streams that may share its answers (same route, path, query and
 * aggregator scope) and stand at its cursor: one index read, one handler run (its pipes and the
 * handler) and one encoded event per change for all of them.
 */
@Injectable()
export class LiveStreamInterceptor implements NestInterceptor {
  private readonly logger = new Logger('LiveStream');
  /** Groups of streams that may share answers, by channel key, then by cursor. */
  private readonly channels = new Map<string, StreamChannel>();

  constructor(
    private readonly reflector: Reflector,
    private readonly feeds: FeedChecker,
    private readonly aggregator: ResponseAggregator,
    private readonly platform: HttpPlatformHost,
    private readonly events: PollingEvents,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.reflector.get<LiveStreamOptions | undefined>(
      LIVE_STREAM_METADATA,
      context.getHandler(),
    );
    if (!route || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<StreamRequest>();
    // Events go to Node's response (Fastify's reply.raw), as Nest's @Sse writer's do.
    const res = this.platform.platform.reply(context.switchToHttp().getResponse()).raw;
    const start = req[STREAM_START];
    if (!start) {
      return throwError(
        () => new Error('@LiveStream: LiveStreamGate did not run for this request'),
      );
    }
    const routeName = `${context.getClass().name}.${context.getHandler().name}`;
    const group = {
      feed: start.feed,
      feeds: this.feeds,
      keepAliveMs: Math.round((route.keepAliveS ?? DEFAULT_KEEP_ALIVE_S) * 1000),
      authorize: route.authorize,
      logger: this.logger,
    };
    return new Observable<never>((subscriber) => {
      const stream = new FeedStream({
        start,
        feeds: this.feeds,
        req,
        res,
        runHandler: (poll) => this.runHandler(routeName, poll, req, next),
        maxBufferedBytes: this.options.http.sse.maxBufferedBytes,
        dropped: (bufferedBytes) =>
          this.events.emit({ type: 'dropped', feed: tableFeed(start.feed), bufferedBytes }),
        join: (joining, cursor) =>
          StreamGroup.join(joining, cursor, this.channel(routeName, start.feed, req), group),
        logger: this.logger,
      });
      headersOut(res)
        .then(() => stream.run())
        .then(
          () => subscriber.complete(),
          (error: unknown) => subscriber.error(error),
        );
      return () => stream.stop();
    });
  }

  /**
   * The streams this one may share answers with: the same route, path, query and aggregator
   * scope (DESIGN.md §5: without a scope it shares with nobody). Null: a group of its own.
   */
  private channel(route: string, feed: string, req: PollingRequest): StreamChannel | null {
    if (!this.aggregator.enabled) return null;
    const key = this.aggregator.keyFor(['sse', route, path(req), feed, query(req)], req);
    if (key === null) return null;
    let channel = this.channels.get(key);
    if (!channel) {
      channel = new StreamChannel(() => this.channels.delete(key));
      this.channels.set(key, channel);
    }
    return channel;
  }

  /** One handler run for one batch of changes, shared between identical streams. */
  private runHandler(
    route: string,
    poll: PollContext,
    req: PollingRequest & { [POLL_CONTEXT_KEY]?: PollContext },
    next: CallHandler,
  ): Promise<unknown> {
    req[POLL_CONTEXT_KEY] = poll;
    const key = this.aggregator.enabled
      ? this.aggregator.keyFor(
          ['sse', route, path(req), poll.feed, poll.since, poll.cursor, poll.reason, query(req)],
          req,
        )
      : null;
    const run = key ? this.aggregator.run(key, () => next.handle()) : next.handle();
    return lastValueFrom(run, { defaultValue: null });
  }
}

function path(req: PollingRequest): string {
  return (req.originalUrl ?? req.url).split('?')[0];
}

/** The query without the cursor, sorted: the rest may change what the handler returns. */
function query(req: PollingRequest): string {
  const url = req.originalUrl ?? req.url;
  const params = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  params.delete('since');
  params.sort();
  return params.toString();
}
