import type { VersionValue, VersioningOptions } from '@nestjs/common/interfaces';
import type { PollingRequest } from '../../polling-request.interface';
import type { HttpReply } from './http-reply';

/** The platforms the library runs on: Nest's two official HTTP adapters. */
export type HttpPlatformName = 'express' | 'fastify';

/** Whether a request reaches a route other than by its path (its version, its host). */
export type RequestFilter = (req: PollingRequest) => boolean;

/**
 * What differs between Express and Fastify, for the transports: the response helpers, the query
 * of a batch feed's GET, and how a route's version is chosen by the request.
 */
export interface HttpPlatform {
  readonly name: HttpPlatformName;
  /** The platform's response object (Express `Response`, Fastify `FastifyReply`) as an HttpReply. */
  reply(res: unknown): HttpReply;
  /**
   * Own properties a batch feed's GET needs beside its url, params and headers: Fastify parsed
   * the query once for the POST, Express computes `req.query` from `req.url`.
   */
  feedRequestFields(query: string): Record<string, unknown>;
  /** Would the adapter let `req` through to a route of this version (header, media-type, custom)? */
  versionFilter(version: VersionValue, versioning: VersioningOptions): RequestFilter;
}
