import {
  CanActivate,
  Controller,
  ExecutionContext,
  ForbiddenException,
  Get,
  Inject,
  Injectable,
  Post,
  Res,
  Scope,
  UseGuards,
  VERSION_NEUTRAL,
} from '@nestjs/common';
import { REQUEST } from '@nestjs/core';
import type { Response } from 'express';
import type { FastifyReply } from 'fastify';
import type { PollingRequest as Request } from '../../src';
import { BatchPoll, LongPoll, PollContext } from '../../src';

/** Who asks, read from the request the provider was made for (a request-scoped provider). */
@Injectable({ scope: Scope.REQUEST })
export class RequestUser {
  constructor(@Inject(REQUEST) private readonly req: Request) {}

  get name(): string | undefined {
    return this.req.headers['x-user'] as string | undefined;
  }
}

/** A controller with a request-scoped dependency: Nest makes one per request. */
@Controller('scoped')
export class ScopedFeedController {
  constructor(private readonly user: RequestUser) {}

  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { user: this.user.name ?? null, ids: poll.changedIds };
  }
}

/** A guard with a request-scoped dependency: lets only `x-tenant` requests through. */
@Injectable({ scope: Scope.REQUEST })
export class TenantGuard implements CanActivate {
  constructor(@Inject(REQUEST) private readonly req: Request) {}

  canActivate(_context: ExecutionContext): boolean {
    if (!this.req.headers['x-tenant']) throw new ForbiddenException('tenant required');
    return true;
  }
}

/** A static controller whose route is guarded by a request-scoped guard. */
@Controller('tenant')
export class TenantFeedController {
  @Get(':run/changes')
  @UseGuards(TenantGuard)
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
  }
}

/**
 * A route that sets a cookie and a header through the platform's response, as apps do: Express's
 * helpers, or Fastify's `reply.header`.
 */
@Controller('passthrough')
export class PassthroughFeedController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(
    @PollContext() poll: PollContext,
    @Res({ passthrough: true }) res: Response | FastifyReply,
  ) {
    if ('cookie' in res) {
      res.cookie('seen', poll.cursor, { httpOnly: true });
      res.append('Vary', 'X-User');
    } else {
      res.header('set-cookie', `seen=${encodeURIComponent(poll.cursor)}; Path=/; HttpOnly`);
      res.header('vary', 'X-User');
    }
    return { ids: poll.changedIds };
  }
}

/** The same feed path served by two API versions (header or media-type versioning). */
@Controller({ path: 'versioned', version: '1' })
export class VersionOneController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { version: 1, ids: poll.changedIds };
  }
}

@Controller({ path: 'versioned', version: '2' })
export class VersionTwoController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { version: 2, ids: poll.changedIds };
  }
}

@Controller({ version: VERSION_NEUTRAL })
export class ScopedBatchController {
  @Post('poll')
  @BatchPoll({ maxFeeds: 5 })
  batch() {
    throw new Error('the batch interceptor answers; this body never runs');
  }
}

/** A controller bound to one host name (an admin site, say): other hosts do not reach it. */
@Controller({ path: 'admin', host: 'admin.localhost' })
export class AdminHostFeedController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { admin: true, ids: poll.changedIds };
  }
}
