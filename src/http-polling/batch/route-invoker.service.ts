import { Injectable } from '@nestjs/common';
import { ExternalContextCreator, type ParamsFactory } from '@nestjs/core';
import type { Request, Response } from 'express';
import { isObservable, lastValueFrom } from 'rxjs';
import type { PollRoute } from '../poll-routes.explorer';

// Nest's metadata key for route handler parameters, and its RouteParamtypes values (the enum is
// not exported from @nestjs/common's entry point).
const ROUTE_ARGS_METADATA = '__routeArguments__';
const RouteParamtypes = {
  REQUEST: 0,
  RESPONSE: 1,
  NEXT: 2,
  BODY: 3,
  QUERY: 4,
  PARAM: 5,
  HEADERS: 6,
  IP: 11,
};

type Invoke = (req: Request, res: Response, next: () => void) => Promise<unknown>;

/** Resolves route handler parameters from the per-feed request a batch poll builds. */
const paramsFactory: ParamsFactory = {
  // The external context hands over the handler's arguments as an array: [req, res, next].
  exchangeKeyForValue(
    type: number,
    data: unknown,
    [req, res, next]: [Request, Response, () => void],
  ) {
    const key = typeof data === 'string' ? data : undefined;
    switch (type) {
      case RouteParamtypes.REQUEST:
        return req;
      case RouteParamtypes.RESPONSE:
        return res;
      case RouteParamtypes.NEXT:
        return next;
      case RouteParamtypes.PARAM:
        return key ? req.params[key] : req.params;
      case RouteParamtypes.QUERY:
        return key ? req.query[key] : req.query;
      case RouteParamtypes.HEADERS:
        return key ? req.headers[key.toLowerCase()] : req.headers;
      case RouteParamtypes.IP:
        return req.ip;
      case RouteParamtypes.BODY:
        return undefined; // a feed route is a GET: the batch body is not its body
      default:
        return undefined;
    }
  },
};

/**
 * Runs another route's guards and handler for a batch poll, through Nest's own context creator,
 * so the batch enforces exactly what the single-feed route enforces.
 */
@Injectable()
export class RouteInvoker {
  private readonly guardChecks = new Map<PollRoute, Invoke>();
  private readonly handlers = new Map<PollRoute, Invoke>();

  constructor(private readonly contexts: ExternalContextCreator) {}

  /** Throws what the route's guards throw (401/403); resolves when they allow the request. */
  async checkGuards(route: PollRoute, req: Request, res: Response): Promise<void> {
    let check = this.guardChecks.get(route);
    if (!check) {
      check = this.create(route, guardProbe(this.original(route)), false);
      this.guardChecks.set(route, check);
    }
    await check(req, res, () => undefined);
  }

  /** Runs guards, interceptors and the handler; resolves with the handler's result. */
  async run(route: PollRoute, req: Request, res: Response): Promise<unknown> {
    let handler = this.handlers.get(route);
    if (!handler) {
      handler = this.create(route, this.original(route), true);
      this.handlers.set(route, handler);
    }
    const result = await handler(req, res, () => undefined);
    return isObservable(result) ? lastValueFrom(result, { defaultValue: undefined }) : result;
  }

  private original(route: PollRoute): (...args: unknown[]) => unknown {
    return (route.controller as Record<string, (...args: unknown[]) => unknown>)[route.methodName];
  }

  private create(
    route: PollRoute,
    callback: (...args: unknown[]) => unknown,
    interceptors: boolean,
  ) {
    return this.contexts.create(
      route.controller,
      callback,
      route.methodName,
      ROUTE_ARGS_METADATA,
      paramsFactory,
      undefined,
      undefined,
      { guards: true, interceptors, filters: false },
      'http',
    ) as Invoke;
  }
}

/** A stand-in handler carrying the original's metadata (its guards), which does nothing. */
function guardProbe(original: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  const probe = () => true;
  for (const key of Reflect.getMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, original), probe);
  }
  return probe;
}
