import type { PollingRequest } from '../polling-request.interface';

/** Where the partition value of a partitioned feed comes from. */
export type PartitionSource =
  /** A route parameter name: `{ partition: 'channel' }` for `/channels/:channel/changes`. */
  | string
  /** Any function of the request (a header, the user, ...). */
  | ((request: PollingRequest) => unknown);

export interface PollRouteOptions {
  /** A tracked table's feed name (its `feed`, by default the table name). */
  feed: string;
  /** Required when the table is partitioned: which partition this request follows. */
  partition?: PartitionSource;
  /**
   * Re-checks authorization for a held request each time it wakes (guards run once, when the
   * request arrives). Returning false answers 403 instead of running the handler.
   */
  authorize?: (request: PollingRequest) => boolean | Promise<boolean>;
  /** Long polls: seconds to hold when the client names none. Default: module setting (25). */
  defaultWaitS?: number;
  /** Long polls: the most a client may ask for. Default: module setting (55). */
  maxWaitS?: number;
  /**
   * `'public'`: the feed is the same for every caller, so a shared cache (a CDN, nginx
   * `proxy_cache`) may keep its answers and collapse identical polls into one. A 200 that
   * carries changes (or the head, without `since`) gets `Cache-Control: public, max-age=…` and an
   * ETag of its next cursor; every other answer (204, 304, 409, errors, a short poll that found
   * nothing) gets `no-store`. Refused at start-up on a route with `authorize` or its own guards:
   * a private answer in a shared cache would reach other callers. Default: not cacheable
   * (`private, no-cache`).
   */
  cache?: 'public';
  /** With `cache: 'public'`: the max-age of a cacheable answer, in seconds. Default 60. */
  cacheMaxAgeS?: number;
}

export interface PollRouteMetadata extends PollRouteOptions {
  /** True for @LongPoll: the request may be held until a change. */
  hold: boolean;
  /** True for @FeedSnapshot: a list endpoint that only reports the feed head (Poll-Cursor). */
  snapshot?: boolean;
}

/** Why the handler is running. */
export type PollReason =
  /** Changes were already there when the request arrived (or there was no `since`). */
  | 'immediate'
  /** The request was held and a change woke it. */
  | 'change';

/** What a @Poll / @LongPoll handler receives through @PollContext(). */
export interface PollContext {
  /** Full feed name, e.g. `messages:general`. */
  feed: string;
  /** The client's cursor, or null when it sent none (then `changedIds` is empty). */
  since: string | null;
  /** The cursor the client should send next (also sent as the Poll-Cursor header). */
  cursor: string;
  /**
   * Resource ids changed after `since`, oldest change first, latest change per id. Strings: the
   * key column's text form (`'42'` for an integer key). Empty for the head (no `since`) and for a
   * short poll that found nothing, where the handler answers for no changes.
   */
  changedIds: string[];
  /** False when more ids changed than one response carries: poll again at once. */
  complete: boolean;
  reason: PollReason;
}
