import type { BackoffOptions } from './types.js';

/** Backoff bounds with the defaults filled in. */
export interface BackoffBounds {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffBounds = { baseMs: 1000, maxMs: 30_000 };

/** A `Retry-After` wait is stretched by up to this fraction, so rejected clients do not return together. */
export const RETRY_AFTER_JITTER = 0.2;

/** Validated backoff bounds: positive finite numbers, `maxMs >= baseMs`. */
export function backoffBounds(options: BackoffOptions = {}): BackoffBounds {
  const baseMs = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const maxMs = options.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, baseMs);
  if (!(Number.isFinite(baseMs) && baseMs > 0)) {
    throw new TypeError('backoff.baseMs must be a positive number');
  }
  if (!(Number.isFinite(maxMs) && maxMs >= baseMs)) {
    throw new TypeError('backoff.maxMs must be a number >= backoff.baseMs');
  }
  return { baseMs, maxMs };
}

/** `random()` forced into [0, 1), whatever the injected function returns. */
export function unit(random: () => number): number {
  const r = random();
  return Number.isFinite(r) ? Math.min(Math.max(r, 0), 1 - Number.EPSILON) : 0;
}

/**
 * Exponential backoff with full jitter: a uniform delay in [0, min(maxMs, baseMs · 2^(attempt−1))),
 * whole milliseconds. `attempt` counts consecutive failures from 1.
 */
export function backoffDelay(attempt: number, bounds: BackoffBounds, random: () => number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const ceiling = Math.min(bounds.maxMs, bounds.baseMs * 2 ** exponent);
  return Math.floor(unit(random) * ceiling);
}

/**
 * A `Retry-After` header in ms: delta-seconds (`"5"`) or an HTTP-date. Null when absent or not
 * understood (the caller then backs off instead).
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // HTTP-dates (IMF-fixdate, RFC 850, asctime) start with the day name; Date.parse alone takes '-3'.
  if (!/^[A-Za-z]{3}/.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Never earlier than the server asked, and up to {@link RETRY_AFTER_JITTER} later. */
export function retryAfterDelay(retryAfterMs: number, random: () => number): number {
  return retryAfterMs + Math.floor(unit(random) * retryAfterMs * RETRY_AFTER_JITTER);
}
