import { ClassSerializerInterceptor, Controller, Get, Sse, UseInterceptors } from '@nestjs/common';
import { Exclude } from 'class-transformer';
import { LiveStream, LongPoll, PollContext } from '../../src';

/** An answer with a field the app never sends (ClassSerializerInterceptor drops it). */
export class FeedView {
  ids: string[];
  cursor: string;
  @Exclude()
  secret = 'never sent';

  constructor(poll: PollContext) {
    this.ids = poll.changedIds;
    this.cursor = poll.cursor;
  }
}

@Controller('views/:run')
export class ViewFeedsController {
  @Get('changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return new FeedView(poll);
  }

  @Sse('stream')
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 0.5 })
  stream(@PollContext() poll: PollContext) {
    return new FeedView(poll);
  }

  /** The serializer inside the stream (above @LiveStream): it runs on every event. */
  @Sse('serialized')
  @UseInterceptors(ClassSerializerInterceptor)
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 0.5 })
  serialized(@PollContext() poll: PollContext) {
    return new FeedView(poll);
  }
}
