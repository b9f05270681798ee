import {
  BadRequestException,
  CallHandler,
  ConflictException,
  ExecutionContext,
  ForbiddenException,
  Inject,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import fresh from 'fresh';
import { from, Observable, of, switchMap } from 'rxjs';
import { POLLING_RESOLVED_OPTIONS } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { ResponseAggregator } from '../aggregation/response-aggregator.service';
import { PollingMetrics } from '../metrics/polling-metrics.service';
import { ChangeRate } from './change-rate.service';
import type { FeedCursor } from './feed-cursor';
import { FeedChecker } from './feed-checker.service';
import { HeldRequests, type HeldRequest } from './held-requests.service';
import { PollAdmission } from './poll-admission.service';
import { PollMetadataAccessor } from './poll-metadata.accessor';
import { holdMs, readSince, readWait } from './poll-request.parser';
import type { PollContext, PollReason, PollRouteMetadata } from './poll-route-options.interface';
import { POLL_CONTEXT_KEY } from './poll.constants';

type Decision = { kind: 'handle'; context: PollContext } | { kind: 'reply' };
type PollRequest = Request & { [POLL_CONTEXT_KEY]?: PollContext };

/**
 * Runs the polling protocol around a @Poll / @LongPoll handler (DESIGN.md §3–4): cursor check,
 * ETag/304, holding until a change, 204 on timeout, 409 must-refetch. The handler only runs when
 * there is something to send.
 */
@Injectable()
export class PollingInterceptor implements NestInterceptor {
  constructor(
    private readonly metadata: PollMetadataAccessor,
    private readonly feeds: FeedChecker,
    private readonly held: HeldRequests,
    private readonly admission: PollAdmission,
    private readonly rate: ChangeRate,
    private readonly aggregator: ResponseAggregator,
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
    private readonly metrics: PollingMetrics,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.metadata.get(context.getHandler());
    const req = context.switchToHttp().getRequest<PollRequest>();
    // No metadata, or a batch poll already decided for this handler run: nothing to do here.
    if (!route || context.getType() !== 'http' || req[POLL_CONTEXT_KEY]) return next.handle();
    const res = context.switchToHttp().getResponse<Response>();
    this.metrics.trackPoll(req, res, route.feed, route.snapshot ? 'snapshot' : 'short');
    return from(this.decide(route, req, res)).pipe(
      switchMap((decision) => {
        if (decision.kind === 'reply') return of(undefined);
        req[POLL_CONTEXT_KEY] = decision.context;
        const key = this.aggregator.enabled ? this.shareKey(context, decision.context, req) : null;
        return key ? this.aggregator.run(key, () => next.handle()) : next.handle();
      }),
    );
  }

  /** Requests with this key would run the handler identically: route, feed, cursors, query. */
  private shareKey(context: ExecutionContext, poll: PollContext, req: Request): string | null {
    const url = req.originalUrl ?? req.url;
    const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    query.delete('since');
    query.delete('wait');
    query.sort();
    const route = `${context.getClass().name}.${context.getHandler().name}`;
    return this.aggregator.keyFor(
      [route, url.split('?')[0], poll.feed, poll.since, poll.cursor, poll.reason, query.toString()],
      req,
    );
  }

  private async decide(route: PollRouteMetadata, req: Request, res: Response): Promise<Decision> {
    const feed = this.feeds.feedOf(route, req);
    if (route.snapshot) {
      res.setHeader('Cache-Control', 'private, no-cache');
      const cursor = await this.feeds.head(feed, res); // before the handler's page query
      res.setHeader('Poll-Cursor', cursor);
      return handle({
        feed,
        since: null,
        cursor,
        changedIds: [],
        complete: true,
        reason: 'immediate',
      });
    }
    const since = this.readCursor(req);
    const http = this.options.http;
    const wait = route.hold ? readWait(req) : { seconds: 0, fromPrefer: false };
    const waitMs = holdMs(
      wait,
      route.defaultWaitS ?? http.defaultWaitS,
      route.maxWaitS ?? http.maxWaitS,
    );
    if (wait.fromPrefer) res.setHeader('Preference-Applied', `wait=${waitMs / 1000}`);
    const clientKey = this.admission.clientKey(req);
    const holds = waitMs > 0 && since !== null;
    this.admission.admit(clientKey, holds, res, req);
    res.setHeader('Cache-Control', 'private, no-cache');
    res.setHeader('Poll-Interval', String(this.rate.hintSeconds(feed)));

    if (since === null) {
      const cursor = await this.feeds.head(feed, res);
      setCursor(res, cursor, 'immediate');
      return handle({
        feed,
        since: null,
        cursor,
        changedIds: [],
        complete: true,
        reason: 'immediate',
      });
    }
    if (!holds && req.headers['if-none-match'] !== undefined) {
      // The cheap 304 path: one index read, no Postgres, no handler.
      setCursor(res, await this.feeds.head(feed, res), 'immediate');
      if (matchesEtag(req.headers['if-none-match'], res.getHeader('ETag'))) {
        res.status(304);
        return { kind: 'reply' };
      }
    }
    // Lost-wakeup rule: register as a waiter before looking at the index.
    const held = holds ? this.held.register([feed], clientKey) : null;
    if (held) this.metrics.markHeld(res);
    try {
      return await this.pollFeed(route, feed, since, held, waitMs, req, res);
    } finally {
      held?.release();
    }
  }

  private readCursor(req: Request): FeedCursor | null {
    const text = readSince(req);
    if (text === null) return null;
    const cursor = this.feeds.decode(text);
    if (!cursor) throw new BadRequestException('since is not a cursor issued by this feed');
    return cursor;
  }

  private async pollFeed(
    route: PollRouteMetadata,
    feed: string,
    since: FeedCursor,
    held: HeldRequest | null,
    waitMs: number,
    req: Request,
    res: Response,
  ): Promise<Decision> {
    const deadline = Date.now() + waitMs;
    let reason: PollReason = 'immediate';
    for (;;) {
      const check = await this.feeds.check(feed, since, res);
      if (check.kind === 'refetch') {
        setCursor(res, check.cursor, reason === 'change' ? 'reset' : 'immediate');
        throw mustRefetch(check.cursor, check.reason);
      }
      if (check.kind === 'changes' || held === null) {
        setCursor(res, check.cursor, reason);
        const changes = check.kind === 'changes' ? check : { changedIds: [], complete: true };
        return handle({
          feed,
          since: this.feeds.encode(since),
          cursor: check.cursor,
          changedIds: changes.changedIds,
          complete: changes.complete,
          reason,
        });
      }
      const wake = await held.wait(deadline - Date.now(), res);
      this.metrics.wake(res, wake, held.committedAt);
      if (wake === 'closed') return { kind: 'reply' };
      if (wake === 'timeout' || wake === 'shutdown') {
        setCursor(res, check.cursor, wake);
        res.status(204);
        return { kind: 'reply' };
      }
      reason = 'change'; // a change or a reset: look again (a reset ends in 409 above)
      if (route.authorize && !(await route.authorize(req))) {
        throw new ForbiddenException('no longer allowed to follow this feed');
      }
    }
  }
}

/**
 * Express's freshness check (the `fresh` package) on If-None-Match alone. `req.fresh` also honours
 * `Cache-Control: no-cache` in the request, which fetch() adds to every request with a hand-set
 * conditional header: such clients would never get a 304 although they asked for one.
 */
function matchesEtag(ifNoneMatch: string | undefined, etag: unknown): boolean {
  if (ifNoneMatch === undefined || typeof etag !== 'string') return false;
  return fresh({ 'if-none-match': ifNoneMatch }, { etag });
}

function handle(context: PollContext): Decision {
  return { kind: 'handle', context };
}

export function setCursor(res: Response, cursor: string, wake: string): void {
  res.setHeader('Poll-Cursor', cursor);
  res.setHeader('ETag', `"${cursor}"`);
  res.setHeader('Poll-Wake', wake);
}

/** 409: the cursor cannot be followed any more; the body carries the head to follow from. */
export function mustRefetch(cursor: string, reason: string): ConflictException {
  return new ConflictException({
    statusCode: 409,
    error: 'Conflict',
    message: `the cursor can no longer be followed (${reason}); refetch, then follow from cursor`,
    cursor,
  });
}
