import { VERSION_NEUTRAL, type HttpServer } from '@nestjs/common';
import type { VersionValue, VersioningOptions } from '@nestjs/common/interfaces';
import type { ServerResponse } from 'node:http';
import { parse } from 'node:querystring';
import type { HttpPlatform, RequestFilter } from './http-platform';
import type { HttpReply } from './http-reply';

/** The parts of Fastify's `FastifyReply` used here; Node's response is `reply.raw`. */
interface FastifyReplyLike {
  raw: ServerResponse;
  sent: boolean;
  code(code: number): unknown;
  header(name: string, value: string): unknown;
  getHeader(name: string): unknown;
}

/** How the Fastify adapter routes by version: a router constraint derived from the request. */
interface VersionConstraint {
  deriveConstraint(req: unknown): string | string[] | symbol | undefined;
}

/**
 * @nestjs/platform-fastify: headers and status go through the reply (Fastify writes them when
 * Nest sends the answer); events, close and finish through `reply.raw`.
 */
export class FastifyPlatform implements HttpPlatform {
  readonly name = 'fastify';

  constructor(private readonly adapter: HttpServer) {}

  reply(res: unknown): HttpReply {
    return new FastifyHttpReply(res as FastifyReplyLike);
  }

  /** Fastify parsed the POST's query once, as an own property: the feed's GET has its own. */
  feedRequestFields(query: string): Record<string, unknown> {
    return { query: { ...parse(query) } };
  }

  /**
   * Fastify chooses among versions in its router (a constraint Nest's adapter derives from the
   * request), not in a filter before the handler: derive it the same way and compare.
   */
  versionFilter(version: VersionValue, versioning: VersioningOptions): RequestFilter {
    const versions = new Set<unknown>([version].flat());
    if (versions.has(VERSION_NEUTRAL)) return () => true;
    // Set by the adapter when the app enables versioning (applyVersionFilter, at route setup).
    this.adapter.applyVersionFilter(() => undefined, version, versioning);
    const constraint = (this.adapter as unknown as { versionConstraint: VersionConstraint })
      .versionConstraint;
    return (req) => {
      const asked = constraint.deriveConstraint(req);
      return [asked].flat().some((v) => versions.has(v));
    };
  }
}

/** A class, not an object of closures: every held request has one. */
class FastifyHttpReply implements HttpReply {
  constructor(private readonly reply: FastifyReplyLike) {}

  get raw(): ServerResponse {
    return this.reply.raw;
  }

  status(code: number): void {
    this.reply.code(code);
  }

  setHeader(name: string, value: string): void {
    this.reply.header(name, value);
  }

  /** Fastify's reply.header adds to Set-Cookie rather than replacing it. */
  appendHeader(name: string, value: string): void {
    this.reply.header(name, value);
  }

  getHeader(name: string): unknown {
    return this.reply.getHeader(name);
  }

  get headersSent(): boolean {
    return this.reply.sent || this.reply.raw.headersSent;
  }
}
