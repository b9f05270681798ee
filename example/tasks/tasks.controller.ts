import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Req,
  UseGuards,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { LongPoll, PollContext } from '../../src';
import type { AuthedRequest } from '../auth/api-key.guard';
import { TaskOwnerGuard } from './task-owner.guard';
import { Task } from './task.entity';

const MAX_INPUT_LENGTH = 1000;

/** Start a job, then long-poll it until its status changes (each task is its own feed). */
@Controller('tasks')
export class TasksController {
  constructor(@Inject(DataSource) private readonly db: DataSource) {}

  @Post()
  @HttpCode(201)
  async create(@Body() payload: unknown, @Req() req: AuthedRequest) {
    const input = (payload as { input?: unknown } | null)?.input;
    if (typeof input !== 'string' || input.length === 0 || input.length > MAX_INPUT_LENGTH) {
      throw new BadRequestException(
        `input must be a string of 1 to ${MAX_INPUT_LENGTH} characters`,
      );
    }
    const tasks = this.db.getRepository(Task);
    const task = await tasks.save(tasks.create({ owner: req.user.id, input }));
    return { id: task.id, status: task.status };
  }

  @Get(':id')
  @UseGuards(TaskOwnerGuard)
  @LongPoll({ feed: 'tasks', partition: 'id' })
  async get(@Param('id') id: string, @PollContext() poll: PollContext) {
    const task = await this.db.getRepository(Task).findOneByOrFail({ id });
    return { task, cursor: poll.cursor };
  }
}
