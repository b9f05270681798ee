import { Injectable, OnModuleInit } from '@nestjs/common';
import {
  GUARDS_METADATA,
  HOST_METADATA,
  MODULE_PATH,
  VERSION_METADATA,
} from '@nestjs/common/constants';
import type { VersionValue } from '@nestjs/common/interfaces';
import { DiscoveryService, MetadataScanner, ModulesContainer } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { InjectPollingOptions } from '../polling.tokens';
import { PollingConfigError, type ResolvedOptions } from '../resolve-options';
import { checkFeedRoute, checkSeconds } from './feed-route.checks';
import { PollMetadataAccessor } from './poll-metadata.accessor';
import type { PollRouteMetadata } from './poll-route-options.interface';

export interface PollRoute {
  /**
   * The controller's instance. For a request-scoped controller (or one with a request-scoped
   * dependency or enhancer) it is an empty prototype: each request gets its own from `wrapper`.
   */
  controller: object;
  /** Nest's wrapper of the controller: its scope, its module, its per-request instances. */
  wrapper: InstanceWrapper;
  methodName: string;
  metadata: PollRouteMetadata;
  /** The key of the controller's module in Nest's container (its enhancers live there). */
  moduleKey: string;
  /** True for a GET route (the batch poll can name only those). */
  get: boolean;
  /** Path parts as declared; the global prefix and URI version are added at request time. */
  declared: {
    controllerPaths: string[];
    methodPaths: string[];
    /** RouterModule's path for the controller's module, if any. */
    modulePath?: string;
    controllerVersion?: VersionValue;
    methodVersion?: VersionValue;
    /** `@Controller({host})`: the host names the controller answers for, if bound to some. */
    host?: string | RegExp | (string | RegExp)[];
  };
}

// Nest's own metadata keys for @Controller / @Get paths and the HTTP method.
const PATH_METADATA = 'path';
const METHOD_METADATA = 'method';
const GET = 0; // RequestMethod.GET

function asArray(value: unknown): string[] {
  if (value === undefined) return ['/'];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/**
 * `cache: 'public'` puts one caller's answer in a cache every caller reads: refused where the
 * answer may depend on the caller (a per-route `authorize`, guards on the route or controller)
 * or on something the URL does not carry (a partition function).
 * Global guards (APP_GUARD) are not seen here: a public route must not depend on them.
 */
function assertCacheable(
  where: string,
  metadata: PollRouteMetadata,
  handler: object,
  controller: object,
): void {
  const maxAge = metadata.cacheMaxAgeS;
  if (maxAge !== undefined && !(Number.isInteger(maxAge) && maxAge >= 1 && maxAge <= 86_400)) {
    throw new PollingConfigError(`${where}: cacheMaxAgeS must be an integer from 1 to 86400`);
  }
  if (metadata.cache === undefined) return;
  if (metadata.cache !== 'public') {
    throw new PollingConfigError(`${where}: cache must be 'public' or left out`);
  }
  const guards = [handler, controller].flatMap(
    (target) => (Reflect.getMetadata(GUARDS_METADATA, target) as unknown[] | undefined) ?? [],
  );
  if (metadata.authorize || guards.length > 0) {
    throw new PollingConfigError(
      `${where}: cache 'public' on a route with ${metadata.authorize ? 'authorize' : 'guards'}: ` +
        "a shared cache would hand one caller's answer to others; serve private feeds uncached",
    );
  }
  // A cache keys on the URL: a partition read from elsewhere (a header, the user) is not in it.
  if (typeof metadata.partition === 'function') {
    throw new PollingConfigError(
      `${where}: cache 'public' needs the partition in the URL (a route parameter name), ` +
        'not a function of the request: a shared cache would mix partitions',
    );
  }
}

/**
 * Finds every @Poll / @LongPoll handler at start-up and checks it against the tracked tables, so
 * a typo in a feed name fails the start, not the first request.
 */
@Injectable()
export class PollRoutesExplorer implements OnModuleInit {
  private found: PollRoute[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly accessor: PollMetadataAccessor,
    private readonly modules: ModulesContainer,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
  ) {}

  get routes(): readonly PollRoute[] {
    return this.found;
  }

  onModuleInit(): void {
    const maxWaitS = this.options.http.maxWaitS;
    this.found = [];
    for (const wrapper of this.discovery.getControllers()) {
      const instance = wrapper.instance as object | undefined;
      if (!instance) continue;
      const prototype = Object.getPrototypeOf(instance);
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const metadata = this.accessor.get(prototype[methodName]);
        if (!metadata) continue;
        const where = `${wrapper.name}.${methodName}`;
        checkFeedRoute(where, 'polls', metadata, this.options.tables);
        checkSeconds(where, 'defaultWaitS', metadata.defaultWaitS, 0, 3600);
        checkSeconds(where, 'maxWaitS', metadata.maxWaitS, 0, 3600);
        if ((metadata.defaultWaitS ?? 0) > (metadata.maxWaitS ?? maxWaitS)) {
          throw new PollingConfigError(`${where}: defaultWaitS exceeds maxWaitS`);
        }
        const handler = prototype[methodName];
        assertCacheable(where, metadata, handler, instance.constructor);
        const host = wrapper.host?.metatype;
        const modulePath: string | undefined = host
          ? (Reflect.getMetadata(MODULE_PATH + this.modules.applicationId, host) ??
            Reflect.getMetadata(MODULE_PATH, host))
          : undefined;
        this.found.push({
          controller: instance,
          wrapper,
          methodName,
          metadata,
          moduleKey: wrapper.host?.token ?? '',
          get: Reflect.getMetadata(METHOD_METADATA, handler) === GET,
          declared: {
            controllerPaths: asArray(Reflect.getMetadata(PATH_METADATA, instance.constructor)),
            methodPaths: asArray(Reflect.getMetadata(PATH_METADATA, handler)),
            modulePath,
            controllerVersion: Reflect.getMetadata(VERSION_METADATA, instance.constructor),
            methodVersion: Reflect.getMetadata(VERSION_METADATA, handler),
            host: Reflect.getMetadata(HOST_METADATA, instance.constructor),
          },
        });
      }
    }
  }
}
