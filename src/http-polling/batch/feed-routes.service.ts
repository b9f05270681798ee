import { Injectable, Logger, RequestMethod, VersioningType, type Type } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import type { VersionValue, VersioningOptions } from '@nestjs/common/interfaces';
import {
  ApplicationConfig,
  type ContextId,
  ExternalContextCreator,
  HttpAdapterHost,
  ModuleRef,
} from '@nestjs/core';
import type { ParamsFactory } from '@nestjs/core/helpers/external-context-creator';
// Nest's own route path and parameter rules, so batch keys are exactly the paths Nest serves.
import type { RoutePathMetadata } from '@nestjs/core/router/interfaces/route-path-metadata.interface';
import { RoutePathFactory } from '@nestjs/core/router/route-path-factory';
import { RouteParamsFactory } from '@nestjs/core/router/route-params-factory';
import { RouterExplorer } from '@nestjs/core/router/router-explorer';
import type { PollingRequest } from '../../polling-request.interface';
import { HttpPlatformHost } from '../platform/http-platform.host';
import { PollRoutesExplorer, type PollRoute } from '../poll-routes.explorer';
import { requestContext } from './request-context';
import { PollRouteTable, type MatchedRoute, type RequestFilter } from './poll-route-table';

/** A feed route's guards, interceptors, pipes, filters and handler, callable in-process. */
export type FeedPipeline = (req: PollingRequest, res: object) => Promise<unknown>;

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
  private readonly logger = new Logger('BatchPoll');
  private table: PollRouteTable | null = null;
  private readonly guarded = new Map<PollRoute, FeedPipeline>();
  private readonly admitted = new Map<PollRoute, FeedPipeline>();

  constructor(
    private readonly explorer: PollRoutesExplorer,
    private readonly moduleRef: ModuleRef,
    private readonly contexts: ExternalContextCreator,
    private readonly adapterHost: HttpAdapterHost,
    private readonly platform: HttpPlatformHost,
  ) {}

  /** The route a GET of `path` reaches; `req` (that GET) picks the version when not in the path. */
  match(path: string, req: PollingRequest): MatchedRoute | null {
    this.table ??= this.build();
    return this.table.match(path, req);
  }

  /**
   * The route's own request pipeline, as Nest runs it for a GET (middleware aside). Without
   * `guards` for a request its guards already admitted: a batch feed that runs again after a
   * wake-up (`authorize` re-checks access then, as for a held poll), so a guard with a side
   * effect, a throttler's count, sees each batch request once. A route whose controller is
   * request-scoped (a request-scoped dependency, guard, interceptor or pipe makes it so, an
   * app-wide one too) gets, like Nest's router gives it, its own controller and enhancers per
   * request, made for that feed's request.
   */
  pipeline(route: PollRoute, guards: boolean): FeedPipeline {
    if (!route.wrapper.isDependencyTreeStatic()) {
      return async (req, res) => {
        const contextId = requestContext(
          req,
          this.moduleRef,
          route.wrapper.isDependencyTreeDurable(),
        );
        // The controller's own module resolves it (a class may be a controller of two modules).
        const host = route.wrapper.host!.providers.get(ModuleRef)!.instance as ModuleRef;
        const type = route.wrapper.token as Type<object>;
        const instance = await host.resolve(type, contextId, { strict: true });
        const run = this.create(route, guards, instance, contextId, route.wrapper.id);
        return run(req, res);
      };
    }
    const pipelines = guards ? this.guarded : this.admitted;
    let pipeline = pipelines.get(route);
    if (!pipeline) {
      pipeline = this.create(route, guards, route.controller, undefined, undefined);
      pipelines.set(route, pipeline);
    }
    return pipeline;
  }

  private create(
    route: PollRoute,
    guards: boolean,
    instance: object,
    contextId: ContextId | undefined,
    inquirerId: string | undefined,
  ): FeedPipeline {
    const controller = instance as Record<string, (...args: unknown[]) => unknown>;
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
      contextId,
      inquirerId,
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
      const hostFilter = route.declared.host ? this.hostFilter(route.declared.host) : null;
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
          const versioned = (methodVersion ?? controllerVersion) !== undefined;
          const filters = [
            versioning && versioned
              ? this.versionFilter(paths.getVersion(options), versioning)
              : null,
            hostFilter,
          ].filter((f): f is RequestFilter => f !== null);
          table.add(
            route,
            [
              ...paths.create({ ...options, globalPrefix: prefix }, RequestMethod.GET),
              ...paths.create(options, RequestMethod.GET),
            ],
            filters.length > 0 ? (req) => filters.every((accepts) => accepts(req)) : null,
          );
        }
      }
    }
    return table;
  }

  /**
   * Whether the HTTP adapter would let a request through to a route of this version (the
   * platform asks it). URI versions are in the path: no filter.
   */
  private versionFilter(
    version: VersionValue | undefined,
    versioning: VersioningOptions,
  ): RequestFilter | null {
    if (version === undefined || versioning.type === VersioningType.URI) return null;
    return this.platform.platform.versionFilter(version, versioning);
  }

  /**
   * Nest's router's own host filter (`@Controller({host})`, patterns like `:tenant.example.com`
   * included), asked whether it would let a request through to the route.
   */
  private hostFilter(host: NonNullable<PollRoute['declared']['host']>): RequestFilter {
    type Handler = (req: PollingRequest, res: unknown, next: () => boolean) => boolean;
    const adapter = this.adapterHost.httpAdapter;
    const router = { container: { getHttpAdapterRef: () => adapter }, logger: this.logger };
    // Private in Nest 11's types; the router applies it to every host-bound route.
    const explorer = RouterExplorer.prototype as unknown as { applyHostFilter: unknown };
    const applyHostFilter = explorer.applyHostFilter as (
      this: unknown,
      host: unknown,
      handler: Handler,
    ) => Handler;
    const filter = applyHostFilter.call(router, host, () => true);
    return (req) => filter(req, undefined, () => false) === true;
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
