import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { DurableStreamInterceptor } from './durable-stream.interceptor';
import { DURABLE_STREAM_METADATA, type DurableStreamOptions } from './durable-stream.metadata';

/**
 * Serves a tracked feed as a read-only Durable Stream (github.com/durable-streams, PROTOCOL.md):
 * `GET ?offset=-1|now|<offset>[&live=long-poll|sse]` and `HEAD`, with `Stream-Next-Offset`,
 * `Stream-Up-To-Date`, `Stream-Cursor`, ETag/304 and the protocol's security headers, so any
 * Durable Streams client (`@durable-streams/client`, `@durable-streams/state`) can follow it.
 *
 * The handler returns rows, like a @LongPoll handler with its PollContext: all of them when
 * `poll.since` is null (a read from the stream's start), else the rows of `poll.changedIds`.
 * They go out as State Protocol change messages: inserts for the start, then an update per
 * changed row and a delete per changed id without a row. Put it on `@All(path)` so writes get
 * 405 (read-only); on `@Get(path)` they get the app's 404. An offset past retention or of
 * another index generation is 410 Gone (SSE: a `reset` control message and the rows again).
 *
 * ```ts
 * @All('stream/channels/:channel')
 * @DurableStream({ feed: 'messages', partition: 'channel' })
 * rows(@PollContext() poll: PollContext, @Param('channel') channel: string) {
 *   return poll.since === null
 *     ? this.messages.findBy({ channel })
 *     : this.messages.findBy({ id: In(poll.changedIds) });
 * }
 * ```
 */
export const DurableStream = (options: DurableStreamOptions) =>
  applyDecorators(
    SetMetadata(DURABLE_STREAM_METADATA, { ...options }),
    UseInterceptors(DurableStreamInterceptor),
  );
