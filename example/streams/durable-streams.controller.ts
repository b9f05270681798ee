import { All, Controller, Inject, Param, UseGuards } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { DurableStream, PollContext } from '../../src';
import { channelOf } from '../messages/message-input';
import { Message } from '../messages/message.entity';
import { TaskOwnerGuard } from '../tasks/task-owner.guard';
import { Task } from '../tasks/task.entity';

/**
 * The channel and task feeds as read-only Durable Streams (docs/durable-streams.md), for any
 * Durable Streams client: State Protocol messages keyed by row id. Behind the API key like every
 * route; a task only for its owner. `@All`: writes get 405.
 */
@Controller('v1/stream')
export class DurableStreamsController {
  constructor(@Inject(DataSource) private readonly db: DataSource) {}

  @All('channels/:channel')
  @DurableStream({
    feed: 'messages',
    partition: (req) => channelOf(req.params.channel),
    type: 'message',
  })
  channel(@PollContext() poll: PollContext, @Param('channel') channel: string) {
    const messages = this.db.getRepository(Message);
    return poll.since === null
      ? messages.find({ where: { channel }, order: { id: 'ASC' } })
      : messages.findBy({ channel, id: In(poll.changedIds) });
  }

  @All('tasks/:id')
  @UseGuards(TaskOwnerGuard)
  @DurableStream({ feed: 'tasks', partition: 'id', type: 'task' })
  task(@Param('id') id: string) {
    // Each task is its own feed: whether from the start or after a change, its one row.
    return this.db.getRepository(Task).findBy({ id });
  }
}
