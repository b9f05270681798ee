import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { POLL_CONTEXT_KEY } from './poll.constants';
import type { PollContext as PollContextValue } from './poll-route-options.interface';

/** Hands a @Poll / @LongPoll handler its PollContext: since, cursor, changedIds, reason. */
export const PollContext = createParamDecorator(
  (_data: unknown, context: ExecutionContext): PollContextValue | undefined =>
    context.switchToHttp().getRequest()[POLL_CONTEXT_KEY],
);
/** The same name as a type: `@PollContext() poll: PollContext`. */
export type PollContext = PollContextValue;
