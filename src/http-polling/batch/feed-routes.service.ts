import { Injectable, RequestMethod } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { ApplicationConfig, ExternalContextCreator, ModuleRef } from '@nestjs/core';
import type { ParamsFactory } from '@nestjs/core/helpers/external-context-creator';
// Nest's own route path and parameter rules, so batch keys are exactly the paths Nest serves.
import type { RoutePathMetadata } from '@nestjs/core/router/interfaces/route-path-metadata.interface';
import { RoutePathFactory } from '@nestjs/core/router/route-path-factory';
import { RouteParamsFactory } from '@nestjs/core/router/route-params-factory';
import type { Request, Response } from 'express';
import { PollRoutesExplorer, type PollRoute } from '../poll-routes.explorer';
import { PollRouteTable, type MatchedRoute } from './poll-route-table';

/** A feed route's guards, interceptors, pipes, filters and handler, callable in-process. */
export type FeedPipeline = (req: Request, res: Response) => Promise<unknown>;

/** ExternalContextCreator hands the handler's arguments as an array; Nest's factory wants names. */
const routeParams = new RouteParamsFactory();
const paramsFactory: ParamsFactory = {
  exchangeKeyForValue: (type, data, [req, res, next]) =>
    routeParams.exchangeKeyForValue(type, data as string, { req, res, next }),
};

/**
 * The @Poll/@LongPoll routes a batch poll may name, by the paths clients GET: with the app's
 * global prefix and URI version, and (for clients written before the prefix) without the prefix.
 * Built at the first batch poll, because the app sets its prefix after the modules start.
 */
@Injectable()
export class FeedRoutes {
  private table: PollRouteTable | null = null;
  private readonly guarded = new Map<PollRoute, FeedPipeline>();
  private readonly admitted = new Map<PollRoute, FeedPipeline>();

  constructor(
    private readonly explorer: PollRoutesExplorer,
    private readonly moduleRef: ModuleRef,
    private readonly contexts: ExternalContextCreator,
  ) {}

  match(path: string): MatchedRoute | null {
    this.table ??= this.build();
    return this.table.match(path);
  }

  /**
   * The route's own request pipeline, as Nest runs it for a GET (middleware aside). Without
   * `guards` for a request its guards already admitted: a batch feed that runs again after a
   * wake-up (`authorize` re-checks access then, as for a held poll), so a guard with a side
   * effect, a throttler's count, sees each batch request once.
   */
  pipeline(route: PollRoute, guards: boolean): FeedPipeline {
    const pipelines = guards ? this.guarded : this.admitted;
    let pipeline = pipelines.get(route);
    if (!pipeline) {
      pipeline = this.create(route, guards);
      pipelines.set(route, pipeline);
    }
    return pipeline;
  }

  private create(route: PollRoute, guards: boolean): FeedPipeline {
    const controller = route.controller as Record<string, (...args: unknown[]) => unknown>;
    // The creator finds a host's module among providers; a controller is not one, so name its
    // module (where its guards, interceptors and pipes are resolved).
    const creator = Object.create(this.contexts) as ExternalContextCreator;
    creator.getContextModuleKey = () => route.moduleKey;
    const run = creator.create(
      controller,
      controller[route.methodName],
      route.methodName,
      ROUTE_ARGS_METADATA,
      paramsFactory,
      undefined,
      undefined,
      { guards, interceptors: true, filters: true },
      'http',
    );
    return (req, res) => run(req, res, () => undefined) as Promise<unknown>;
  }

  private build(): PollRouteTable {
    const config = this.applicationConfig();
    const paths = new RoutePathFactory(config ?? new ApplicationConfig());
    const versioning = config?.getVersioning();
    const prefix = config?.getGlobalPrefix() ?? '';
    const table = new PollRouteTable();
    for (const route of this.explorer.routes) {
      // Snapshot (list) routes are pages, not feeds: a batch cannot name them.
      if (route.metadata.snapshot || !route.get) continue;
      const { controllerPaths, methodPaths, modulePath, methodVersion } = route.declared;
      const controllerVersion = versioning
        ? (route.declared.controllerVersion ?? versioning.defaultVersion)
        : undefined;
      for (const ctrlPath of controllerPaths) {
        for (const methodPath of methodPaths) {
          const options = {
            ctrlPath,
            methodPath,
            modulePath,
            controllerVersion,
            methodVersion,
            versioningOptions: versioning,
          } as RoutePathMetadata;
          table.add(route, [
            ...paths.create({ ...options, globalPrefix: prefix }, RequestMethod.GET),
            ...paths.create(options, RequestMethod.GET),
          ]);
        }
      }
    }
    return table;
  }

  /**
   * Nest does not offer its ApplicationConfig (global prefix, versioning) for injection; like
   * @nestjs/swagger, read it from the container behind the module reference.
   */
  private applicationConfig(): ApplicationConfig | undefined {
    const ref = this.moduleRef as unknown as {
      container?: { applicationConfig?: ApplicationConfig };
    };
    return ref.container?.applicationConfig;
  }
}
