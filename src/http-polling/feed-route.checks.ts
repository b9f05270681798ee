import type { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { PollingConfigError, type ResolvedTable } from '../resolve-options';
import type { PollRouteOptions } from './poll-route-options.interface';

export interface DecoratedHandler<T> {
  /** `Controller.method`, for error messages. */
  where: string;
  wrapper: InstanceWrapper;
  instance: object;
  methodName: string;
  handler: object;
  metadata: T;
}

/** Every handler of the app's controllers that carries `key` metadata (start-up checks). */
export function decoratedHandlers<T>(
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  reflector: Reflector,
  key: string,
): DecoratedHandler<T>[] {
  const found: DecoratedHandler<T>[] = [];
  for (const wrapper of discovery.getControllers()) {
    const instance = wrapper.instance as object | undefined;
    if (!instance) continue;
    const prototype = Object.getPrototypeOf(instance);
    for (const methodName of scanner.getAllMethodNames(prototype)) {
      const handler = prototype[methodName];
      const metadata = reflector.get<T | undefined>(key, handler);
      if (metadata === undefined) continue;
      const where = `${wrapper.name}.${methodName}`;
      found.push({ where, wrapper, instance, methodName, handler, metadata });
    }
  }
  return found;
}

/** A route's feed must be a tracked table's, with a partition source when it is partitioned. */
export function checkFeedRoute(
  where: string,
  verb: string,
  route: Pick<PollRouteOptions, 'feed' | 'partition'>,
  tables: readonly ResolvedTable[],
): void {
  const table = tables.find((t) => t.feed === route.feed);
  if (!table) {
    throw new PollingConfigError(
      `${where} ${verb} feed "${route.feed}", which is not a tracked table's feed`,
    );
  }
  if (table.partition !== null && route.partition === undefined) {
    throw new PollingConfigError(
      `${where}: feed "${route.feed}" is partitioned by ${table.partition}; say where the partition comes from`,
    );
  }
}

/** A route's duration setting, when given, is a finite number of seconds within [min, max]. */
export function checkSeconds(
  where: string,
  name: string,
  value: number | undefined,
  min: number,
  max: number,
): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= min && value <= max)) {
    throw new PollingConfigError(`${where}: ${name} must be between ${min} and ${max} seconds`);
  }
}
