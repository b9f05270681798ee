import type { Request } from 'express';
import type { PollContext } from '../poll-route-options.interface';

/**
 * What the batch poll decided for one feed route it runs in-process. The route's interceptor
 * applies it instead of polling: `probe` runs the route's guards and interceptors without the
 * handler (the feed did not change, but a guard that refuses must still fail the batch);
 * `handle` runs the handler with this PollContext.
 */
export type BatchMember = { mode: 'probe' } | { mode: 'handle'; context: PollContext };

export const BATCH_MEMBER = Symbol('nestjs-polling:batch-member');

export type BatchMemberRequest = Request & { [BATCH_MEMBER]?: BatchMember };
