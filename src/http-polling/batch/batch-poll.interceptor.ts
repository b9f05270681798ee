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
import type { Request, Response } from 'express';
import { from, Observable } from 'rxjs';
import { InjectPollingOptions } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
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
import { asHttp, trackResponse } from '../watch-http';
import { BATCH_POLL_METADATA, type BatchPollOptions } from './batch-poll.decorator';
import type { BatchMember, BatchMemberRequest } from './batch-member';
import { parseBatchRequest } from './batch-request.parser';
import { CapturedResponse, feedRequest, serveAs } from './feed-request';
import { FeedRoutes } from './feed-routes.service';

interface BatchFeed {
  /** The key the client named, e.g. `/api/channels/general/changes`. */
  key: string;
  route: PollRoute;
  /** The full feed name, e.g. `messages:general`. */
  feed: string;
  since: FeedCursor | null;
  /** This feed's GET, for every run of its route during the batch request. */
  request: BatchMemberRequest;
}

/** One feed's part of a batch answer: what its own GET would have answered. */
export interface BatchFeedAnswer {
  status: number;
  cursor?: string;
  body?: unknown;
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
  ) {}

  intercept(context: ExecutionContext, _next: CallHandler): Observable<unknown> {
    const handler = context.getHandler();
    const options = this.reflector.get<BatchPollOptions>(BATCH_POLL_METADATA, handler) ?? {};
    const req = context.switchToHttp().getRequest<Request>();
    const res = context.switchToHttp().getResponse<Response>();
    return from(asHttp(res, () => this.answer(options, req, res)));
  }

  private async answer(options: BatchPollOptions, req: Request, res: Response): Promise<unknown> {
    const track = trackResponse(this.events, res, BATCH_LABEL, 'batch');
    const http = this.options.http;
    const request = parseBatchRequest(req.body, options.maxFeeds ?? DEFAULT_MAX_FEEDS);
    const feeds = request.entries.map(({ key, since }) => this.resolve(key, since, req));
    const waitMs = holdMs(
      { seconds: request.waitS, fromPrefer: false },
      options.defaultWaitS ?? http.defaultWaitS,
      options.maxWaitS ?? http.maxWaitS,
    );
    const holds = waitMs > 0 && feeds.every((f) => f.since !== null);
    const watch = this.watches.open({
      clientKey: this.admission.clientKey(req),
      feeds: feeds.map((f) => f.feed),
      holds,
      label: BATCH_LABEL,
    });
    track.watch = watch;
    res.setHeader('Cache-Control', 'private, no-cache');
    let wake: PollReason = 'immediate';
    const outcome = await watch.until(
      (reason) => this.round(feeds, watch, (wake = reason), res),
      waitMs,
      responseClosed(res),
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

  private resolve(key: string, since: string | null, req: Request): BatchFeed {
    const question = key.indexOf('?');
    const path = question < 0 ? key : key.slice(0, question);
    const query = question < 0 ? '' : key.slice(question + 1);
    // The GET the client would send, for a route chosen by the request (header versioning).
    const get = feedRequest(req, path, query, {});
    const match = this.routes.match(path, get);
    if (!match) throw new BadRequestException(`unknown feed "${key.slice(0, 60)}"`);
    const cursor = since === null ? null : this.checker.decode(since);
    if (since !== null && !cursor) {
      throw new BadRequestException(
        `the cursor for "${key.slice(0, 60)}" was not issued by this feed`,
      );
    }
    // A function partition reads this feed's GET (its params, the client's headers).
    const request = feedRequest(req, path, query, match.params);
    const feed = this.names.feedOf(match.route.metadata, request);
    return { key, route: match.route, feed, since: cursor, request };
  }

  /**
   * One look at every feed. In the first round every feed's route runs (its guards at least), and
   * an error a route answers (401, 403, 400, ...) fails the whole batch before anything is held;
   * after a wake-up only changed feeds run, without their guards (they admitted this request;
   * `authorize` re-checks access), and an error is that feed's answer.
   */
  private async round(
    feeds: BatchFeed[],
    watch: Watch,
    reason: PollReason,
    batchRes: Response,
  ): Promise<Record<string, BatchFeedAnswer> | null> {
    const answers = await Promise.all(feeds.map((f) => this.look(f, watch, reason, batchRes)));
    const changed: Record<string, BatchFeedAnswer> = {};
    feeds.forEach((f, i) => {
      const answer = answers[i];
      if (answer) changed[f.key] = answer;
    });
    return Object.keys(changed).length > 0 ? changed : null;
  }

  private async look(
    f: BatchFeed,
    watch: Watch,
    reason: PollReason,
    batchRes: Response,
  ): Promise<BatchFeedAnswer | null> {
    const first = reason === 'immediate';
    if (f.since === null) {
      const cursor = await watch.head(f.feed);
      return this.runRoute(
        f,
        { mode: 'handle', context: headContext(f.feed, cursor) },
        first,
        batchRes,
      );
    }
    const check = await watch.check(f.feed, f.since);
    if (check.kind !== 'changes') {
      // The route runs (its guards at least) even when the feed did not change: a refusal is
      // the feed's answer (or fails the batch).
      const refused = first ? await this.runRoute(f, { mode: 'probe' }, first, batchRes) : null;
      if (refused) return refused;
      if (check.kind === 'none') return null;
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
    return this.runRoute(f, { mode: 'handle', context }, first, batchRes);
  }

  /** Runs the feed's route in-process; null for a probe that passed. */
  private async runRoute(
    f: BatchFeed,
    member: BatchMember,
    first: boolean,
    batchRes: Response,
  ): Promise<BatchFeedAnswer | null> {
    const captured = new CapturedResponse(batchRes);
    const res = captured as unknown as Response;
    const feedReq = f.request;
    serveAs(feedReq, member, res);
    captured.req = feedReq;
    let answer: BatchFeedAnswer;
    try {
      const authorize = f.route.metadata.authorize;
      // Re-checked on every wake, as for a single held poll.
      if (!first && authorize && !(await authorize(feedReq))) {
        throw new ForbiddenException('no longer allowed to follow this feed');
      }
      // Guards admit each feed once per batch request, in the first round, as for a held poll.
      const value = await this.routes.pipeline(f.route, first)(feedReq, res);
      answer = captured.written
        ? { status: captured.statusCode, body: captured.body }
        : { status: 200, body: value };
    } catch (error) {
      // An exception filter of the route that wrote an answer made it the feed's answer (Nest's
      // external context rethrows after a filter that returns nothing, as HTTP filters do).
      answer = captured.written
        ? { status: captured.statusCode, body: captured.body }
        : this.errorAnswer(error);
    }
    // Cookies the route set (a refreshed session, say) reach the client as on its own GET.
    for (const cookie of captured.cookies) {
      if (!batchRes.headersSent) batchRes.append('Set-Cookie', cookie);
    }
    if (first && answer.status >= 400 && answer.status !== 409) {
      // The route's refusal is the batch's, with when to ask again (a throttler's 429).
      const retryAfter = captured.getHeader('retry-after');
      if (retryAfter !== undefined && !batchRes.headersSent) {
        batchRes.setHeader('Retry-After', String(retryAfter));
      }
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
