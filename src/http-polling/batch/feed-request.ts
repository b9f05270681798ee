import { REQUEST_CONTEXT_ID } from '@nestjs/core/router/request/request-constants';
import { EventEmitter } from 'node:events';
import type { PollingRequest } from '../../polling-request.interface';
import { BATCH_MEMBER, type BatchMember, type BatchMemberRequest } from './batch-member';

/** Headers that describe the batch request's body or its own conditions, not the feed's GET. */
const BATCH_ONLY_HEADERS = new Set([
  'content-length',
  'content-type',
  'transfer-encoding',
  'if-none-match',
  'if-modified-since',
  'prefer',
]);

/**
 * The batch request as the GET of one feed route: the same client, socket, headers (credentials
 * included) and anything middleware attached (`req.user`, ...), with that route's path, params
 * and query. A prototype child, so what guards add stays on this feed's request. One per feed
 * for the whole batch request: its guards admit it once, and what they attach is still there
 * when the route runs again after a wake-up (see `serveAs`).
 */
export function feedRequest(
  batch: PollingRequest,
  path: string,
  query: string,
  params: Record<string, string>,
  platformFields: Record<string, unknown>,
): BatchMemberRequest {
  const headers = Object.fromEntries(
    Object.entries(batch.headers).filter(([name]) => !BATCH_ONLY_HEADERS.has(name)),
  );
  const url = query ? `${path}?${query}` : path;
  const own = (value: unknown) => ({ value, writable: true, enumerable: true, configurable: true });
  // Express computes req.query and req.path from req.url, so they follow this feed's URL;
  // Fastify's parsed query is a field of its own (platformFields). Fastify's url, headers and
  // method are getters reading `raw`: own values here shadow them.
  const fields = Object.fromEntries(
    Object.entries(platformFields).map(([name, value]) => [name, own(value)]),
  );
  return Object.create(batch, {
    ...fields,
    method: own('GET'),
    url: own(url),
    originalUrl: own(url),
    params: own(params),
    headers: own(headers),
    body: own(undefined),
    res: own(undefined),
    [BATCH_MEMBER]: own(undefined),
    // Its own DI context, made when a request-scoped route runs (not the batch request's).
    [REQUEST_CONTEXT_ID]: own(undefined),
  }) as BatchMemberRequest;
}

/** Sets what one run of the feed's route does (`member`) and where it answers (`res`). */
export function serveAs(request: BatchMemberRequest, member: BatchMember, res: object): void {
  request[BATCH_MEMBER] = member;
  // Express's `req.res`, which its response helpers reach through.
  (request as BatchMemberRequest & { res?: object }).res = res;
}

/**
 * Express response helpers (on an Express app) that only read and write headers (through get/set/getHeader/setHeader),
 * so they work on a captured response as well.
 */
const EXPRESS_HEADER_HELPERS = [
  'append',
  'attachment',
  'clearCookie',
  'contentType',
  'cookie',
  'links',
  'location',
  'vary',
] as const;

/**
 * Where a feed route's answer goes inside a batch: nothing reaches the client's socket. A route
 * or exception filter that writes (`res.status(403).json(...)`) is recorded as that feed's answer.
 */
export class CapturedResponse extends EventEmitter {
  statusCode = 200;
  body: unknown = undefined;
  written = false;
  readonly locals: Record<string, unknown> = {};
  /** The feed's request, as `res.req` (Express's cookie helper reads it). */
  req: PollingRequest | undefined;
  private readonly values = new Map<string, unknown>();

  /**
   * `batch`: the batch's real response. On Express its helpers (`cookie`, `append`, `vary`,
   * ...) this one offers too, over its own captured headers, so a route that uses them through
   * `@Res({passthrough: true})` works inside a batch as on its own GET. Fastify's reply helpers
   * (`code`, `header`, `headers`, `send`) are methods of this class.
   */
  constructor(batch: object) {
    super();
    const helpers = batch as Record<string, unknown>;
    for (const name of EXPRESS_HEADER_HELPERS) {
      const helper = helpers[name];
      if (typeof helper !== 'function') continue;
      Object.defineProperty(this, name, {
        value: (...args: unknown[]) => (helper as (...a: unknown[]) => unknown).apply(this, args),
      });
    }
  }

  /** Set-Cookie headers the route set: the batch answer carries them to the client. */
  get cookies(): string[] {
    const value = this.values.get('set-cookie');
    if (value === undefined) return [];
    return (Array.isArray(value) ? value : [value]).map(String);
  }

  get headersSent(): boolean {
    return this.written;
  }
  /** Fastify's name for it. */
  get sent(): boolean {
    return this.written;
  }
  get writableEnded(): boolean {
    return this.written;
  }
  readonly destroyed = false;

  status(code: number): this {
    this.statusCode = code;
    return this;
  }
  setHeader(name: string, value: unknown): this {
    this.values.set(name.toLowerCase(), value);
    return this;
  }
  header(name: string, value: unknown): this {
    return this.setHeader(name, value);
  }
  headers(values: Record<string, unknown>): this {
    for (const [name, value] of Object.entries(values)) this.setHeader(name, value);
    return this;
  }
  code(code: number): this {
    return this.status(code);
  }
  set(name: string, value: unknown): this {
    return this.setHeader(name, value);
  }
  type(value: string): this {
    return this.setHeader('content-type', value);
  }
  getHeader(name: string): unknown {
    return this.values.get(name.toLowerCase());
  }
  get(name: string): unknown {
    return this.getHeader(name);
  }
  getHeaders(): Record<string, unknown> {
    return Object.fromEntries(this.values);
  }
  hasHeader(name: string): boolean {
    return this.values.has(name.toLowerCase());
  }
  removeHeader(name: string): void {
    this.values.delete(name.toLowerCase());
  }
  json(body: unknown): this {
    return this.end(body);
  }
  send(body?: unknown): this {
    return this.end(body);
  }
  end(body?: unknown): this {
    if (this.written) return this;
    this.written = true;
    this.body = Buffer.isBuffer(body) ? body.toString('utf8') : body;
    this.emit('finish');
    return this;
  }
}
