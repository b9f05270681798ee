import {
  BadRequestException,
  CallHandler,
  ConflictException,
  ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  Logger,
  NestInterceptor,
  ServiceUnavailableException,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { from, Observable, of, switchMap } from 'rxjs';
import { CHANGE_INDEX, type ChangeIndex } from '../change-index/change-index.interface';
import { POLLING_RESOLVED_OPTIONS } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { ChangeRate } from './change-rate.service';
import { FeedCursorCodec, type FeedCursor } from './feed-cursor';
import { HeldRequests, type HeldRequest, type WakeReason } from './held-requests.service';
import { PollAdmission } from './poll-admission.service';
import { PollMetadataAccessor } from './poll-metadata.accessor';
import { holdMs, readPartition, readSince, readWait } from './poll-request.parser';
import type { PollContext, PollReason, PollRouteMetadata } from './poll-route-options.interface';
import { POLL_CONTEXT_KEY } from './poll.constants';

type Decision = { kind: 'handle'; context: PollContext } | { kind: 'reply' };

/**
 * Runs the polling protocol around a @Poll / @LongPoll handler (DESIGN.md §3–4): cursor check,
 * ETag/304, holding until a change, 204 on timeout, 409 must-refetch. The handler only runs when
 * there is something to send.
 */
@Injectable()
export class PollingInterceptor implements NestInterceptor {
  private readonly logger = new Logger('PollingInterceptor');
  private readonly partitioned: Map<string, boolean>;

  constructor(
    private readonly metadata: PollMetadataAccessor,
    @Inject(CHANGE_INDEX) private readonly index: ChangeIndex,
    private readonly held: HeldRequests,
    private readonly admission: PollAdmission,
    private readonly rate: ChangeRate,
    private readonly codec: FeedCursorCodec,
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
  ) {
    this.partitioned = new Map(options.tables.map((t) => [t.feed, t.partition !== null]));
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.metadata.get(context.getHandler());
    if (!route || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<Request & { [POLL_CONTEXT_KEY]?: PollContext }>();
    const res = context.switchToHttp().getResponse<Response>();
    return from(this.decide(route, req, res)).pipe(
      switchMap((decision) => {
        if (decision.kind === 'reply') return of(undefined);
        req[POLL_CONTEXT_KEY] = decision.context;
        return next.handle();
      }),
    );
  }

  /** The full feed name of this request, e.g. `messages:general`. */
  protected feedOf(route: PollRouteMetadata, req: Request): string {
    if (!this.partitioned.get(route.feed)) return route.feed;
    return `${route.feed}:${readPartition(req, route.partition!)}`;
  }

  private async decide(route: PollRouteMetadata, req: Request, res: Response): Promise<Decision> {
    const feed = this.feedOf(route, req);
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
    this.admission.admit(clientKey, holds, res);
    res.setHeader('Cache-Control', 'private, no-cache');
    res.setHeader('Poll-Interval', String(this.rate.hintSeconds(feed)));

    if (since === null) return this.snapshot(feed, res);
    if (
      !holds &&
      req.headers['if-none-match'] !== undefined &&
      (await this.notModified(feed, req, res))
    ) {
      return { kind: 'reply' };
    }
    // Lost-wakeup rule: register as a waiter before looking at the index.
    const held = holds ? this.held.register(feed, clientKey) : null;
    try {
      return await this.pollFeed(feed, since, held, waitMs, req, res);
    } finally {
      held?.release();
    }
  }

  private readCursor(req: Request): FeedCursor | null {
    const text = readSince(req);
    if (text === null) return null;
    const cursor = this.codec.decode(text);
    if (!cursor) throw new BadRequestException('since is not a cursor issued by this feed');
    return cursor;
  }

  /** No cursor yet: the handler runs with the feed's current head and no changes. */
  private async snapshot(feed: string, res: Response): Promise<Decision> {
    const position = await this.call(() => this.index.feedPosition(feed), res);
    if (position.kind === 'unavailable') this.unavailable(res);
    const cursor = this.codec.encode(position);
    this.setCursor(res, cursor, 'immediate');
    return {
      kind: 'handle',
      context: { feed, since: null, cursor, changedIds: [], complete: true, reason: 'immediate' },
    };
  }

  /** The cheap 304 path: one index read, no Postgres, no handler. */
  private async notModified(feed: string, req: Request, res: Response): Promise<boolean> {
    const position = await this.call(() => this.index.feedPosition(feed), res);
    if (position.kind === 'unavailable') return false;
    this.setCursor(res, this.codec.encode(position), 'immediate');
    if (!req.fresh) return false;
    res.status(304);
    return true;
  }

  private async pollFeed(
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
      const answer = await this.call(
        () =>
          this.index.changesSince(
            feed,
            since.generation,
            since.position,
            this.options.http.maxChangesPerResponse,
          ),
        res,
      );
      if (answer.kind === 'unavailable') this.unavailable(res);
      const cursor = this.codec.encode({
        generation: answer.generation,
        position: answer.feedPosition,
      });
      if (answer.kind === 'refetch') {
        this.setCursor(res, cursor, reason === 'change' ? 'reset' : 'immediate');
        throw new ConflictException({
          statusCode: 409,
          error: 'Conflict',
          message: `the cursor can no longer be followed (${answer.reason}); refetch, then follow from cursor`,
          cursor,
        });
      }
      if (answer.changed.length > 0 || held === null) {
        this.setCursor(res, cursor, reason);
        const changedIds = answer.changed.map((c) => c.resourceId);
        return {
          kind: 'handle',
          context: {
            feed,
            since: this.codec.encode(since),
            cursor,
            changedIds,
            complete: answer.complete,
            reason,
          },
        };
      }
      const wake: WakeReason = await held.wait(deadline - Date.now(), res);
      if (wake === 'closed') return { kind: 'reply' };
      if (wake === 'timeout' || wake === 'shutdown') {
        this.setCursor(res, cursor, wake);
        res.status(204);
        return { kind: 'reply' };
      }
      reason = 'change'; // a change or a reset: look again (a reset ends in 409 above)
    }
  }

  private setCursor(res: Response, cursor: string, wake: string): void {
    res.setHeader('Poll-Cursor', cursor);
    res.setHeader('ETag', `"${cursor}"`);
    res.setHeader('Poll-Wake', wake);
  }

  /** Index failures become 503 + Retry-After, never a 500. */
  private async call<T>(read: () => Promise<T>, res: Response): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof HttpException) throw error;
      this.logger.warn(`change index unavailable: ${(error as Error).message}`);
      this.unavailable(res);
    }
  }

  private unavailable(res: Response): never {
    res.setHeader('Retry-After', String(this.options.http.retryAfterS));
    throw new ServiceUnavailableException('the change index is not available; retry later');
  }
}
