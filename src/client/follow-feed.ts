import { PollHttpError } from './errors.js';
import {
  answerCursor,
  etagOf,
  resolveHeaders,
  send,
  withQuery,
  type PollResponse,
} from './http.js';
import { followStream, type SseOptions } from './follow-stream.js';
import { failureOf, loopSettings } from './loop.js';
import {
  intervalBounds,
  nextInterval,
  parsePollInterval,
  type ShortPollOptions,
} from './short-poll.js';
import { sleep } from './sleep.js';
import { resolveUrl } from './url.js';
import type { CommonFollowOptions } from './types.js';

/** What `onChanges` learns besides the body. */
export interface ChangesInfo {
  /** The cursor after these changes: store it to resume from here later (`since`). */
  cursor: string;
  /** The answer's HTTP status (200). */
  status: number;
  /** How these changes came: over the event stream, or a long or short poll. */
  transport: 'sse' | 'long' | 'short';
}

/** Options of {@link followFeed}. */
export interface FollowFeedOptions<TBody = unknown> extends CommonFollowOptions {
  /**
   * The feed route, e.g. `https://api.example.com/channels/general/changes` (relative in a page);
   * `since` and `wait` are added to its query.
   */
  url: string;
  /**
   * Where to start: a cursor from an earlier answer, or a list endpoint's `Poll-Cursor`. Without
   * it the client first asks without `since`: the route answers 200 with its head cursor (and the
   * body its handler returns for no changes, e.g. `{changes: []}`, or a resource's current
   * state), which goes to `onChanges` like any other 200.
   */
  since?: string | null;
  /**
   * `long` (default): hold a request open (`wait`), ask again at once after every answer.
   * `short`: ask with `wait=0` and `If-None-Match` (unchanged → 304), then wait an interval:
   * the server's `Poll-Interval`, else adapted within `shortPoll`.
   * `sse`: follow `streamUrl` as Server-Sent Events; long polling `url` is the fallback.
   */
  mode?: 'long' | 'short' | 'sse';
  /**
   * `mode: 'sse'`: the feed's @LiveStream route, e.g. `/channels/general/stream`. Followed with
   * fetch (Authorization and other headers work), resumed with `Last-Event-ID`. When SSE does not
   * work on the way to it (a proxy that buffers, a route that is no event stream, repeated
   * failures) the client falls back to long polling `url` from the last cursor.
   */
  streamUrl?: string;
  /** Settings of `mode: 'sse'`; see {@link SseOptions}. */
  sse?: SseOptions;
  /** `mode: 'sse'`: called once when the client gives up on SSE and long-polls `url` instead. */
  onFallback?(reason: Error): void;
  /** Interval bounds of the short mode (and of the pause after an unchanged 200 in long mode). */
  shortPoll?: ShortPollOptions;
  /**
   * Called with each 200 answer (changes, or the head when there was no `since`), in order. The
   * next request waits until the returned promise settles. If it throws, following stops and the
   * returned promise rejects with that error (the cursor stays before these changes).
   */
  onChanges(body: TBody, info: ChangesInfo): void | Promise<void>;
  /**
   * Must refetch (409): the cursor is from another index generation or older than retention, so
   * changes were missed. Reload your state here; following then continues from `cursor` (the
   * feed's new head), or from the cursor you return (e.g. the `Poll-Cursor` of the list endpoint
   * you reloaded from). Without it the client continues from the new head silently.
   */
  onResync?(cursor: string): void | string | Promise<void | string>;
}

/**
 * Follows one feed until `signal` aborts; the promise then resolves. It rejects on an answer
 * that asking again cannot fix (400, 401, 403, 404 and other 4xx but 408/409/429, a 409 without
 * a cursor) with a {@link PollHttpError}, or with the error one of your callbacks threw.
 *
 * Network errors, timeouts and 5xx are retried with exponential backoff and full jitter (reset by
 * any successful answer); 429/503 wait for `Retry-After`. Every retry is reported to `onError`.
 */
