import { Controller, Post } from '@nestjs/common';
import { BatchPoll } from '../src';

/** `POST /poll {feeds: {"/channels/general/changes": cursor, "/tasks/7": cursor}, wait}`. */
@Controller()
export class PollController {
  @Post('poll')
  @BatchPoll({ maxFeeds: 20 })
  poll() {
    // The batch interceptor answers; this body never runs.
  }
}
