import {
  BeforeApplicationShutdown,
  Injectable,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** A response in flight when the app stops: its connection closes once it is answered. */
function closeAfterAnswer(res: ServerResponse): void {
  if (!res.headersSent) {
    res.setHeader('Connection', 'close');
    return;
  }
  // Already streaming (SSE): end its connection once the stream has ended.
  const socket = res.socket;
  res.once('finish', () => socket?.destroySoon());
}

/**
 * Lets the process exit promptly on shutdown while keep-alive clients (browsers, Node's fetch)
 * hold polls. Node's `server.close()` only closes the connections idle at that instant and goes on
 * serving requests on the others; a client that polls again within `keepAliveTimeout` on its kept
 * connection (an SDK retrying a 503 after one second) keeps it busy, and the server never closes.
 * So from the shutdown signal on: connections without a request are closed, and every answer, the
 * held polls' 204 and the refusals' 503 alike, carries `Connection: close`.
 */
@Injectable()
export class ShutdownConnections
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private server: Server | undefined;
  private readonly inFlight = new Set<ServerResponse>();
  private stopping = false;

  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  onApplicationBootstrap(): void {
    // No HTTP server in a standalone application context.
    const server = this.adapterHost?.httpAdapter?.getHttpServer() as Server | undefined;
    if (typeof server?.closeIdleConnections !== 'function') return;
    this.server = server;
    server.prependListener('request', this.onRequest);
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
    for (const res of this.inFlight) closeAfterAnswer(res);
    this.inFlight.clear();
    this.server?.closeIdleConnections();
  }

  onApplicationShutdown(): void {
    this.server?.off('request', this.onRequest);
  }

  private readonly onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    if (this.stopping) return closeAfterAnswer(res);
    this.inFlight.add(res);
    res.once('close', () => this.inFlight.delete(res));
  };
}
