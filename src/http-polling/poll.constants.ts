/** Route metadata written by @Poll / @LongPoll. */
export const POLL_ROUTE_METADATA = 'nestjs-polling:route';
/** Where the interceptor leaves the PollContext for @PollContext(). */
export const POLL_CONTEXT_KEY = Symbol('nestjs-polling:context');
