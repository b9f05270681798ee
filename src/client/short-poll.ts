/** Bounds of the short-poll interval. */
export interface ShortPollOptions {
  /** Shortest interval, in ms (default 1000); also the first interval. */
  minMs?: number;
  /** Longest interval, in ms (default 30000). */
  maxMs?: number;
}

export interface IntervalBounds {
  minMs: number;
  maxMs: number;
}

export const DEFAULT_SHORT_POLL: IntervalBounds = { minMs: 1000, maxMs: 30_000 };

/** Validated interval bounds: `0 <= minMs <= maxMs`, finite. */
export function intervalBounds(options: ShortPollOptions = {}): IntervalBounds {
  const minMs = options.minMs ?? DEFAULT_SHORT_POLL.minMs;
  const maxMs = options.maxMs ?? Math.max(DEFAULT_SHORT_POLL.maxMs, minMs);
  if (!(Number.isFinite(minMs) && minMs >= 0)) {
    throw new TypeError('shortPoll.minMs must be a number >= 0');
  }
  if (!(Number.isFinite(maxMs) && maxMs >= minMs && maxMs > 0)) {
    throw new TypeError('shortPoll.maxMs must be a positive number >= shortPoll.minMs');
  }
  return { minMs, maxMs };
}

/** A `Poll-Interval` header in ms (non-negative seconds, decimals allowed); null when absent or bad. */
export function parsePollInterval(value: string | null): number | null {
  if (value === null || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return null;
  return Number(value) * 1000;
}

/**
 * The next short-poll interval: the server's `Poll-Interval` hint when there is one, else adapted
 * from the previous interval — halved after new data, doubled after an unchanged answer — always
 * within `bounds`.
 */
export function nextInterval(
  previousMs: number,
  answer: { moved: boolean; hintMs: number | null },
  bounds: IntervalBounds,
): number {
  const wanted = answer.hintMs ?? (answer.moved ? previousMs / 2 : Math.max(previousMs, 1) * 2);
  return Math.round(Math.min(bounds.maxMs, Math.max(bounds.minMs, wanted)));
}
