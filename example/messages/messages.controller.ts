import {
  Body,
  Controller,
  Delete,
  ForbiddenException,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Patch,
  Post,
  Query,
  Req,
  Sse,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  CursorPaginator,
  FeedSnapshot,
  LiveStream,
  LongPoll,
  PollContext,
  loadFeedChanges,
} from '../../src';
import { KeyInQuery, type AuthedRequest } from '../auth/api-key.guard';
import { channelOf, idOf, messageBodyOf } from './message-input';
import { Message } from './message.entity';

const pages = new CursorPaginator<Message>({
  name: 'channel-messages',
  sortable: ['createdAt'],
  defaultSort: [{ field: 'createdAt', direction: 'asc' }],
  defaultLimit: 50,
  maxLimit: 200,
  secret: process.env.PAGE_CURSOR_SECRET,
});

/** Any user reads and writes any channel; only a message's author edits or deletes it. */
@Controller()
export class MessagesController {
  constructor(@Inject(DataSource) private readonly db: DataSource) {}

  private get messages() {
    return this.db.getRepository(Message);
  }

  @Get('channels/:channel/messages')
  @FeedSnapshot({ feed: 'messages', partition: (req) => channelOf(req.params.channel) })
  list(@Param('channel') channel: string, @Query() query: Record<string, unknown>) {
    const qb = this.messages.createQueryBuilder('m').where('m.channel = :channel', { channel });
    return pages.paginate(qb, pages.parse(query));
  }

  @Get('channels/:channel/changes')
  @LongPoll({ feed: 'messages', partition: (req) => channelOf(req.params.channel) })
  async changes(@PollContext() poll: PollContext) {
    return { changes: await loadFeedChanges(this.messages, poll.changedIds), cursor: poll.cursor };
  }

  /** The same feed as Server-Sent Events; `?key=` because a browser EventSource sends no headers. */
  @Sse('channels/:channel/stream')
  @KeyInQuery()
  @LiveStream({ feed: 'messages', partition: (req) => channelOf(req.params.channel) })
  async stream(@PollContext() poll: PollContext) {
    return { changes: await loadFeedChanges(this.messages, poll.changedIds), cursor: poll.cursor };
  }

  @Post('channels/:channel/messages')
  @HttpCode(201)
  create(@Param('channel') channel: string, @Body() payload: unknown, @Req() req: AuthedRequest) {
    return this.messages.save(
      this.messages.create({
        channel: channelOf(channel),
        author: req.user.id,
        body: messageBodyOf(payload),
      }),
    );
  }

  @Patch('messages/:id')
  async update(@Param('id') id: string, @Body() payload: unknown, @Req() req: AuthedRequest) {
    const message = await this.ownMessage(id, req);
    message.body = messageBodyOf(payload);
    message.updatedAt = new Date();
    return this.messages.save(message);
  }

  @Delete('messages/:id')
  @HttpCode(204)
  async remove(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    await this.messages.delete({ id: (await this.ownMessage(id, req)).id });
  }

  private async ownMessage(id: string, req: AuthedRequest): Promise<Message> {
    const message = await this.messages.findOneBy({ id: idOf(id) });
    if (!message) throw new NotFoundException(`message ${id} does not exist`);
    if (message.author !== req.user.id)
      throw new ForbiddenException('only the author may change a message');
    return message;
  }
}
