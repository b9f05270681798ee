import { Injectable, OnModuleInit } from '@nestjs/common';
import { GUARDS_METADATA, SSE_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { InjectPollingOptions } from '../../polling.tokens';
import { PollingConfigError, type ResolvedOptions } from '../../resolve-options';
import { checkFeedRoute, checkSeconds, decoratedHandlers } from '../feed-route.checks';
import { LiveStreamGate } from './live-stream.gate';
import { LIVE_STREAM_METADATA, type LiveStreamOptions } from './live-stream.metadata';

const MIN_KEEP_ALIVE_S = 0.05;
const MAX_KEEP_ALIVE_S = 3600;

/**
 * Checks every @LiveStream route at start-up: an @Sse() route, its guards before the stream's
 * gate, a tracked feed, a partition for a partitioned feed, a sane keep-alive. A mistake fails
 * the start, not the first stream.
 */
@Injectable()
export class LiveStreamRoutesExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
  ) {}

  onModuleInit(): void {
    const routes = decoratedHandlers<LiveStreamOptions>(
      this.discovery,
      this.scanner,
      this.reflector,
      LIVE_STREAM_METADATA,
    );
    for (const { where, handler, metadata: route } of routes) {
      if (!Reflect.getMetadata(SSE_METADATA, handler)) {
        throw new PollingConfigError(`${where}: @LiveStream needs Nest's @Sse(path) on the route`);
      }
      this.checkGuardOrder(where, handler);
      checkFeedRoute(where, 'streams', route, this.options.tables);
      checkSeconds(where, 'keepAliveS', route.keepAliveS, MIN_KEEP_ALIVE_S, MAX_KEEP_ALIVE_S);
    }
  }

  /**
   * A method's guards run in the order their decorators apply, the one nearest the method first.
   * A guard written above @LiveStream would run after the stream's gate, which admits the client,
   * reads the index and runs `authorize` (without what the guard attaches, `req.user`): refuse it.
   */
  private checkGuardOrder(where: string, handler: object): void {
    const guards = (Reflect.getMetadata(GUARDS_METADATA, handler) ?? []) as unknown[];
    const after = guards.slice(guards.lastIndexOf(LiveStreamGate) + 1);
    if (after.length === 0) return;
    const names = after
      .map((g) => (typeof g === 'function' ? g.name : (g as object).constructor.name))
      .join(', ');
    throw new PollingConfigError(
      `${where}: @UseGuards(${names}) is written above @LiveStream, so it would run after the ` +
        `stream was admitted and authorized; write it below @LiveStream (or on the controller)`,
    );
  }
}
