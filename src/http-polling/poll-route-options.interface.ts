import type { Request } from 'express';

/** Where the partition value of a partitioned feed comes from. */
export type PartitionSource =
  /** A route parameter name: `{ partition: 'channel' }` for `/channels/:channel/changes`. */
  | string
  /** Any function of the request (a header, the user, ...). */
  | ((request: Request) => unknown);

export interface PollRouteOptions {
  /** A tracked table's feed name (its `feed`, by default the table name). */
  feed: string;
  /** Required when the table is partitioned: which partition this request follows. */
  partition?: PartitionSource;
  /**
   * Re-checks authorization for a held request each time it wakes (guards run once, when the
   * request arrives). Returning false answers 403 instead of running the handler.
   */
  authorize?: (request: Request) => boolean | Promise<boolean>;
  /** Long polls: seconds to hold when the client names none. Default: module setting (25). */
  defaultWaitS?: number;
  /** Long polls: the most a client may ask for. Default: module setting (55). */
  maxWaitS?: number;
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
