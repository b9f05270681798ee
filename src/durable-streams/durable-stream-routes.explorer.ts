import { Injectable, OnModuleInit } from '@nestjs/common';
import { SSE_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { InjectPollingOptions } from '../polling.tokens';
import { PollingConfigError, type ResolvedOptions } from '../resolve-options';
import { checkFeedRoute, checkSeconds, decoratedHandlers } from '../http-polling/feed-route.checks';
import { DURABLE_STREAM_METADATA, type DurableStreamOptions } from './durable-stream.metadata';

/**
 * Checks every @DurableStream route at start-up: a tracked feed, a partition for a partitioned
 * feed, sane durations, not an @Sse() route (the route answers every mode itself). A mistake
 * fails the start, not the first read.
 */
@Injectable()
export class DurableStreamRoutesExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
  ) {}

  onModuleInit(): void {
    const routes = decoratedHandlers<DurableStreamOptions>(
      this.discovery,
      this.scanner,
      this.reflector,
      DURABLE_STREAM_METADATA,
    );
    for (const { where, handler, metadata: route } of routes) {
      if (Reflect.getMetadata(SSE_METADATA, handler)) {
        throw new PollingConfigError(
          `${where}: @DurableStream answers live=sse itself; put it on @All(path) or @Get(path), not @Sse`,
        );
      }
      checkFeedRoute(where, 'streams', route, this.options.tables);
      checkSeconds(where, 'longPollS', route.longPollS, 0, 3600);
      checkSeconds(where, 'sseCloseS', route.sseCloseS, 1, 24 * 3600);
      checkSeconds(where, 'keepAliveS', route.keepAliveS, 0.05, 3600);
    }
  }
}
