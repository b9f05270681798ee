import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { AuthedRequest } from '../auth/api-key.guard';
import { idOf } from '../messages/message-input';
import { Task } from './task.entity';

/** A task is visible only to its owner: anyone else gets the same 404 as for a missing task. */
@Injectable()
export class TaskOwnerGuard implements CanActivate {
  constructor(@Inject(DataSource) private readonly db: DataSource) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const id = idOf(req.params.id, 'task id');
    const task = await this.db
      .getRepository(Task)
      .findOne({ where: { id }, select: { id: true, owner: true } });
    if (!task || task.owner !== req.user.id)
      throw new NotFoundException(`task ${id} does not exist`);
    return true;
  }
}
