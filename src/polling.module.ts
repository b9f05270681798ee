import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ChangeBus } from './change-bus/change-bus.service';
import { PlainBusChannel } from './change-bus/plain-bus-channel';
import { RedisBusRelay } from './change-bus/redis-bus-relay';
import { ShardedBusChannel } from './change-bus/sharded-bus-channel';
import { changeLogIdentity } from './change-capture/change-log-identity';
import { ChangeReader } from './change-capture/change-reader.service';
import { indexKeys, type IndexKeys } from './change-capture/index-keys';
import { CHANGE_INDEX } from './change-index/change-index.interface';
import { MemoryChangeIndex } from './change-index/memory-change-index';
import { RedisChangeIndex } from './change-index/redis-change-index';
import { connectRedis, isCluster, type RedisHandle } from './change-index/redis-connection';
import { ChangeRate } from './http-polling/change-rate.service';
import { feedCursorProvider } from './http-polling/feed-cursor.provider';
import { FeedChecker } from './http-polling/watch/feed-checker.service';
import { FeedWatch } from './http-polling/watch/feed-watch.service';
import { PollingEvents } from './http-polling/watch/polling-events.service';
import { FeedNames } from './http-polling/feed-names.service';
import { HeldRequests } from './http-polling/held-requests.service';
import { PollAdmission } from './http-polling/poll-admission.service';
import { PollMetadataAccessor } from './http-polling/poll-metadata.accessor';
import { PollRoutesExplorer } from './http-polling/poll-routes.explorer';
import { ShutdownConnections } from './http-polling/shutdown-connections.service';
import { HttpPlatformHost } from './http-polling/platform/http-platform.host';
import { PollingInterceptor } from './http-polling/polling.interceptor';
import { BatchPollInterceptor } from './http-polling/batch/batch-poll.interceptor';
import { FeedRoutes } from './http-polling/batch/feed-routes.service';
import { ResponseAggregator } from './aggregation/response-aggregator.service';
import { LiveStreamGate } from './http-polling/sse/live-stream.gate';
import { LiveStreamInterceptor } from './http-polling/sse/live-stream.interceptor';
import { LiveStreamRoutesExplorer } from './http-polling/sse/live-stream-routes.explorer';
import { DurableStreamInterceptor } from './durable-streams/durable-stream.interceptor';
import { DurableStreamRoutesExplorer } from './durable-streams/durable-stream-routes.explorer';
import { PollingHealthIndicator } from './health/polling-health.indicator';
import { createMetricsController } from './metrics/metrics.controller';
import { PollingMetrics } from './metrics/polling-metrics.service';
import { PollingConnections } from './polling-connections';
import {
  ConfigurablePollingModule,
  POLLING_MODULE_OPTIONS,
  POLLING_ASYNC_OPTIONS_TYPE,
  POLLING_OPTIONS_TYPE,
} from './polling.module-definition';
import {
  POLLING_INDEX_KEYS,
  POLLING_METRICS_ROUTE,
  POLLING_REDIS,
  POLLING_RESOLVED_OPTIONS,
} from './polling.tokens';
import { resolveMetrics, resolveOptions, type ResolvedOptions } from './resolve-options';

@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: POLLING_RESOLVED_OPTIONS,
      useFactory: resolveOptions,
      inject: [POLLING_MODULE_OPTIONS],
    },
    {
      provide: POLLING_REDIS,
      useFactory: (options: ResolvedOptions) => connectRedis(options.redis),
      inject: [POLLING_RESOLVED_OPTIONS],
    },
    {
      provide: POLLING_INDEX_KEYS,
      // A shared index is named after its change log, so change logs sharing a Redis and a
      // keyPrefix never share an index.
      useFactory: async (options: ResolvedOptions, redis: RedisHandle | null) =>
        indexKeys(
          options.keyPrefix,
          options.schema,
          redis ? await changeLogIdentity(options) : null,
          redis ? isCluster(redis.client) : false,
        ),
      inject: [POLLING_RESOLVED_OPTIONS, POLLING_REDIS],
    },
    {
      provide: CHANGE_INDEX,
      useFactory: (keys: IndexKeys, redis: RedisHandle | null) =>
        redis ? new RedisChangeIndex(redis.client, keys.prefix) : new MemoryChangeIndex(),
      inject: [POLLING_INDEX_KEYS, POLLING_REDIS],
    },
    ChangeBus,
    {
      provide: RedisBusRelay,
      useFactory: async (keys: IndexKeys, redis: RedisHandle | null, bus: ChangeBus) => {
        if (!redis) return null;
        const channel = isCluster(redis.client)
          ? new ShardedBusChannel(redis.client, keys.busChannel)
          : new PlainBusChannel(redis.client, keys.busChannel);
        const relay = new RedisBusRelay(channel, bus);
        await relay.start();
        return relay;
      },
      inject: [POLLING_INDEX_KEYS, POLLING_REDIS, ChangeBus],
    },
    ChangeReader,
    PollingConnections,
    feedCursorProvider,
    PollingEvents,
    FeedChecker,
    FeedNames,
    HeldRequests,
    ShutdownConnections,
    HttpPlatformHost,
    PollAdmission,
    FeedWatch,
    ChangeRate,
    PollMetadataAccessor,
    PollRoutesExplorer,
    PollingInterceptor,
    FeedRoutes,
    BatchPollInterceptor,
    ResponseAggregator,
    PollingMetrics,
    PollingHealthIndicator,
    LiveStreamGate,
    LiveStreamInterceptor,
    LiveStreamRoutesExplorer,
    DurableStreamInterceptor,
    DurableStreamRoutesExplorer,
  ],
  exports: [
    ChangeReader,
    ChangeBus,
    CHANGE_INDEX,
    POLLING_RESOLVED_OPTIONS,
    HeldRequests,
    PollAdmission,
    ChangeRate,
    PollMetadataAccessor,
    PollingInterceptor,
    feedCursorProvider,
    FeedChecker,
    FeedNames,
    FeedWatch,
    PollingEvents,
    PollRoutesExplorer,
    FeedRoutes,
    BatchPollInterceptor,
    ResponseAggregator,
    PollingMetrics,
    PollingHealthIndicator,
    LiveStreamGate,
    LiveStreamInterceptor,
    HttpPlatformHost,
    DurableStreamInterceptor,
  ],
})
export class PollingModule extends ConfigurablePollingModule {
  /** As generated, plus the metrics route when `metrics.enabled` (and `metrics.path` not false). */
  static forRoot(options: typeof POLLING_OPTIONS_TYPE): DynamicModule {
    const definition = super.forRoot(options);
    const metrics = resolveMetrics(options);
    const mounted = metrics.enabled && metrics.path !== false ? metrics.path : null;
    const providers = [
      ...(definition.providers ?? []),
      { provide: POLLING_METRICS_ROUTE, useValue: mounted },
    ];
    if (mounted === null) return { ...definition, providers };
    return {
      ...definition,
      providers,
      controllers: [...(definition.controllers ?? []), createMetricsController(mounted)],
    };
  }

  /**
   * As generated. Its options arrive after Nest has fixed the module's routes, so it mounts no
   * metrics route: PollingMetrics says so at start-up if `metrics.path` asks for one.
   */
  static forRootAsync(options: typeof POLLING_ASYNC_OPTIONS_TYPE): DynamicModule {
    const definition = super.forRootAsync(options);
    const providers = [
      ...(definition.providers ?? []),
      { provide: POLLING_METRICS_ROUTE, useValue: null },
    ];
    return { ...definition, providers };
  }
}
