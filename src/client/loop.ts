import { backoffBounds, parseRetryAfter } from './backoff.js';
import { httpError, isRetryableStatus, type PollHttpError } from './errors.js';
import { globalFetch, waitParam, type PollResponse } from './http.js';
import { Retrier } from './retry.js';
import type { WakeSource } from './sleep.js';
import { onPageResume, whenPageVisible } from './visibility.js';
import type { CommonFollowOptions, FetchLike } from './types.js';

export const DEFAULT_WAIT_S = 25;
export const DEFAULT_TIMEOUT_MS = 20_000;

/** What both follow loops derive from their options. */
export interface LoopSettings {
  signal: AbortSignal;
  fetchFn: FetchLike;
  random: () => number;
  retrier: Retrier;
  /** Wake events for waits that may be cut short. */
  wake: WakeSource;
  /** `wait` as sent, and in ms. */
  waitText: string;
  waitMs: number;
  timeoutMs: number;
  /** Resolves false when stopped while waiting for a hidden page. */
  ready(): Promise<boolean>;
  /** The answer with the `select` option applied to a 2xx or 409 body. */
  select(res: PollResponse): PollResponse;
}

export function loopSettings(options: CommonFollowOptions): LoopSettings {
  const signal = options.signal;
  if (!signal || typeof signal.addEventListener !== 'function') {
    throw new TypeError('signal (an AbortSignal) is required');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new TypeError('timeoutMs must be a positive number');
  }
  const waitText = waitParam(options.wait ?? DEFAULT_WAIT_S);
  const random = options.random ?? Math.random;
  const pause = options.pauseWhenHidden ?? true;
  return {
    signal,
    fetchFn: options.fetch ?? globalFetch,
    random,
    retrier: new Retrier({
      bounds: backoffBounds(options.backoff),
      random,
      signal,
      onError: options.onError,
      wake: onPageResume,
    }),
    wake: onPageResume,
    waitText,
    waitMs: Number(waitText) * 1000,
    timeoutMs,
    ready: () => (pause ? whenPageVisible(signal) : Promise.resolve(!signal.aborted)),
    select: (res) => selectBody(res, options.select),
  };
}

function selectBody(res: PollResponse, select: ((body: unknown) => unknown) | undefined) {
  if (select === undefined || res.body === null || typeof res.body !== 'object') return res;
  const read = (res.status >= 200 && res.status < 300) || res.status === 409;
  return read ? { ...res, body: select(res.body) } : res;
}

/** An error answer: what to do about it. */
export type Failure =
  | { retry: true; error: PollHttpError; retryAfterMs: number | null }
  | { retry: false; error: PollHttpError };

/** Classifies an error status: 408, 429 and 5xx are retried (after Retry-After if sent). */
export function failureOf(res: PollResponse): Failure {
  const error = httpError(res.status, res.body);
  if (!isRetryableStatus(res.status)) return { retry: false, error };
  return { retry: true, error, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) };
}
