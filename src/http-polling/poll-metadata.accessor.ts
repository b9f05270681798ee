import { Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { POLL_ROUTE_METADATA } from './poll.constants';
import type { PollRouteMetadata } from './poll-route-options.interface';

/** The only code that reads polling route metadata. */
@Injectable()
export class PollMetadataAccessor {
  constructor(private readonly reflector: Reflector) {}

  get(target: object): PollRouteMetadata | undefined {
    return this.reflector.get<PollRouteMetadata | undefined>(
      POLL_ROUTE_METADATA,
      target as () => unknown,
    );
  }
}
