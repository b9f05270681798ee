import { Controller, Get, Post, Sse } from '@nestjs/common';
import { BatchPoll, LiveStream, LongPoll, PollContext } from '../../src';

/** What every feed route of the host apps answers: the changed ids and the next cursor. */
function answer(poll: PollContext) {
  return { ids: poll.changedIds, cursor: poll.cursor };
}

/** Ordinary feed routes, as an app would write them, for every host-app configuration. */
@Controller()
export class HostFeedsController {
  @Get('runs/:run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return answer(poll);
  }

  /** The partition from a header: a feed whose key the route path alone does not give. */
  @Get('mine/changes')
  @LongPoll({ feed: 'items', partition: (req) => req.headers['x-run'] })
  mine(@PollContext() poll: PollContext) {
    return answer(poll);
  }

  @Sse('runs/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 1 })
  stream(@PollContext() poll: PollContext) {
    return answer(poll);
  }

  @Post('poll')
  @BatchPoll({ maxFeeds: 5 })
  batch() {
    throw new Error('the batch interceptor answers; this body never runs');
  }
}
