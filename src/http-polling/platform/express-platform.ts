import type { VersionValue, VersioningOptions } from '@nestjs/common/interfaces';
import type { HttpServer } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { HttpPlatform, RequestFilter } from './http-platform';
import type { HttpReply } from './http-reply';

/** The parts of Express's `Response` used here (it extends Node's ServerResponse). */
type ExpressResponse = ServerResponse & {
  status(code: number): unknown;
  append(name: string, value: string): unknown;
};

type Handler = (req: unknown, res: unknown, next: () => boolean) => boolean;

/** @nestjs/platform-express: the response is Node's, with Express's helpers on it. */
export class ExpressPlatform implements HttpPlatform {
  readonly name = 'express';

  constructor(private readonly adapter: HttpServer) {}

  reply(res: unknown): HttpReply {
    return new ExpressReply(res as ExpressResponse);
  }

  /** Express computes `req.query` from `req.url`: nothing to add. */
  feedRequestFields(): Record<string, unknown> {
    return {};
  }

  /** The adapter's own version filter, the one Nest puts before the route. */
  versionFilter(version: VersionValue, versioning: VersioningOptions): RequestFilter {
    const pass: Handler = () => true;
    const filter = this.adapter.applyVersionFilter(pass, version, versioning) as unknown as Handler;
    return (req) => filter(req, undefined, () => false) === true;
  }
}

/** A class, not an object of closures: every held request has one. */
class ExpressReply implements HttpReply {
  constructor(readonly raw: ExpressResponse) {}

  status(code: number): void {
    this.raw.status(code);
  }

  setHeader(name: string, value: string): void {
    this.raw.setHeader(name, value);
  }

  appendHeader(name: string, value: string): void {
    this.raw.append(name, value);
  }

  getHeader(name: string): unknown {
    return this.raw.getHeader(name);
  }

  get headersSent(): boolean {
    return this.raw.headersSent;
  }
}
