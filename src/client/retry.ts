import { backoffDelay, retryAfterDelay, type BackoffBounds } from './backoff.js';
import { sleep, type WakeSource } from './sleep.js';
import type { RetryInfo } from './types.js';

export interface RetrySettings {
  bounds: BackoffBounds;
  random: () => number;
  signal: AbortSignal;
  onError?: (error: unknown, info: RetryInfo) => void;
  /** Ends a backoff early (page visible again, window focus, back online). */
  wake: WakeSource | null;
}

/** Counts consecutive failures and waits before the next attempt. */
export class Retrier {
  private attempt = 0;

  constructor(private readonly settings: RetrySettings) {}

  /** A successful answer: the next failure starts the backoff again. */
  reset(): void {
    this.attempt = 0;
  }

  /**
   * Reports `error` to `onError`, then waits: `Retry-After` (plus a little jitter, never cut
   * short) when the server sent one, else the backoff (cut short by a wake event). Resolves false
   * when the signal aborted meanwhile.
   */
  async wait(error: unknown, retryAfterMs: number | null): Promise<boolean> {
    const { bounds, random, signal, onError, wake } = this.settings;
    this.attempt++;
    const delayMs =
      retryAfterMs === null
        ? backoffDelay(this.attempt, bounds, random)
        : retryAfterDelay(retryAfterMs, random);
    onError?.(error, { attempt: this.attempt, delayMs });
    const end = await sleep(delayMs, signal, retryAfterMs === null ? wake : null);
    return end !== 'aborted';
  }
}
