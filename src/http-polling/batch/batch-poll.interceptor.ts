import {
  BadRequestException,
  CallHandler,
  ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { from, Observable } from 'rxjs';
import { POLLING_RESOLVED_OPTIONS } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import type { FeedCursor } from '../feed-cursor';
import { FeedChecker } from '../feed-checker.service';
import { HeldRequests } from '../held-requests.service';
import { PollAdmission } from '../poll-admission.service';
import { PollRoutesExplorer } from '../poll-routes.explorer';
import { holdMs } from '../poll-request.parser';
import type { PollContext, PollReason } from '../poll-route-options.interface';
import { POLL_CONTEXT_KEY } from '../poll.constants';
import { BATCH_POLL_METADATA, type BatchPollOptions } from './batch-poll.decorator';
import { parseBatchRequest } from './batch-request.parser';
import { PollRouteTable, type MatchedRoute } from './poll-route-table';
import { RouteInvoker } from './route-invoker.service';

interface BatchFeed {
  key: string;
  feed: string;
  since: FeedCursor | null;
  match: MatchedRoute;
  req: Request;
}

export type BatchFeedAnswer =
  | { status: 200; cursor: string; body: unknown }
  | { status: number; cursor?: string; message: string };

const DEFAULT_MAX_FEEDS = 50;

/** Holds one request for several feeds and answers with only the feeds that changed. */
@Injectable()
export class BatchPollInterceptor implements NestInterceptor {
  private table: PollRouteTable | null = null;

  constructor(
    private readonly reflector: Reflector,
    private readonly explorer: PollRoutesExplorer,
    private readonly feeds: FeedChecker,
    private readonly held: HeldRequests,
    private readonly admission: PollAdmission,
    private readonly invoker: RouteInvoker,
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
  ) {}

  intercept(context: ExecutionContext, _next: CallHandler): Observable<unknown> {
    const options =
      this.reflector.get<BatchPollOptions>(BATCH_POLL_METADATA, context.getHandler()) ?? {};
    const req = context.switchToHttp().getRequest<Request>();
    const res = context.switchToHttp().getResponse<Response>();
    return from(this.answer(options, req, res));
  }

  private async answer(options: BatchPollOptions, req: Request, res: Response): Promise<unknown> {
    const http = this.options.http;
    const request = parseBatchRequest(req.body, options.maxFeeds ?? DEFAULT_MAX_FEEDS);
    const feeds = request.entries.map((entry) => this.resolve(entry.key, entry.since, req));
    const waitMs = holdMs(
      { seconds: request.waitS, fromPrefer: false },
      options.defaultWaitS ?? http.defaultWaitS,
      options.maxWaitS ?? http.maxWaitS,
    );
    const clientKey = this.admission.clientKey(req);
    const holds = waitMs > 0 && feeds.every((f) => f.since !== null);
    this.admission.admit(clientKey, holds, res);
    // Guards run before anything is held (and again with each handler run).
    for (const f of feeds) await this.invoker.checkGuards(f.match.route, f.req, res);
    res.setHeader('Cache-Control', 'private, no-cache');

    const held = holds
      ? this.held.register(
          feeds.map((f) => f.feed),
          clientKey,
        )
      : null;
    try {
      const deadline = Date.now() + waitMs;
      let reason: PollReason = 'immediate';
      for (;;) {
        const answers = await this.collect(feeds, reason, res);
        if (Object.keys(answers).length > 0) {
          res.status(200);
          return { feeds: answers };
        }
        const wake = held ? await held.wait(deadline - Date.now(), res) : 'timeout';
        if (wake === 'closed') return undefined;
        if (wake === 'timeout' || wake === 'shutdown') {
          res.setHeader('Poll-Wake', wake);
          res.status(204);
          return undefined;
        }
        reason = 'change';
      }
    } finally {
      held?.release();
    }
  }

  private resolve(key: string, since: string | null, req: Request): BatchFeed {
    this.table ??= new PollRouteTable(this.explorer.routes);
    const match = this.table.match(key);
    if (!match) throw new BadRequestException(`unknown feed "${key.slice(0, 60)}"`);
    // The request the single-feed route would have seen, for its guards, params and handler.
    // Own data properties: Express 5 defines `query` as a getter on the request prototype.
    const feedReq = Object.create(req, {
      params: { value: match.params },
      query: { value: {} },
      url: { value: key },
      originalUrl: { value: key },
      method: { value: 'GET' },
    }) as Request;
    const cursor = since === null ? null : this.feeds.decode(since);
    if (since !== null && !cursor) {
      throw new BadRequestException(
        `the cursor for "${key.slice(0, 60)}" was not issued by this feed`,
      );
    }
    return {
      key,
      feed: this.feeds.feedOf(match.route.metadata, feedReq),
      since: cursor,
      match,
      req: feedReq,
    };
  }

  /** Answers for every feed with something to say now (changes, a start, or a refetch). */
  private async collect(feeds: BatchFeed[], reason: PollReason, res: Response) {
    const answers: Record<string, BatchFeedAnswer> = {};
    for (const f of feeds) {
      if (f.since === null) {
        const cursor = await this.feeds.head(f.feed, res);
        answers[f.key] = await this.run(f, res, {
          feed: f.feed,
          since: null,
          cursor,
          changedIds: [],
          complete: true,
          reason: 'immediate',
        });
        continue;
      }
      const check = await this.feeds.check(f.feed, f.since, res);
      if (check.kind === 'refetch') {
        answers[f.key] = {
          status: 409,
          cursor: check.cursor,
          message: `the cursor can no longer be followed (${check.reason}); refetch`,
        };
      } else if (check.kind === 'changes') {
        answers[f.key] = await this.run(f, res, {
          feed: f.feed,
          since: this.feeds.encode(f.since),
          cursor: check.cursor,
          changedIds: check.changedIds,
          complete: check.complete,
          reason,
        });
      }
    }
    return answers;
  }

  private async run(f: BatchFeed, res: Response, context: PollContext): Promise<BatchFeedAnswer> {
    const req = Object.create(f.req) as Request & { [POLL_CONTEXT_KEY]?: PollContext };
    req[POLL_CONTEXT_KEY] = context;
    try {
      return {
        status: 200,
        cursor: context.cursor,
        body: await this.invoker.run(f.match.route, req, res),
      };
    } catch (error) {
      if (!(error instanceof HttpException)) throw error;
      return { status: error.getStatus(), message: error.message };
    }
  }
}
