/**
 * nestjs-polling/client: follows nestjs-polling feeds over HTTP with `fetch`. No Nest, RxJS or
 * Node dependency: it runs in browsers (as an ES module from `dist/client-esm`) and in Node 20+.
 */
export { followFeed, type ChangesInfo, type FollowFeedOptions } from './follow-feed.js';
export { followFeeds, type FeedChangesInfo, type FollowFeedsOptions } from './follow-feeds.js';
export type { SseOptions } from './follow-stream.js';
export { SseParser, type SseEvent, type SseHandlers } from './sse-parser.js';
export { PollHttpError, PollTimeoutError } from './errors.js';
export { backoffDelay, parseRetryAfter } from './backoff.js';
export type { ShortPollOptions } from './short-poll.js';
export type {
  BackoffOptions,
  CommonFollowOptions,
  FetchInit,
  FetchLike,
  FetchResponse,
  HeadersOption,
  RetryInfo,
  StreamBody,
} from './types.js';
