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
import { PollingMetrics } from '../../metrics/polling-metrics.service';
import { POLLING_RESOLVED_OPTIONS } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import { FeedChecker } from '../feed-checker.service';
import { HeldRequests } from '../held-requests.service';
import { PollAdmission } from '../poll-admission.service';
import { PollRoutesExplorer } from '../poll-routes.explorer';
import { holdMs } from '../poll-request.parser';
import { BATCH_POLL_METADATA, type BatchPollOptions } from './batch-poll.decorator';
import { parseBatchRequest } from './batch-request.parser';
import { InternalDispatch, type DispatchedResponse } from './internal-dispatch.service';
import { PollRouteTable } from './poll-route-table';

interface BatchFeed {
  /** The route path the client names, e.g. `/channels/general/changes`. */
  key: string;
  /** The full feed name, e.g. `messages:general`. */
  feed: string;
  since: string | null;
}

/** One feed's part of a batch answer: what its own GET would have answered. */
export interface BatchFeedAnswer {
  status: number;
  cursor?: string;
  body?: unknown;
}

const DEFAULT_MAX_FEEDS = 50;

/**
 * Holds one request for several feeds and answers with only the feeds that changed. Each feed is
 * asked through its own route (InternalDispatch), with `wait=0` and `If-None-Match` = the client's
 * cursor: an unchanged feed answers 304 without running its handler.
 */
@Injectable()
export class BatchPollInterceptor implements NestInterceptor {
  private table: PollRouteTable | null = null;

  constructor(
    private readonly reflector: Reflector,
    private readonly explorer: PollRoutesExplorer,
    private readonly feeds: FeedChecker,
    private readonly held: HeldRequests,
    private readonly admission: PollAdmission,
    private readonly dispatch: InternalDispatch,
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
    private readonly metrics: PollingMetrics,
  ) {}

  intercept(context: ExecutionContext, _next: CallHandler): Observable<unknown> {
    const handler = context.getHandler();
    const options = this.reflector.get<BatchPollOptions>(BATCH_POLL_METADATA, handler) ?? {};
    const req = context.switchToHttp().getRequest<Request>();
    const res = context.switchToHttp().getResponse<Response>();
    this.metrics.trackBatch(req, res);
    return from(this.answer(options, req, res));
  }

  private async answer(options: BatchPollOptions, req: Request, res: Response): Promise<unknown> {
    const http = this.options.http;
    const request = parseBatchRequest(req.body, options.maxFeeds ?? DEFAULT_MAX_FEEDS);
    const feeds = request.entries.map(({ key, since }) => this.resolve(key, since));
    const waitMs = holdMs(
      { seconds: request.waitS, fromPrefer: false },
      options.defaultWaitS ?? http.defaultWaitS,
      options.maxWaitS ?? http.maxWaitS,
    );
    const clientKey = this.admission.clientKey(req);
    const holds = waitMs > 0 && feeds.every((f) => f.since !== null);
    this.admission.admit(clientKey, holds, res);
    res.setHeader('Cache-Control', 'private, no-cache');

    // Lost-wakeup rule: wait on every feed before the first look.
    const held = holds
      ? this.held.register(
          feeds.map((f) => f.feed),
          clientKey,
        )
      : null;
    if (held) this.metrics.markHeld(res);
    try {
      const deadline = Date.now() + waitMs;
      for (let round = 0; ; round++) {
        const answers = await this.collect(feeds, req, round === 0);
        if (Object.keys(answers).length > 0) {
          res.status(200);
          return { feeds: answers };
        }
        const wake = held ? await held.wait(deadline - Date.now(), res) : 'timeout';
        if (held) this.metrics.wake(res, wake, held.committedAt);
        if (wake === 'closed') return undefined;
        if (wake === 'timeout' || wake === 'shutdown') {
          res.setHeader('Poll-Wake', wake);
          res.status(204);
          return undefined;
        }
      }
    } finally {
      held?.release();
    }
  }

  private resolve(key: string, since: string | null): BatchFeed {
    this.table ??= new PollRouteTable(this.explorer.routes);
    const match = this.table.match(key);
    if (!match) throw new BadRequestException(`unknown feed "${key.slice(0, 60)}"`);
    if (since !== null && !this.feeds.decode(since)) {
      throw new BadRequestException(
        `the cursor for "${key.slice(0, 60)}" was not issued by this feed`,
      );
    }
    const feed = this.feeds.feedOf(match.route.metadata, {
      params: match.params,
    } as unknown as Request);
    return { key, feed, since };
  }

  /**
   * Asks every feed's route. In the first round an error a route answers (401, 403, 400, ...)
   * fails the whole batch before anything is held; after a wake-up it is that feed's answer.
   */
  private async collect(feeds: BatchFeed[], req: Request, firstRound: boolean) {
    const answers: Record<string, BatchFeedAnswer> = {};
    const responses = await Promise.all(feeds.map((f) => this.ask(f, req)));
    feeds.forEach((f, i) => {
      const response = responses[i];
      if (response.status === 304 || response.status === 204) return;
      if (firstRound && response.status >= 400 && response.status !== 409) {
        throw new HttpException(response.body ?? 'feed route refused the request', response.status);
      }
      const cursor = response.headers['poll-cursor'];
      answers[f.key] = {
        status: response.status,
        ...(typeof cursor === 'string' ? { cursor } : {}),
        body: response.body,
      };
    });
    return answers;
  }

  private ask(f: BatchFeed, req: Request): Promise<DispatchedResponse> {
    if (f.since === null) return this.dispatch.get(f.key, {}, req, {});
    return this.dispatch.get(f.key, { since: f.since, wait: '0' }, req, {
      'if-none-match': `"${f.since}"`,
    });
  }
}
