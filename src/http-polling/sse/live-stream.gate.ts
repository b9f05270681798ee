import {
  BadRequestException,
  CanActivate,
  ExecutionContext,
  ForbiddenException,
  Injectable,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import { FeedChecker } from '../feed-checker.service';
import type { FeedCursor } from '../feed-cursor';
import { HeldRequests } from '../held-requests.service';
import { PollAdmission } from '../poll-admission.service';
import { readSince } from '../poll-request.parser';
import {
  LIVE_STREAM_METADATA,
  STREAM_START,
  type LiveStreamOptions,
  type StreamRequest,
} from './live-stream.metadata';

/**
 * Everything a @LiveStream route must decide before the SSE response starts, as a guard: Nest
 * awaits guards before it commits the SSE headers, so a bad cursor (400), a limit (429/503),
 * `authorize` (403) or an unavailable index (503) is still an ordinary JSON error. @LiveStream adds
 * it after the app's own guards, so authentication runs first.
 *
 * It registers the stream as a held request *before* its first index read (lost-wakeup rule) and
 * leaves both for LiveStreamInterceptor.
 */
@Injectable()
export class LiveStreamGate implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly feeds: FeedChecker,
    private readonly held: HeldRequests,
    private readonly admission: PollAdmission,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const route = this.reflector.get<LiveStreamOptions | undefined>(
      LIVE_STREAM_METADATA,
      context.getHandler(),
    );
    if (!route || context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<StreamRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    const feed = this.feeds.feedOf({ ...route, hold: true }, req);
    const since = this.readCursor(req);
    const clientKey = this.admission.clientKey(req);
    this.admission.admit(clientKey, true, res, req);
    if (route.authorize && !(await route.authorize(req))) {
      throw new ForbiddenException('not allowed to follow this feed');
    }
    // Lost-wakeup rule: a change between this line and the read below is latched, not lost.
    const held = this.held.register([feed], clientKey);
    // Released by the stream's end; this covers a request that never gets that far.
    res.once('close', () => held.release());
    try {
      const first =
        since === null
          ? { kind: 'head' as const, cursor: await this.feeds.head(feed, res) }
          : await this.feeds.check(feed, since, res);
      req[STREAM_START] = { feed, held, since, first };
    } catch (error) {
      held.release();
      throw error;
    }
    return true;
  }

  /** `Last-Event-ID` (an EventSource reconnecting) wins over `?since=`; bad → 400. */
  private readCursor(req: StreamRequest): FeedCursor | null {
    const header = req.headers['last-event-id'];
    const fromHeader = typeof header === 'string' && header.length > 0 ? header : null;
    const text = fromHeader ?? readSince(req);
    if (text === null) return null;
    const cursor = this.feeds.decode(text);
    if (!cursor) {
      const source = fromHeader !== null ? 'Last-Event-ID' : 'since';
      throw new BadRequestException(`${source} is not a cursor issued by this feed`);
    }
    return cursor;
  }
}
