import { httpError, isRetryableStatus, PollHttpError } from './errors.js';
import { bodyCursor, resolveHeaders, send, type PollResponse } from './http.js';
import { failureOf, loopSettings } from './loop.js';
import type { CommonFollowOptions } from './types.js';
import { resolveUrl } from './url.js';

/** What the per-feed `onChanges` learns besides the body. */
export interface FeedChangesInfo {
  /** The feed's cursor after these changes. */
  cursor: string;
  /** The feed's own status in the batch answer (200). */
  status: number;
}

/** Options of {@link followFeeds}. */
export interface FollowFeedsOptions<TBody = unknown> extends CommonFollowOptions {
  /** The app's `@BatchPoll()` route, e.g. `https://api.example.com/poll`. */
  url: string;
  /**
   * The feeds, named by the path a client would GET (`/channels/general/changes`), each with the
   * cursor to start from, or null to start at its head. The server limits how many (`maxFeeds`).
   */
  feeds: Record<string, string | null>;
  /**
   * Called for each feed the answer lists with status 200 (changes, or the head of a feed that
   * started with null), in the order of the answer. The next request waits until it settles. If
   * it throws, following stops and the promise rejects with that error.
   */
  onChanges(feed: string, body: TBody, info: FeedChangesInfo): void | Promise<void>;
  /**
   * A feed must refetch (its own 409): reload that feed's state; it continues from `cursor`, or
   * from the cursor you return.
   */
  onResync?(feed: string, cursor: string): void | string | Promise<void | string>;
}

interface FeedAnswer {
  status: number;
  cursor?: unknown;
  body?: unknown;
}

/**
 * Follows several feeds with one held request (`POST url {feeds, wait}`) until `signal` aborts.
 * Keeps each feed's cursor; a batch answer lists only the feeds that changed. Errors, retries and
 * rejection work as in {@link followFeed}; a feed that answers a retryable error inside a batch
 * answer keeps its cursor and the next batch waits for the backoff.
 */
export async function followFeeds<TBody = unknown>(
  options: FollowFeedsOptions<TBody>,
): Promise<void> {
  const loop = loopSettings(options);
  const { signal, retrier } = loop;
  const url = resolveUrl('url', options.url, options.baseUrl);
  const cursors = new Map<string, string | null>(Object.entries(options.feeds ?? {}));
  if (cursors.size === 0) throw new TypeError('feeds must name at least one feed');
  for (const [feed, cursor] of cursors) {
    if (cursor !== null && typeof cursor !== 'string') {
      throw new TypeError(`the cursor of feed ${feed} must be a string or null`);
    }
  }

  while (await loop.ready()) {
    const sent = Object.fromEntries(cursors);
    const holds = Object.values(sent).every((c) => c !== null);
    const headers = await resolveHeaders(options.headers);
    headers['Content-Type'] = 'application/json';
    const body = JSON.stringify({ feeds: sent, wait: Number(loop.waitText) });
    const timeoutMs = loop.timeoutMs + (holds ? loop.waitMs : 0);

    let res: PollResponse;
    try {
      res = await send(loop.fetchFn, url, { method: 'POST', headers, body }, signal, timeoutMs);
    } catch (error) {
      if (signal.aborted || !(await retrier.wait(error, null))) break;
      continue;
    }
    res = loop.select(res);

    if (res.status === 204) {
      retrier.reset();
      continue;
    }
    if (res.status < 200 || res.status >= 300) {
      const failure = failureOf(res);
      if (!failure.retry) throw failure.error;
      if (!(await retrier.wait(failure.error, failure.retryAfterMs))) break;
      continue;
    }
    const answers = feedAnswers(res.body);
    if (answers === null) {
      const error = new PollHttpError(res.status, res.body, 'answered without a feeds object');
      if (!(await retrier.wait(error, null))) break;
      continue;
    }

    let feedFailure: PollHttpError | null = null;
    for (const [feed, answer] of answers) {
      if (!cursors.has(feed)) continue;
      const read = (answer.status >= 200 && answer.status < 300) || answer.status === 409;
      if (read && options.select && answer.body !== null && typeof answer.body === 'object') {
        answer.body = options.select(answer.body);
      }
      const cursor = typeof answer.cursor === 'string' ? answer.cursor : bodyCursor(answer.body);
      if (answer.status === 409) {
        if (cursor === null) {
          throw new PollHttpError(
            409,
            answer.body,
            `feed ${feed} answered 409 without a cursor`,
            feed,
          );
        }
        const chosen = options.onResync ? await options.onResync(feed, cursor) : undefined;
        cursors.set(feed, typeof chosen === 'string' && chosen.length > 0 ? chosen : cursor);
      } else if (answer.status >= 200 && answer.status < 300) {
        if (cursor === null) {
          feedFailure = new PollHttpError(
            answer.status,
            answer.body,
            `feed ${feed} answered without a cursor`,
            feed,
          );
          continue;
        }
        await options.onChanges(feed, answer.body as TBody, { cursor, status: answer.status });
        cursors.set(feed, cursor);
      } else if (isRetryableStatus(answer.status)) {
        feedFailure = httpError(answer.status, answer.body, feed);
      } else {
        throw httpError(answer.status, answer.body, feed);
      }
    }
    if (feedFailure === null) retrier.reset();
    else if (!(await retrier.wait(feedFailure, null))) break;
  }
}

/** The `feeds` of a batch answer, or null when the body is not one. */
function feedAnswers(body: unknown): [string, FeedAnswer][] | null {
  if (!body || typeof body !== 'object') return null;
  const feeds = (body as { feeds?: unknown }).feeds;
  if (!feeds || typeof feeds !== 'object' || Array.isArray(feeds)) return null;
  const answers: [string, FeedAnswer][] = [];
  for (const [feed, answer] of Object.entries(feeds as Record<string, unknown>)) {
    if (!answer || typeof answer !== 'object') return null;
    if (typeof (answer as FeedAnswer).status !== 'number') return null;
    answers.push([feed, answer as FeedAnswer]);
  }
  return answers;
}
