import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { lastValueFrom, Observable, throwError } from 'rxjs';
import { ResponseAggregator } from '../../aggregation/response-aggregator.service';
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
import { formatEvent, headersOut } from './sse-writer';

/**
 * The @LiveStream transport (see LiveStream). The stream writes its events to the response
 * itself and hands Nest's @Sse machinery an Observable that emits nothing and completes when the
 * stream ends: interceptors the app installs around every route (a response envelope, a
 * serializer) cannot renumber or rewrap the events. Per batch of changes it runs the route's
 * handler (its pipes and the handler, shared with identical streams through the aggregator).
 */
@Injectable()
export class LiveStreamInterceptor implements NestInterceptor {
  private readonly logger = new Logger('LiveStream');

  constructor(
    private readonly reflector: Reflector,
    private readonly feeds: FeedChecker,
    private readonly aggregator: ResponseAggregator,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.reflector.get<LiveStreamOptions | undefined>(
      LIVE_STREAM_METADATA,
      context.getHandler(),
    );
    if (!route || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<StreamRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    const start = req[STREAM_START];
    if (!start) {
      return throwError(
        () => new Error('@LiveStream: LiveStreamGate did not run for this request'),
      );
    }
    const routeName = `${context.getClass().name}.${context.getHandler().name}`;
    return new Observable<never>((subscriber) => {
      const stream = new FeedStream({
        start,
        feeds: this.feeds,
        req,
        res,
        keepAliveMs: Math.round((route.keepAliveS ?? DEFAULT_KEEP_ALIVE_S) * 1000),
        authorize: route.authorize,
        runHandler: (poll) => this.runHandler(routeName, poll, req, next),
        emit: (event) => {
          if (!res.destroyed && !res.writableEnded) res.write(formatEvent(event));
        },
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

  /** One handler run for one batch of changes, shared between identical streams. */
  private runHandler(
    route: string,
    poll: PollContext,
    req: Request & { [POLL_CONTEXT_KEY]?: PollContext },
    next: CallHandler,
  ): Promise<unknown> {
    req[POLL_CONTEXT_KEY] = poll;
    const key = this.aggregator.enabled
      ? this.aggregator.keyFor(
          ['sse', route, req.path, poll.feed, poll.since, poll.cursor, poll.reason, query(req)],
          req,
        )
      : null;
    const run = key ? this.aggregator.run(key, () => next.handle()) : next.handle();
    return lastValueFrom(run, { defaultValue: null });
  }
}

/** The query without the cursor, sorted: the rest may change what the handler returns. */
function query(req: Request): string {
  const url = req.originalUrl ?? req.url;
  const params = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  params.delete('since');
  params.sort();
  return params.toString();
}
