import {
  BadRequestException,
  CanActivate,
  ExecutionContext,
  ForbiddenException,
  Injectable,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FeedCursor } from '../feed-cursor';
import { FeedNames } from '../feed-names.service';
import { PollAdmission } from '../poll-admission.service';
import { readSince } from '../poll-request.parser';
import { responseClosed } from '../response-closed';
import { FeedChecker } from '../watch/feed-checker.service';
import { FeedWatch } from '../watch/feed-watch.service';
import { asHttp } from '../watch-http';
import { HttpPlatformHost } from '../platform/http-platform.host';
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
    private readonly names: FeedNames,
    private readonly checker: FeedChecker,
    private readonly watches: FeedWatch,
    private readonly admission: PollAdmission,
    private readonly platform: HttpPlatformHost,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const route = this.reflector.get<LiveStreamOptions | undefined>(
      LIVE_STREAM_METADATA,
      context.getHandler(),
    );
    if (!route || context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<StreamRequest>();
    const res = this.platform.platform.reply(context.switchToHttp().getResponse());
    const feed = this.names.feedOf(route, req);
    const since = this.readCursor(req);
    const clientKey = this.admission.clientKey(req);
    const gone = responseClosed(res.raw);
    // The client left while an earlier (slow) guard ran: its 'close' has passed, so nothing would
    // release a slot taken now, and Nest starts no stream for it. Nothing to open.
    if (gone.closed || req.socket?.destroyed) return false;
    return asHttp(res, async () => {
      // Admitted and registered at once (no await between): concurrent opens never exceed the
      // held limits, and a change from here on is latched (lost-wakeup rule).
      const watch = this.watches.open({ clientKey, feeds: [feed], holds: true, label: null });
      // Released by the stream's end; this covers a request that never gets that far.
      gone.onClose(() => watch.release());
      try {
        if (route.authorize && !(await route.authorize(req))) {
          throw new ForbiddenException('not allowed to follow this feed');
        }
        const first =
          since === null
            ? { kind: 'head' as const, cursor: await watch.head(feed) }
            : await watch.check(feed, since);
        req[STREAM_START] = { feed, watch, since, first };
      } catch (error) {
        watch.release();
        throw error;
      }
      return true;
    });
  }

  /** `Last-Event-ID` (an EventSource reconnecting) wins over `?since=`; bad → 400. */
  private readCursor(req: StreamRequest): FeedCursor | null {
    const header = req.headers['last-event-id'];
    const fromHeader = typeof header === 'string' && header.length > 0 ? header : null;
    const text = fromHeader ?? readSince(req);
    if (text === null) return null;
    const cursor = this.checker.decode(text);
    if (!cursor) {
      const source = fromHeader !== null ? 'Last-Event-ID' : 'since';
      throw new BadRequestException(`${source} is not a cursor issued by this feed`);
    }
    return cursor;
  }
}
