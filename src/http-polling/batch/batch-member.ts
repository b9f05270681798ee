import type { PollingRequest } from '../../polling-request.interface';
import type { PollContext } from '../poll-route-options.interface';

/**
 * What the batch poll decided for one feed route it runs in-process. The route's interceptor
 * applies it instead of polling: `probe` runs the route's guards and interceptors without the
 * handler (admission: before anything about the feed is read, a guard that refuses fails the
 * batch); `handle` runs the handler with this PollContext.
 */
export type BatchMember = ({ mode: 'probe' } | { mode: 'handle'; context: PollContext }) & {
  /**
   * Set by the route's interceptor when the request gets that far. A route that answered without
   * it (a guard refused, an exception filter wrote the answer, an interceptor answered) refused
   * the feed, whatever status its answer has.
   */
  reached?: boolean;
};

export const BATCH_MEMBER = Symbol('nestjs-polling:batch-member');

export type BatchMemberRequest = PollingRequest & { [BATCH_MEMBER]?: BatchMember };
