import { Injectable } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { HeldRequests } from './held-requests.service';
import { PollingEvents } from './watch/polling-events.service';
import { WatchRefusedError } from './watch/watch.errors';

/**
 * Retry-After of a stopping server's refusals. The instance is leaving, not busy: every answer
 * from it closes its connection, so the retry opens a new one, which a balancer sends to an
 * instance still running. `http.retryAfterS` (an outage of the index) would keep a follower
 * away for seconds after every deploy.
 */
export const SHUTTING_DOWN_RETRY_AFTER_S = 1;

/** Remembered clients for the minimum poll interval; the oldest are forgotten beyond this. */
const MAX_TRACKED_CLIENTS = 100_000;

/**
 * Limits checked before a request may poll or be held: shutdown and the process-wide held limit
 * (503), the per-client held limit and the minimum poll interval (429), as a WatchRefusedError
 * with its Retry-After; the transport answers it.
 * Limits are per process; for a shared request rate across instances put @nestjs/throttler with
 * a Redis storage in front.
 */
@Injectable()
export class PollAdmission {
  private readonly lastPoll = new Map<string, number>();

  constructor(
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly held: HeldRequests,
    private readonly events: PollingEvents,
  ) {}

  /**
   * The key of the per-client limits: the app's `http.clientKey`, else (or when that gives none)
   * the client address, `req.ip`, which Express takes from X-Forwarded-For under `trust proxy`.
   */
  clientKey(request: PollingRequest): string {
    const custom = this.options.http.clientKey?.(request);
    if (custom !== undefined && custom !== null && custom !== '') return String(custom);
    return request.ip ?? request.socket?.remoteAddress ?? 'unknown';
  }

  admit(clientKey: string, willHold: boolean): void {
    const http = this.options.http;
    if (this.held.shuttingDown) {
      this.reject(SHUTTING_DOWN_RETRY_AFTER_S, 'the server is shutting down', 'shutting_down');
    }
    if (http.minPollIntervalMs > 0) {
      const now = Date.now();
      const last = this.lastPoll.get(clientKey);
      if (last !== undefined && now - last < http.minPollIntervalMs) {
        const waitS = Math.ceil((http.minPollIntervalMs - (now - last)) / 1000);
        this.reject(waitS, 'polling too often for this client', 'poll_interval');
      }
      this.lastPoll.delete(clientKey); // re-insert: Map order doubles as least-recently-seen order
      this.lastPoll.set(clientKey, now);
      if (this.lastPoll.size > MAX_TRACKED_CLIENTS) {
        this.lastPoll.delete(this.lastPoll.keys().next().value as string);
      }
    }
    if (!willHold) return;
    if (this.held.size >= http.maxHeld) {
      this.reject(1, 'too many held requests on this server', 'held_limit');
    }
    if (this.held.heldBy(clientKey) >= http.maxHeldPerClient) {
      this.reject(1, 'too many held requests for this client', 'client_held_limit');
    }
  }

  private reject(retryAfterS: number, message: string, reason: WatchRefusedError['reason']): never {
    this.events.emit({ type: 'rejected', reason });
    throw new WatchRefusedError(reason, Math.max(1, retryAfterS), message);
  }
}
