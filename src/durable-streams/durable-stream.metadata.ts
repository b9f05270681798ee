import type { Type } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import type { PollContext, PollRouteOptions } from '../http-polling/poll-route-options.interface';

/** Route metadata written by @DurableStream. */
export const DURABLE_STREAM_METADATA = 'nestjs-polling:durable-stream';

/** PROTOCOL.md §5.8: servers close SSE connections about every 60 s (CDN collapsing). */
export const DEFAULT_SSE_CLOSE_S = 60;
export const DEFAULT_KEEP_ALIVE_S = 15;

/** One read's content: JSON messages (an `application/json` stream) or bytes (any other type). */
export type StreamBatch = { json: unknown[] } | { bytes: Buffer };

/** What the stream's format is told about one read. */
export interface StreamRead {
  request: PollingRequest;
  poll: PollContext;
  /** The client's offset could not be followed (SSE, mid-stream): the batch restarts its state. */
  reset: boolean;
  /** The offset this read ends at (a `reset` control message names it). */
  nextOffset: string;
}

/**
 * How a route's handler answers become the stream's content. The default is the State Protocol
 * (rows → insert/update/delete change messages); a route may serve its own messages instead.
 */
export interface StreamFormat {
  /** The stream's content type; null: no stream at this URL (404). */
  contentType(req: PollingRequest): string | null | Promise<string | null>;
  batch(answer: unknown, read: StreamRead): StreamBatch;
}

export interface DurableStreamOptions extends Pick<
  PollRouteOptions,
  'feed' | 'partition' | 'authorize'
> {
  /** The State Protocol `type` of every change message. Default: the feed name. */
  type?: string;
  /** The row property whose value is the message `key` (the tracked table's key). Default `id`. */
  key?: string;
  /** Seconds a `live=long-poll` read waits for a change. Default: the module's `http.defaultWaitS`. */
  longPollS?: number;
  /** Seconds after which an SSE response ends (the client reconnects). Default 60. */
  sseCloseS?: number;
  /** Seconds of SSE silence after which a `: keep-alive` comment is written. Default 15. */
  keepAliveS?: number;
  /**
   * Serve other messages than the State Protocol's (advanced; see docs/durable-streams.md): a
   * format, or the class of an injectable one (looked up in the app's modules).
   */
  format?: StreamFormat | Type<StreamFormat>;
}
