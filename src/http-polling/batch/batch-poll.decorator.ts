import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { batchPollOpenApi } from '../poll-openapi';
import { BatchPollInterceptor } from './batch-poll.interceptor';

export const BATCH_POLL_METADATA = 'nestjs-polling:batch';

export interface BatchPollOptions {
  /** Most feeds one batch may name (400 beyond). Default 50. */
  maxFeeds?: number;
  /** Seconds to hold when the body names no wait. Default: the module's defaultWaitS. */
  defaultWaitS?: number;
  /** Longest hold, in seconds. Default: the module's maxWaitS. */
  maxWaitS?: number;
}

/**
 * Turns a POST route into the batch poll: `{feeds: {"/channels/general/changes": cursor}, wait}`
 * is held until any named feed changes. Each feed is served by its own @Poll/@LongPoll route,
 * with that route's guards and handler. The decorated method's own body never runs.
 */
export const BatchPoll = (options: BatchPollOptions = {}) =>
  applyDecorators(
    SetMetadata(BATCH_POLL_METADATA, options),
    UseInterceptors(BatchPollInterceptor),
    ...batchPollOpenApi(),
  );
