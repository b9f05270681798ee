import type { PollingRequest } from '../../polling-request.interface';
import type { FeedCursor } from '../feed-cursor';
import type { FeedCheck } from '../watch/feed-checker.service';
import type { Watch } from '../watch/watch';
import type { PollRouteOptions } from '../poll-route-options.interface';

/** Route metadata written by @LiveStream. */
export const LIVE_STREAM_METADATA = 'nestjs-polling:live-stream';

/** Keep-alive comment interval when the route names none: below common proxy idle timeouts. */
export const DEFAULT_KEEP_ALIVE_S = 15;

export interface LiveStreamOptions extends Pick<PollRouteOptions, 'feed' | 'partition'> {
  /**
   * Re-checks authorization when the stream opens (403 before it starts) and each time a change
   * wakes it (then an `error` event with statusCode 403, and the stream ends).
   */
  authorize?: PollRouteOptions['authorize'];
  /**
   * Seconds of silence after which a `: keep-alive` comment is written, so proxies and load
   * balancers do not close an idle stream. Default 15 (nginx and many load balancers close idle
   * connections after 60 s). Decimals allowed, 0.05 to 3600.
   */
  keepAliveS?: number;
}

/** What LiveStreamGate found out before the stream starts, for LiveStreamInterceptor. */
export interface StreamStart {
  feed: string;
  /** Registered before the first index read (lost-wakeup rule); released when the stream ends. */
  watch: Watch;
  /** The client's cursor (Last-Event-ID or since), or null: start at the head. */
  since: FeedCursor | null;
  /** The first index read: the head when there was no cursor, else what changed after it. */
  first: FeedCheck | { kind: 'head'; cursor: string };
}

/** Where the gate leaves the StreamStart for the interceptor. */
export const STREAM_START = Symbol('nestjs-polling:stream-start');

export type StreamRequest = PollingRequest & { [STREAM_START]?: StreamStart };
