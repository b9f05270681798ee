import { HttpException, HttpStatus, Inject, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { STATUS_CODES } from 'node:http';
import { PollingMetrics, type RejectReason } from '../metrics/polling-metrics.service';
import { POLLING_RESOLVED_OPTIONS } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { InternalDispatch } from './batch/internal-dispatch.service';
import { HeldRequests } from './held-requests.service';

/** Remembered clients for the minimum poll interval; the oldest are forgotten beyond this. */
const MAX_TRACKED_CLIENTS = 100_000;

/**
 * Limits checked before a request may poll or be held: shutdown and the process-wide held limit
 * (503), the per-client held limit and the minimum poll interval (429). Both carry Retry-After.
 * Limits are per process; for a shared request rate across instances put @nestjs/throttler with
 * a Redis storage in front.
 */
@Injectable()
export class PollAdmission {
  private readonly lastPoll = new Map<string, number>();

  constructor(
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
    private readonly held: HeldRequests,
    private readonly internal: InternalDispatch,
    private readonly metrics: PollingMetrics,
  ) {}

  /**
   * The key of the per-client limits: the app's `http.clientKey`, else (or when that gives none)
   * the client address, `req.ip`, which Express takes from X-Forwarded-For under `trust proxy`.
   */
  clientKey(request: Request): string {
    const custom = this.options.http.clientKey?.(request);
    if (custom !== undefined && custom !== null && custom !== '') return String(custom);
    return request.ip ?? request.socket.remoteAddress ?? 'unknown';
  }

  admit(clientKey: string, willHold: boolean, res: Response, req?: Request): void {
    const http = this.options.http;
    // A batch poll's per-feed requests were admitted as the batch already.
    if (req && this.internal.isInternal(req)) return;
    if (this.held.shuttingDown) {
      this.reject(
        res,
        HttpStatus.SERVICE_UNAVAILABLE,
        http.retryAfterS,
        'the server is shutting down',
        'shutting_down',
      );
    }
    if (http.minPollIntervalMs > 0) {
      const now = Date.now();
      const last = this.lastPoll.get(clientKey);
      if (last !== undefined && now - last < http.minPollIntervalMs) {
        const waitS = Math.ceil((http.minPollIntervalMs - (now - last)) / 1000);
        this.reject(
          res,
          HttpStatus.TOO_MANY_REQUESTS,
          waitS,
          'polling too often for this client',
          'poll_interval',
        );
      }
      this.lastPoll.delete(clientKey); // re-insert: Map order doubles as least-recently-seen order
      this.lastPoll.set(clientKey, now);
      if (this.lastPoll.size > MAX_TRACKED_CLIENTS) {
        this.lastPoll.delete(this.lastPoll.keys().next().value as string);
      }
    }
    if (!willHold) return;
    if (this.held.size >= http.maxHeld) {
      this.reject(
        res,
        HttpStatus.SERVICE_UNAVAILABLE,
        1,
        'too many held requests on this server',
        'held_limit',
      );
    }
    if (this.held.heldBy(clientKey) >= http.maxHeldPerClient) {
      this.reject(
        res,
        HttpStatus.TOO_MANY_REQUESTS,
        1,
        'too many held requests for this client',
        'client_held_limit',
      );
    }
  }

  private reject(
    res: Response,
    status: HttpStatus,
    retryAfterS: number,
    message: string,
    reason: RejectReason,
  ): never {
    this.metrics.rejected(reason);
    res.setHeader('Retry-After', String(Math.max(1, retryAfterS)));
    // The same {statusCode, error, message} shape as Nest's named exceptions.
    throw new HttpException(
      HttpException.createBody(message, STATUS_CODES[status] ?? String(status), status),
      status,
    );
  }
}
