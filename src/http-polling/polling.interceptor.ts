import {
  BadRequestException,
  CallHandler,
  ConflictException,
  ExecutionContext,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import fresh from 'fresh';
import { from, Observable, of, switchMap, tap } from 'rxjs';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import type { PollingRequest } from '../polling-request.interface';
import { ResponseAggregator } from '../aggregation/response-aggregator.service';
import { BATCH_MEMBER, type BatchMemberRequest } from './batch/batch-member';
import { ChangeRate } from './change-rate.service';
import { answerCacheControl, cacheWhenOk, pendingCacheControl } from './cache-control';
import type { FeedCursor } from './feed-cursor';
import { FeedNames } from './feed-names.service';
import { PollAdmission } from './poll-admission.service';
import { PollMetadataAccessor } from './poll-metadata.accessor';
import { holdMs, readSince, readWait } from './poll-request.parser';
import type { PollContext, PollRouteMetadata } from './poll-route-options.interface';
import { POLL_CONTEXT_KEY } from './poll.constants';
import { responseClosed } from './response-closed';
import { FeedChecker } from './watch/feed-checker.service';
import { FeedWatch } from './watch/feed-watch.service';
import { PollingEvents } from './watch/polling-events.service';
import { HttpPlatformHost } from './platform/http-platform.host';
import type { HttpReply } from './platform/http-reply';
import type { FeedCheck } from './watch/feed-checker.service';
import { asHttp, tableFeed, trackResponse, type ResponseTrack } from './watch-http';

type Decision = { kind: 'handle'; context: PollContext } | { kind: 'reply' };
type PollRequest = BatchMemberRequest & { [POLL_CONTEXT_KEY]?: PollContext };

/**
 * The @Poll / @LongPoll transport over the hold core (FeedWatch): reads the cursor, wait and
 * ETag, answers 304 / 204 / 409 itself, and runs the handler for a 200: changes, the head (no
 * since) or a short poll without If-None-Match that found none (then changedIds is empty).
 */
@Injectable()
export class PollingInterceptor implements NestInterceptor {
  constructor(
    private readonly metadata: PollMetadataAccessor,
    private readonly names: FeedNames,
    private readonly checker: FeedChecker,
    private readonly watches: FeedWatch,
    private readonly admission: PollAdmission,
    private readonly rate: ChangeRate,
    private readonly aggregator: ResponseAggregator,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly events: PollingEvents,
    private readonly platform: HttpPlatformHost,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.metadata.get(context.getHandler());
    if (!route || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<PollRequest>();
    const member = req[BATCH_MEMBER];
    if (member) {
      member.reached = true;
      // Run in-process by a batch poll, which already asked the core for this feed.
      if (member.mode === 'probe') return of(undefined);
      return this.run(context, member.context, req, next);
    }
    const res = this.platform.platform.reply(context.switchToHttp().getResponse());
    const feed = this.names.feedOf(route, req);
    const track = trackResponse(
      this.events,
      res.raw,
      tableFeed(feed),
      route.snapshot ? 'snapshot' : 'short',
    );
    return from(asHttp(res, () => this.decide(route, feed, req, res, track))).pipe(
      switchMap((decision) => {
        if (decision.kind === 'reply') return of(undefined);
        const cacheControl = answerCacheControl(route, decision.context);
        const answer = this.run(context, decision.context, req, next);
        // Once the handler has answered, and only on a 200: any error keeps `no-store`.
        return cacheControl ? answer.pipe(tap(() => cacheWhenOk(res.raw, cacheControl))) : answer;
      }),
    );
  }

  private run(
    context: ExecutionContext,
    poll: PollContext,
    req: PollRequest,
    next: CallHandler,
  ): Observable<unknown> {
    req[POLL_CONTEXT_KEY] = poll;
    const key = this.aggregator.enabled ? this.shareKey(context, poll, req) : null;
    return key ? this.aggregator.run(key, () => next.handle()) : next.handle();
  }

  /** Requests with this key would run the handler identically: route, feed, cursors, query. */
  private shareKey(
    context: ExecutionContext,
    poll: PollContext,
    req: PollingRequest,
  ): string | null {
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

  private async decide(
    route: PollRouteMetadata,
    feed: string,
    req: PollingRequest,
    res: HttpReply,
    track: ResponseTrack,
  ): Promise<Decision> {
    if (route.snapshot) {
      res.setHeader('Cache-Control', 'private, no-cache');
      const cursor = await this.checker.head(feed); // before the handler's page query
      res.setHeader('Poll-Cursor', cursor);
      return handle(headContext(feed, cursor));
    }
    // Before anything can fail: a 400, 429 or 503 must not be cached either.
    res.setHeader('Cache-Control', pendingCacheControl(route));
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
    // Admission, then (when held) registration before the first index read.
    const watch = this.watches.open({ clientKey, feeds: [feed], holds, label: tableFeed(feed) });
    track.watch = watch;
    if (holds) track.kind = 'long';
    res.setHeader('Poll-Interval', String(this.rate.hintSeconds(feed)));

    if (since === null) {
      watch.release();
      const cursor = await watch.head(feed);
      setCursor(res, cursor, 'immediate');
      return handle(headContext(feed, cursor));
    }
    if (!holds && req.headers['if-none-match'] !== undefined) {
      // The cheap 304 path: the head (cached between index writes), no Postgres, no handler.
      const head = await watch.head(feed);
      setCursor(res, head, 'immediate');
      if (matchesEtag(req.headers['if-none-match'], `"${head}"`)) {
        res.status(304);
        return { kind: 'reply' };
      }
    }
    let last: FeedCheck | null = null;
    const outcome = await watch.until(
      async (reason) => {
        const check = (last = await watch.check(feed, since));
        if (check.kind === 'refetch') {
          setCursor(res, check.cursor, reason === 'change' ? 'reset' : 'immediate');
          throw mustRefetch(check.cursor, check.reason);
        }
        if (check.kind === 'none') return null;
        setCursor(res, check.cursor, reason);
        return handle({
          feed,
          since: this.checker.encode(since),
          cursor: check.cursor,
          changedIds: check.changedIds,
          complete: check.complete,
          reason,
        });
      },
      waitMs,
      responseClosed(res.raw),
      route.authorize && (() => route.authorize!(req)),
    );
    if (outcome.kind === 'found') return outcome.value;
    if (outcome.kind === 'closed') return { kind: 'reply' };
    if (!holds) {
      // A short poll without changes: the handler answers for no changes.
      setCursor(res, last!.cursor, 'immediate');
      return handle({
        feed,
        since: this.checker.encode(since),
        cursor: last!.cursor,
        changedIds: [],
        complete: true,
        reason: 'immediate',
      });
    }
    setCursor(res, last!.cursor, outcome.wake);
    res.status(204);
    return { kind: 'reply' };
  }

  private readCursor(req: PollingRequest): FeedCursor | null {
    const text = readSince(req);
    if (text === null) return null;
    const cursor = this.checker.decode(text);
    if (!cursor) throw new BadRequestException('since is not a cursor issued by this feed');
    return cursor;
  }
}

/**
 * Express's freshness check (the `fresh` package) on If-None-Match alone. `req.fresh` also honours
 * `Cache-Control: no-cache` in the request, which fetch() adds to every request with a hand-set
 * conditional header: such clients would never get a 304 although they asked for one.
 */
export function matchesEtag(ifNoneMatch: string | undefined, etag: unknown): boolean {
  if (ifNoneMatch === undefined || typeof etag !== 'string') return false;
  // What a poller sends back: its last ETag as is (fresh() would answer the same, slower).
  if (ifNoneMatch === etag) return true;
  return fresh({ 'if-none-match': ifNoneMatch }, { etag });
}

function handle(context: PollContext): Decision {
  return { kind: 'handle', context };
}

/** A request without a cursor starts at the head: no changes, the head as its next cursor. */
export function headContext(feed: string, cursor: string): PollContext {
  return { feed, since: null, cursor, changedIds: [], complete: true, reason: 'immediate' };
}

export function setCursor(res: HttpReply, cursor: string, wake: string): void {
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
