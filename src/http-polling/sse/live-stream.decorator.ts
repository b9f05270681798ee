import { applyDecorators, SetMetadata, UseGuards, UseInterceptors } from '@nestjs/common';
import { LiveStreamGate } from './live-stream.gate';
import { LiveStreamInterceptor } from './live-stream.interceptor';
import { LIVE_STREAM_METADATA, type LiveStreamOptions } from './live-stream.metadata';

/**
 * Serves a feed as Server-Sent Events on an `@Sse()` route (the route must also carry Nest's
 * `@Sse(path)`; the start fails otherwise). The handler is written like a @LongPoll handler: it
 * receives a PollContext via @PollContext() and returns the body for those changes. Each body is
 * sent as one event: `id:` = the cursor after those changes, `data:` = the body as JSON.
 *
 * - Resumes from the `Last-Event-ID` header (what an EventSource sends when it reconnects), else
 *   `?since=`; without either the first event is the head (the handler's answer for no changes).
 * - A cursor of another index generation or past retention gets `event: reset` with
 *   `data: {"cursor": <head>}` and `id: <head>`; the stream then continues from the head, and the
 *   client refetches its state.
 * - Counts as a held request (`http.maxHeld`, `http.maxHeldPerClient`): 429/503 with Retry-After,
 *   a bad cursor or partition 400, `authorize` false 403 — all as JSON, before the stream starts.
 *   Guards run before it, as on any route; a method's `@UseGuards` goes below `@LiveStream` (above
 *   it, the start fails: Nest would run it after the stream's own guard).
 * - Released when the client disconnects; ended (after a `: shutdown` comment) on shutdown.
 * - Streams of one route, path, query and aggregator scope share each event: one handler run and
 *   one encoding per change for all of them. A client that stops reading is dropped once its
 *   connection holds more than `http.sse.maxBufferedBytes` unsent; it resumes from its
 *   `Last-Event-ID`.
 *
 * What of the app runs: guards (global, controller, route) before the stream opens, and exception
 * filters for the JSON refusals before it starts. The stream writes its events to the response
 * itself: interceptors the app installs for every route (an envelope, a serializer) wrap an
 * Observable that emits nothing and completes when the stream ends, so they can neither renumber
 * nor rewrap events; `id:` is always the cursor and `data:` the handler's answer. Pipes and the
 * handler run once per batch of changes, with interceptors declared on the route after
 * @LiveStream around each run.
 *
 * ```ts
 * @Sse('channels/:channel/stream')
 * @LiveStream({ feed: 'messages', partition: 'channel' })
 * async stream(@PollContext() poll: PollContext) {
 *   return { changes: await loadFeedChanges(repo, poll.changedIds), cursor: poll.cursor };
 * }
 * ```
 */
export const LiveStream = (options: LiveStreamOptions) =>
  applyDecorators(
    SetMetadata(LIVE_STREAM_METADATA, { ...options }),
    UseGuards(LiveStreamGate),
    UseInterceptors(LiveStreamInterceptor),
  );
