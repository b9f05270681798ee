import {
  ForbiddenException,
  HttpException,
  HttpStatus,
  ServiceUnavailableException,
} from '@nestjs/common';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { HttpReply } from './platform/http-reply';
import type { Watch } from './watch/watch';
import { AccessRevokedError, WatchRefusedError } from './watch/watch.errors';
import type { PollingEvents, PollKind } from './watch/polling-events.service';

const CLIENT_LIMITS = new Set(['client_held_limit', 'poll_interval']);

/**
 * The core's typed refusals as HTTP answers: 429 for the per-client limits, 503 for the others,
 * with Retry-After; a revoked access is 403. Anything else is passed on unchanged.
 */
export function toHttpError(error: unknown, res: HttpReply | null): unknown {
  if (error instanceof AccessRevokedError) return new ForbiddenException(error.message);
  if (!(error instanceof WatchRefusedError)) return error;
  if (res && !res.headersSent) res.setHeader('Retry-After', String(error.retryAfterS));
  if (error.reason === 'index_unavailable') return new ServiceUnavailableException(error.message);
  const status = CLIENT_LIMITS.has(error.reason)
    ? HttpStatus.TOO_MANY_REQUESTS
    : HttpStatus.SERVICE_UNAVAILABLE;
  // The same {statusCode, error, message} shape as Nest's named exceptions.
  return new HttpException(
    HttpException.createBody(error.message, STATUS_CODES[status] ?? String(status), status),
    status,
  );
}

/** Runs `work`, answering the core's refusals as HTTP errors (see toHttpError). */
export async function asHttp<T>(res: HttpReply | null, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toHttpError(error, res);
  }
}

/** What the `responded` event reports of one poll response. */
export interface ResponseTrack {
  kind: PollKind;
  watch: Watch | null;
}

/**
 * Reports the response's final status as a `responded` event when it finishes; nothing when
 * nobody observes the events (metrics off).
 */
export function trackResponse(
  events: PollingEvents,
  res: ServerResponse,
  feed: string,
  kind: PollKind,
): ResponseTrack {
  const track: ResponseTrack = { kind, watch: null };
  if (!events.observed) return track;
  res.once('finish', () =>
    events.emit({
      type: 'responded',
      feed,
      kind: track.kind,
      status: res.statusCode,
      committedAt: track.watch?.committedAt,
    }),
  );
  return track;
}

/** `messages:general` → `messages`: metric labels stay bounded by the configured tables. */
export function tableFeed(feed: string): string {
  const colon = feed.indexOf(':');
  return colon < 0 ? feed : feed.slice(0, colon);
}
