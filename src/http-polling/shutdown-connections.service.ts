import {
  BeforeApplicationShutdown,
  Injectable,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';

/**
 * From the shutdown signal on, how often answers in flight are checked for a client that stopped
 * reading (a frozen tab, a stalled proxy): its socket has data waiting that it took none of since
 * the previous check. Such an answer or SSE stream can never finish, and `server.close()` would
 * wait for it for ever; its connection is destroyed, so the process exits within a few seconds.
 * A request still being worked on (nothing waiting to be sent) or a slow reader is left alone.
 */
export const SHUTDOWN_STALL_CHECK_MS = 1_000;

/**
 * From the shutdown signal on, the checks a connection may stay open without a request under way
 * even though it reads something before each: a client sending its request does so within one, but
 * one that trickles its headers a byte at a time (a slowloris) would otherwise keep the server
 * open for as long as it likes, since Node stops timing out headers once the server is closing.
 */
export const SHUTDOWN_REQUEST_CHECKS = 3;

/** Bytes the connection has taken from us: written out, not merely queued for it. */
function taken(socket: Socket): number {
  return (socket.bytesWritten ?? 0) - socket.writableLength;
}

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
 *
 * Node counts a connection whose first request is not complete as busy, not idle: a browser's
 * preconnect, a client that went silent mid-request, a connection opened during the shutdown.
 * Once the server stops listening nothing times those out, so the close waited for ever. From the
 * shutdown signal on, a connection without a request under way that read nothing since the
 * previous check is destroyed (one still taking an answer gets a few checks); a client that sends
 * its request within a check is answered.
 */
@Injectable()
export class ShutdownConnections
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private server: Server | undefined;
  /** Responses in flight, with their connection (a finished response lets go of its socket). */
  private readonly inFlight = new Map<ServerResponse, Socket>();
  /** Every open connection (those with a request under way are the sockets of `inFlight`). */
  private readonly connections = new Set<Socket>();
  /** What each connection without a request had read at the previous check, and how many checks. */
  private readonly readAtCheck = new Map<Socket, { read: number; checks: number }>();
  private stopping = false;
  private stallCheck: NodeJS.Timeout | undefined;
  /** What each waiting connection had taken at the previous check. */
  private readonly takenAtCheck = new Map<ServerResponse, number>();

  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  onApplicationBootstrap(): void {
    // No HTTP server in a standalone application context.
    const server = this.adapterHost?.httpAdapter?.getHttpServer() as Server | undefined;
    if (typeof server?.closeIdleConnections !== 'function') return;
    this.server = server;
    server.prependListener('request', this.onRequest);
    server.on('connection', this.onConnection);
    if (server instanceof TlsServer) server.on('secureConnection', this.onSecureConnection);
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
    for (const res of this.inFlight.keys()) closeAfterAnswer(res);
    this.server?.closeIdleConnections();
    this.stallCheck = setInterval(() => this.destroyStalled(), SHUTDOWN_STALL_CHECK_MS).unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.stallCheck);
    this.server?.off('request', this.onRequest);
    this.server?.off('connection', this.onConnection);
    this.server?.off('secureConnection', this.onSecureConnection);
  }

  private destroyStalled(): void {
    this.destroySilent();
    for (const res of this.inFlight.keys()) {
      const socket = res.socket;
      // Only full buffers mean a client that stopped reading: a few bytes still on their way
      // (a 204 the balancer has not taken yet) are a client that is just slow to be scheduled.
      if (!socket || !(socket.writableNeedDrain || res.writableNeedDrain)) {
        this.takenAtCheck.delete(res);
        continue;
      }
      const now = taken(socket);
      if (this.takenAtCheck.get(res) === now) res.destroy();
      else this.takenAtCheck.set(res, now);
    }
  }

  /**
   * Connections with no request under way that read nothing since the previous check, or that
   * still have none after SHUTDOWN_REQUEST_CHECKS checks.
   */
  private destroySilent(): void {
    const busy = new Set(this.inFlight.values());
    for (const socket of this.connections) {
      if (busy.has(socket)) {
        this.readAtCheck.delete(socket);
        continue;
      }
      const read = socket.bytesRead;
      const previous = this.readAtCheck.get(socket);
      const checks = (previous?.checks ?? 0) + 1;
      // Not silent while an answer is still being written out to it (within the cap).
      const silent = previous?.read === read && socket.writableLength === 0;
      if (previous && (silent || checks >= SHUTDOWN_REQUEST_CHECKS)) {
        socket.destroy();
      } else this.readAtCheck.set(socket, { read, checks });
    }
  }

  private readonly onConnection = (socket: Socket): void => {
    this.connections.add(socket);
    socket.once('close', () => {
      this.connections.delete(socket);
      this.readAtCheck.delete(socket);
    });
  };

  /**
   * An HTTPS server hands its HTTP layer the TLS socket once the handshake is done. Until then the
   * TCP connection is tracked on its own (a client that connected and never sent its hello would
   * keep the server open until the TLS handshake timeout, 2 minutes); from then on the TLS socket,
   * the one requests arrive on, stands for it.
   */
  private readonly onSecureConnection = (socket: TLSSocket): void => {
    const tcp = this.tcpUnder(socket);
    if (tcp) {
      this.connections.delete(tcp);
      this.readAtCheck.delete(tcp);
    }
    this.onConnection(socket);
  };

  /**
   * The TCP connection under a TLS socket: Node's `_parent`, else the tracked connection with the
   * same peer and local port (left tracked, it would be closed under a request at shutdown).
   */
  private tcpUnder(socket: TLSSocket): Socket | undefined {
    const parent = (socket as TLSSocket & { _parent?: unknown })._parent;
    if (parent instanceof Socket && this.connections.has(parent)) return parent;
    for (const tcp of this.connections) {
      if (
        tcp.remotePort === socket.remotePort &&
        tcp.remoteAddress === socket.remoteAddress &&
        tcp.localPort === socket.localPort &&
        tcp !== socket
      ) {
        return tcp;
      }
    }
    return undefined;
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (this.stopping) closeAfterAnswer(res);
    this.inFlight.set(res, req.socket);
    res.once('close', () => {
      this.inFlight.delete(res);
      this.takenAtCheck.delete(res);
    });
  };
}
