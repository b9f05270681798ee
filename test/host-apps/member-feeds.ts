import {
  Controller,
  createParamDecorator,
  Get,
  Param,
  ParseIntPipe,
  Query,
  Req,
  type ExecutionContext,
} from '@nestjs/common';
import { IsIn, IsOptional, IsString } from 'class-validator';
import type { PollingRequest, PollingRequest as Request } from '../../src';
import { LongPoll, PollContext } from '../../src';

/** Lets a test hold the next runs of the slow route until it says so. */
export const slowRuns = { release: (): void => undefined, started: 0 };

/** A custom parameter decorator, as apps write them: the tenant header. */
export const Tenant = createParamDecorator(
  (_data: unknown, context: ExecutionContext) =>
    context.switchToHttp().getRequest<PollingRequest>().headers['x-tenant'],
);

export class KindQuery {
  @IsOptional()
  @IsIn(['a', 'b'])
  kind?: string;

  /** The feed's own parameters: its GET (and a batch's request for it) carries them. */
  @IsOptional()
  @IsString()
  since?: string;

  @IsOptional()
  @IsString()
  wait?: string;
}

/** Feed routes whose handlers fail or take long, and that use pipes and custom decorators. */
@Controller('members/:run')
export class MemberFeedsController {
  /** Fails on every change (no change: answers). */
  @Get('boom')
  @LongPoll({ feed: 'items', partition: 'run' })
  boom(@PollContext() poll: PollContext) {
    if (poll.changedIds.length > 0) throw new Error('the handler broke');
    return { ids: poll.changedIds };
  }

  /** A rejected promise on every change. */
  @Get('reject')
  @LongPoll({ feed: 'items', partition: 'run' })
  reject(@PollContext() poll: PollContext): Promise<unknown> {
    if (poll.changedIds.length > 0) return Promise.reject(new Error('rejected'));
    return Promise.resolve({ ids: poll.changedIds });
  }

  /** Waits, on a change, until the test releases it. */
  @Get('slow')
  @LongPoll({ feed: 'items', partition: 'run' })
  async slow(@PollContext() poll: PollContext) {
    if (poll.changedIds.length > 0) {
      slowRuns.started++;
      await new Promise<void>((resolve) => (slowRuns.release = resolve));
    }
    return { ids: poll.changedIds };
  }

  /** A parameter pipe, a validated query DTO, a custom decorator and @Req(). */
  @Get('typed')
  @LongPoll({ feed: 'items', partition: 'run' })
  typed(
    @Param('run', ParseIntPipe) run: number,
    @Query() query: KindQuery,
    @Tenant() tenant: string | undefined,
    @Req() req: Request,
    @PollContext() poll: PollContext,
  ) {
    return {
      run,
      kind: query.kind ?? null,
      tenant: tenant ?? null,
      path: req.url.split('?')[0],
      ids: poll.changedIds,
    };
  }
}
