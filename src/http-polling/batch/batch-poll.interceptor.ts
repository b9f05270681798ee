import {
  BadRequestException,
  CallHandler,
  ExecutionContext,
  ForbiddenException,
  HttpException,
  Injectable,
  Logger,
  NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { from, Observable } from 'rxjs';
import { InjectPollingOptions } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import type { PollingRequest } from '../../polling-request.interface';
import { HttpPlatformHost } from '../platform/http-platform.host';
import type { HttpReply } from '../platform/http-reply';
import type { FeedCursor } from '../feed-cursor';
import { FeedNames } from '../feed-names.service';
import { PollAdmission } from '../poll-admission.service';
import type { PollRoute } from '../poll-routes.explorer';
import { holdMs } from '../poll-request.parser';
import type { PollReason } from '../poll-route-options.interface';
import { headContext, mustRefetch } from '../polling.interceptor';
import { responseClosed } from '../response-closed';
import { FeedChecker } from '../watch/feed-checker.service';
import { FeedWatch } from '../watch/feed-watch.service';
import { PollingEvents } from '../watch/polling-events.service';
import type { Watch } from '../watch/watch';
import { WatchRefusedError } from '../watch/watch.errors';
import { asHttp, toHttpError, trackResponse } from '../watch-http';
import { BATCH_POLL_METADATA, type BatchPollOptions } from './batch-poll.decorator';
import type { BatchMember, BatchMemberRequest } from './batch-member';
import { parseBatchRequest } from './batch-request.parser';
import { CapturedResponse, feedRequest, serveAs } from './feed-request';
import { FeedRoutes } from './feed-routes.service';

interface BatchFeed {
  /** The key the client named, e.g. `/api/channels/general/changes`. */
  key: string;
  route: PollRoute;
  /** The client's cursor text, read once the route's guards admitted the request. */
  sinceText: string | null;
  /** The full feed name, e.g. `messages:general` (known once admitted). */
  feed: string;
  since: FeedCursor | null;
  /** This feed's GET, for every run of its route during the batch request. */
  request: BatchMemberRequest;
  /** Answered when admitted (a filter's answer to a refusal, a failure): not watched. */
  answered: BatchFeedAnswer | null;
}

/** One feed's part of a batch answer: what its own GET would have answered. */
export interface BatchFeedAnswer {
  status: number;
  cursor?: string;
  body?: unknown;
}

/** The batch's response: as an HttpReply, and the platform's own (its helpers, for routes). */
interface BatchResponse {
  res: HttpReply;
  native: object;
}

const DEFAULT_MAX_FEEDS = 50;
const BATCH_LABEL = '(batch)';

/**
 * The batch poll transport: one held request (FeedWatch) for several feeds, answered with only
 * the feeds that changed. Each feed is served by its own @Poll/@LongPoll route, run in-process
 * (its guards, interceptors, pipes, filters and handler, with the batch's request as that route's
 * GET): no request goes over the network. A feed that did not change runs no handler.
 */
@Injectable()
export class BatchPollInterceptor implements NestInterceptor {
  private readonly logger = new Logger('BatchPoll');

  constructor(
    private readonly reflector: Reflector,
    private readonly routes: FeedRoutes,
    private readonly names: FeedNames,
    private readonly checker: FeedChecker,
    private readonly watches: FeedWatch,
    private readonly admission: PollAdmission,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly events: PollingEvents,
    private readonly platforms: HttpPlatformHost,
  ) {}

  intercept(context: ExecutionContext, _next: CallHandler): Observable<unknown> {
    const handler = context.getHandler();
    const options = this.reflector.get<BatchPollOptions>(BATCH_POLL_METADATA, handler) ?? {};
    const req = context.switchToHttp().getRequest<PollingRequest>();
    const native = context.switchToHttp().getResponse<object>();
    const res = this.platforms.platform.reply(native);
    return from(asHttp(res, () => this.answer(options, req, { res, native })));
  }

  private async answer(
    options: BatchPollOptions,
    req: PollingRequest,
    batchRes: BatchResponse,
  ): Promise<unknown> {
    const { res } = batchRes;
    const track = trackResponse(this.events, res.raw, BATCH_LABEL, 'batch');
    const http = this.options.http;
    const request = parseBatchRequest(req.body, options.maxFeeds ?? DEFAULT_MAX_FEEDS);
    const feeds = request.entries.map(({ key, since }) => this.resolve(key, since, req));
    const waitMs = holdMs(
      { seconds: request.waitS, fromPrefer: false },
      options.defaultWaitS ?? http.defaultWaitS,
      options.maxWaitS ?? http.maxWaitS,
    );
    const holds = waitMs > 0 && feeds.every((f) => f.sinceText !== null);
    // Admitted (the limits) and registered before any feed route runs: a refused batch costs no
    // guard, and concurrent batches never exceed the held limits. Its feeds follow below.
    const watch = this.watches.open({
      clientKey: this.admission.clientKey(req),
      feeds: [],
      holds,
      label: BATCH_LABEL,
    });
    try {
      // Each route's guards decide before anything about its feed is read: the partition (which
      // may read what a guard attached, `req.user`), the cursor, the index.
      await Promise.all(feeds.map((f) => this.admit(f, batchRes)));
    } catch (error) {
      watch.release();
      throw error;
    }
    // Registered for every admitted feed before its first index read (lost-wakeup rule).
    watch.follow(feeds.filter((f) => f.answered === null).map((f) => f.feed));
    track.watch = watch;
    res.setHeader('Cache-Control', 'private, no-cache');
    let wake: PollReason = 'immediate';
    const outcome = await watch.until(
      (reason) => this.round(feeds, watch, (wake = reason), batchRes),
      waitMs,
      responseClosed(res.raw),
    );
    if (outcome.kind === 'found') {
      // Why the batch answered, as on a single poll: the feeds had changed, or a change woke it.
      res.setHeader('Poll-Wake', wake);
      res.status(200);
      return { feeds: outcome.value };
    }
    if (outcome.kind === 'idle') {
      res.setHeader('Poll-Wake', outcome.wake);
      res.status(204);
    }
    return undefined;
  }

  private resolve(key: string, since: string | null, req: PollingRequest): BatchFeed {
    const question = key.indexOf('?');
    const path = question < 0 ? key : key.slice(0, question);
    const query = question < 0 ? '' : key.slice(question + 1);
    const platform = this.platforms.platform;
    // The GET the client would send, for a route chosen by the request (header versioning).
    const get = feedRequest(req, path, query, {}, platform.feedRequestFields(query));
    const match = this.routes.match(path, get);
    if (!match) throw new BadRequestException(`unknown feed "${key.slice(0, 60)}"`);
    // The GET carries the client's cursor in its URL: so does the feed's request, so what reads
    // the URL (a cache keyed by it, `@Query()`) sees the GET the client would send for it.
    const getQuery = withSince(query, since);
    const request = feedRequest(
      req,
      path,
      getQuery,
      match.params,
      platform.feedRequestFields(getQuery),
    );
    return {
      key,
      route: match.route,
      sinceText: since,
      feed: '',
      since: null,
      request,
      answered: null,
    };
  }

  /**
   * Runs the feed's route with its guards (and interceptors, without the handler), as its GET
   * would before polling: a refusal fails the batch, or is that feed's answer (see runRoute).
   * Admitted, the feed's name is read from its request (a function partition sees what the guards
   * attached) and its cursor checked.
   */
  private async admit(f: BatchFeed, batchRes: BatchResponse): Promise<void> {
    f.answered = await this.runRoute(f, { mode: 'probe' }, true, true, batchRes);
    if (f.answered) return;
    const key = f.key.slice(0, 60);
    try {
      f.feed = this.names.feedOf(f.route.metadata, f.request);
    } catch (error) {
      // A partition function that failed (not a refusal) fails this feed only, as a handler would.
      if (error instanceof HttpException) throw error;
      f.answered = this.errorAnswer(error);
      return;
    }
    if (f.sinceText === null) return;
    f.since = this.checker.decode(f.sinceText);
    if (!f.since) {
      throw new BadRequestException(`the cursor for "${key}" was not issued by this feed`);
    }
  }

  /**
   * One look at every admitted feed: only changed feeds (and those without a cursor) run their
   * route, without its guards (they admitted this request; `authorize` re-checks access after a
   * wake-up). In the first round a refusal (401, 403, 400, ...) fails the whole batch before
   * anything is held; after a wake-up it is that feed's answer. A failure (a handler's 5xx, a
   * feed the index cannot read: 503) is always that feed's answer; only when the index could read
   * no feed at all is the batch itself refused (503 with Retry-After).
   */
  private async round(
    feeds: BatchFeed[],
    watch: Watch,
    reason: PollReason,
    batchRes: BatchResponse,
  ): Promise<Record<string, BatchFeedAnswer> | null> {
    const looks = await Promise.all(
      feeds.map((f) =>
        this.look(f, watch, reason, batchRes).then(
          (answer) => ({ answer, refused: null }),
          (error: unknown) => {
            if (!(error instanceof WatchRefusedError)) throw error;
            return { answer: this.errorAnswer(toHttpError(error, null)), refused: error };
          },
        ),
      ),
    );
    const refused = looks.filter((l) => l.refused !== null);
    if (refused.length === looks.length) throw refused[0].refused;
    const changed: Record<string, BatchFeedAnswer> = {};
    feeds.forEach((f, i) => {
      const answer = looks[i].answer;
      if (answer) changed[f.key] = answer;
    });
    return Object.keys(changed).length > 0 ? changed : null;
  }

  private async look(
    f: BatchFeed,
    watch: Watch,
    reason: PollReason,
    batchRes: BatchResponse,
  ): Promise<BatchFeedAnswer | null> {
    // Answered when admitted: only in the first round (the batch then answers at once).
    if (f.answered) return f.answered;
    const first = reason === 'immediate';
    if (f.since === null) {
      const cursor = await watch.head(f.feed);
      return this.runRoute(
        f,
        { mode: 'handle', context: headContext(f.feed, cursor) },
        first,
        false,
        batchRes,
      );
    }
    const check = await watch.check(f.feed, f.since);
    if (check.kind === 'none') return null;
    if (check.kind === 'refetch') {
      const refetch = mustRefetch(check.cursor, check.reason);
      return { status: 409, cursor: check.cursor, body: refetch.getResponse() };
    }
    const context = {
      feed: f.feed,
      since: this.checker.encode(f.since),
      cursor: check.cursor,
      changedIds: check.changedIds,
      complete: check.complete,
      reason,
    };
    return this.runRoute(f, { mode: 'handle', context }, first, false, batchRes);
  }

  /**
   * Runs the feed's route in-process (with its guards only when admitting); null for a probe that
   * passed. `first`: a refusal (4xx) fails the whole batch, before anything was held.
   */
  private async runRoute(
    f: BatchFeed,
    member: BatchMember,
    first: boolean,
    guards: boolean,
    batch: BatchResponse,
  ): Promise<BatchFeedAnswer | null> {
    const batchRes = batch.res;
    const captured = new CapturedResponse(batch.native);
    const res = captured;
    const feedReq = f.request;
    serveAs(feedReq, member, res);
    captured.req = feedReq;
    let answer: BatchFeedAnswer;
    let refusal: HttpException | null = null;
    try {
      const authorize = f.route.metadata.authorize;
      // Re-checked on every wake, as for a single held poll.
      if (!first && authorize && !(await authorize(feedReq))) {
        throw new ForbiddenException('no longer allowed to follow this feed');
      }
      // Guards admit each feed once per batch request, as for a held poll.
      const value = await this.routes.pipeline(f.route, guards)(feedReq, res);
      answer = captured.written
        ? { status: captured.statusCode, body: captured.body }
        : { status: 200, body: value };
    } catch (error) {
      if (error instanceof HttpException) refusal = error;
      // An exception filter of the route that wrote an answer made it the feed's answer (Nest's
      // external context rethrows after a filter that returns nothing, as HTTP filters do).
      answer = captured.written
        ? { status: captured.statusCode, body: captured.body }
        : this.errorAnswer(error);
    }
    // Cookies the route set (a refreshed session, say) reach the client as on its own GET.
    for (const cookie of captured.cookies) {
      if (!batchRes.headersSent) batchRes.appendHeader('Set-Cookie', cookie);
    }
    if (first && answer.status >= 400 && answer.status < 500 && answer.status !== 409) {
      // The route's refusal is the batch's, with when to ask again (a throttler's 429). A failure
      // (5xx) is that feed's own answer: the other feeds are still served.
      const retryAfter = captured.getHeader('retry-after');
      if (retryAfter !== undefined && !batchRes.headersSent) {
        batchRes.setHeader('Retry-After', String(retryAfter));
      }
      // The route's own exception, so the batch's filters answer it as the app answers any
      // refusal (an app-wide error format would otherwise get an answer it already formatted).
      if (refusal?.getStatus() === answer.status) throw refusal;
      throw new HttpException(answer.body ?? 'feed route refused the request', answer.status);
    }
    // Refused before the poll (a filter may have made it a 200): answered now, with no cursor,
    // as the feed's own GET would be; a probe is not held on a feed it may not read.
    if (!member.reached || answer.status >= 400) return answer;
    if (member.mode === 'probe') return null;
    return { status: answer.status, cursor: member.context.cursor, body: answer.body };
  }

  private errorAnswer(error: unknown): BatchFeedAnswer {
    if (error instanceof HttpException) {
      const body = error.getResponse();
      return {
        status: error.getStatus(),
        body: typeof body === 'string' ? { statusCode: error.getStatus(), message: body } : body,
      };
    }
    this.logger.error(error);
    return { status: 500, body: { statusCode: 500, message: 'Internal server error' } };
  }
}

/** The key's query with the client's cursor as `since` (unless the key names one itself). */
function withSince(query: string, since: string | null): string {
  if (since === null || new URLSearchParams(query).has('since')) return query;
  const param = `since=${encodeURIComponent(since)}`;
  return query ? `${query}&${param}` : param;
}
