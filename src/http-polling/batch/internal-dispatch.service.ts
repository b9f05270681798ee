import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Request } from 'express';
import { randomBytes } from 'node:crypto';
import {
  Agent,
  request,
  type IncomingHttpHeaders,
  type RequestOptions,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DispatchedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** Request headers that describe the batch request itself, not the feed request. */
const NOT_FORWARDED = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'if-none-match',
  'if-modified-since',
  'prefer',
  'cache-control',
  'connection',
  'keep-alive',
  'expect',
]);
const INTERNAL_HEADER = 'x-nestjs-polling-internal';
const MAX_SOCKETS = 64;

/**
 * Sends a GET to this app's own server over loopback: middleware, guards, pipes, interceptors and
 * filters of the feed route apply exactly as for a client's GET. The batch poll uses it, so it can
 * never enforce less than the single-feed route does. (The feed route sees the loopback address
 * as its peer; the client's headers, X-Forwarded-For included, are forwarded.)
 */
@Injectable()
export class InternalDispatch implements OnApplicationShutdown {
  /** Marks our own requests so per-client rate limits do not count them twice. */
  private readonly token = randomBytes(16).toString('hex');
  private readonly agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });

  constructor(private readonly adapterHost: HttpAdapterHost) {}

  isInternal(req: Request): boolean {
    return req.headers[INTERNAL_HEADER] === this.token;
  }

  get(
    path: string,
    query: Record<string, string>,
    from: Request,
    extraHeaders: Record<string, string>,
  ): Promise<DispatchedResponse> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(from.headers)) {
      if (value !== undefined && !NOT_FORWARDED.has(name)) headers[name] = value;
    }
    Object.assign(headers, extraHeaders, { [INTERNAL_HEADER]: this.token });
    const search = new URLSearchParams(query).toString();
    const server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    const { port } = server.address() as AddressInfo;
    const target = { host: '127.0.0.1', port, method: 'GET', agent: this.agent, headers };
    return this.send({ ...target, path: search ? `${path}?${search}` : path });
  }

  private send(options: RequestOptions, retries = MAX_SOCKETS): Promise<DispatchedResponse> {
    return new Promise<DispatchedResponse>((resolve, reject) => {
      const outgoing = request(options, (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = /json/.test(String(incoming.headers['content-type']));
          const body = text.length === 0 ? undefined : json ? JSON.parse(text) : text;
          resolve({ status: incoming.statusCode ?? 502, headers: incoming.headers, body });
        });
      });
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        // An idle kept-alive socket that the server closed (keepAliveTimeout) just as it was
        // reused: the GET never reached the route. Each such failure drops one stale socket, so
        // sending it again ends on a live or a fresh one (at most one retry per pooled socket).
        const stale = outgoing.reusedSocket && error.code === 'ECONNRESET';
        if (stale && retries > 0) resolve(this.send(options, retries - 1));
        else reject(error);
      });
      outgoing.end();
    });
  }

  onApplicationShutdown(): void {
    this.agent.destroy();
  }
}
