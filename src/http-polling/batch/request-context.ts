import { ContextIdFactory, type ContextId, type ModuleRef } from '@nestjs/core';
import { REQUEST_CONTEXT_ID } from '@nestjs/core/router/request/request-constants';
import type { PollingRequest } from '../../polling-request.interface';

type ContextRequest = PollingRequest & { [REQUEST_CONTEXT_ID]?: ContextId };

/**
 * The DI context of one feed's request inside a batch, made as Nest's router makes a request's:
 * the app's ContextIdStrategy (durable providers) applies, and REQUEST resolves to that feed's
 * request. A feed request starts without one (see feedRequest), so feeds share request-scoped
 * instances neither with each other nor with the batch request.
 */
export function requestContext(
  req: PollingRequest,
  moduleRef: ModuleRef,
  durable: boolean,
): ContextId {
  const scoped = req as ContextRequest;
  const existing = scoped[REQUEST_CONTEXT_ID];
  if (existing) return existing;
  const contextId = ContextIdFactory.getByRequest(req);
  Object.defineProperty(req, REQUEST_CONTEXT_ID, { value: contextId, enumerable: false });
  const provided: unknown = durable ? contextId.payload : Object.assign(req, contextId.payload);
  moduleRef.registerRequestByContextId(provided, contextId);
  return contextId;
}
