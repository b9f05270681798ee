import { Injectable, OnModuleInit } from '@nestjs/common';
import { SSE_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { InjectPollingOptions } from '../../polling.tokens';
import { PollingConfigError, type ResolvedOptions } from '../../resolve-options';
import { LIVE_STREAM_METADATA, type LiveStreamOptions } from './live-stream.metadata';

const MIN_KEEP_ALIVE_S = 0.05;
const MAX_KEEP_ALIVE_S = 3600;

/**
 * Checks every @LiveStream route at start-up: an @Sse() route, a tracked feed, a partition for a
 * partitioned feed, a sane keep-alive. A mistake fails the start, not the first stream.
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
    const tables = new Map(this.options.tables.map((t) => [t.feed, t]));
    for (const wrapper of this.discovery.getControllers()) {
      const instance = wrapper.instance as object | undefined;
      if (!instance) continue;
      const prototype = Object.getPrototypeOf(instance);
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[methodName];
        const route = this.reflector.get<LiveStreamOptions | undefined>(
          LIVE_STREAM_METADATA,
          handler,
        );
        if (!route) continue;
        const where = `${wrapper.name}.${methodName}`;
        if (!Reflect.getMetadata(SSE_METADATA, handler)) {
          throw new PollingConfigError(
            `${where}: @LiveStream needs Nest's @Sse(path) on the route`,
          );
        }
        const table = tables.get(route.feed);
        if (!table) {
          throw new PollingConfigError(
            `${where} streams feed "${route.feed}", which is not a tracked table's feed`,
          );
        }
        if (table.partition !== null && route.partition === undefined) {
          throw new PollingConfigError(
            `${where}: feed "${route.feed}" is partitioned by ${table.partition}; say where the partition comes from`,
          );
        }
        const keepAliveS = route.keepAliveS;
        if (
          keepAliveS !== undefined &&
          !(
            Number.isFinite(keepAliveS) &&
            keepAliveS >= MIN_KEEP_ALIVE_S &&
            keepAliveS <= MAX_KEEP_ALIVE_S
          )
        ) {
          throw new PollingConfigError(
            `${where}: keepAliveS must be between ${MIN_KEEP_ALIVE_S} and ${MAX_KEEP_ALIVE_S} seconds`,
          );
        }
      }
    }
  }
}