export async function followFeed<TBody = unknown>(
  options: FollowFeedOptions<TBody>,
): Promise<void> {
  const loop = loopSettings(options);
  const { signal, retrier } = loop;
  const chosen = options.mode ?? 'long';
  if (chosen !== 'long' && chosen !== 'short' && chosen !== 'sse') {
    throw new TypeError("mode must be 'long', 'short' or 'sse'");
  }
  const feedUrl = resolveUrl('url', options.url, options.baseUrl);
  const streamUrl =
    chosen === 'sse'
      ? resolveUrl("streamUrl (for mode 'sse')", options.streamUrl, options.baseUrl)
      : undefined;
  const bounds = intervalBounds(options.shortPoll);
  let cursor: string | null = options.since ?? null;
  let mode: 'long' | 'short' = chosen === 'short' ? 'short' : 'long';
  if (chosen === 'sse') {
    const streamed = await followStream({ ...options, streamUrl }, loop, cursor);
    if (streamed.kind === 'stopped') return;
    cursor = streamed.cursor;
    mode = 'long';
  }
  let etag: string | null = cursor === null ? null : etagOf(cursor);
  let intervalMs = bounds.minMs;

  while (await loop.ready()) {
    const sent = cursor;
    const headers = await resolveHeaders(options.headers);
    let url = feedUrl;
    let timeoutMs = loop.timeoutMs;
    if (sent !== null) {
      const wait = mode === 'long' ? loop.waitText : '0';
      url = withQuery(url, { since: sent, wait });
      if (mode === 'long') timeoutMs += loop.waitMs;
      else if (etag !== null) headers['If-None-Match'] = etag;
    }

    let res: PollResponse;
    try {
      res = await send(loop.fetchFn, url, { method: 'GET', headers }, signal, timeoutMs);
    } catch (error) {
      if (signal.aborted || !(await retrier.wait(error, null))) break;
      continue;
    }
    res = loop.select(res);
    const status = res.status;

    if (status === 409) {
      const head = answerCursor(res);
      if (head === null) throw new PollHttpError(409, res.body, 'answered 409 without a cursor');
      retrier.reset();
      const chosen = options.onResync ? await options.onResync(head) : undefined;
      cursor = typeof chosen === 'string' && chosen.length > 0 ? chosen : head;
      etag = cursor === head ? (res.headers.get('etag') ?? etagOf(head)) : etagOf(cursor);
      continue;
    }

    if (status >= 200 && status < 300 && status !== 204) {
      const next = answerCursor(res);
      if (next === null) {
        const error = new PollHttpError(status, res.body, `answered ${status} without a cursor`);
        if (!(await retrier.wait(error, null))) break;
        continue;
      }
      retrier.reset();
      await options.onChanges(res.body as TBody, { cursor: next, status, transport: mode });
      cursor = next;
      etag = res.headers.get('etag') ?? etagOf(next);
      const moved = next !== sent;
      // Long polls ask again at once; an unchanged 200 means the route did not hold (e.g. a
      // @Poll route): pace it like a short poll instead of spinning.
      if (mode === 'long' && moved) continue;
      intervalMs = nextInterval(intervalMs, { moved, hintMs: hint(res) }, bounds);
      if ((await sleep(intervalMs, signal, loop.wake)) === 'aborted') break;
      continue;
    }

    if (status === 204 || status === 304) {
      retrier.reset();
      const next = answerCursor(res);
      if (next !== null && next !== cursor) {
        cursor = next;
        etag = res.headers.get('etag') ?? etagOf(next);
      }
      if (mode === 'long' && status === 204) continue;
      intervalMs = nextInterval(intervalMs, { moved: false, hintMs: hint(res) }, bounds);
      if ((await sleep(intervalMs, signal, loop.wake)) === 'aborted') break;
      continue;
    }

    const failure = failureOf(res);
    if (!failure.retry) throw failure.error;
    if (!(await retrier.wait(failure.error, failure.retryAfterMs))) break;
  }
}

const hint = (res: PollResponse) => parsePollInterval(res.headers.get('poll-interval'));
