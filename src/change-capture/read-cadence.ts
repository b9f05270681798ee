/** Shortest pause between reads while changes flow: a few commits gather into one read. */
export const MIN_READ_PAUSE_MS = 2;
/** Longest pause: bounds what the cadence adds to commit-to-index latency. */
export const MAX_READ_PAUSE_MS = 25;
/** Pause per millisecond of read: the reader's loop is busy at most 1 / (1 + ratio) of the time. */
const PAUSE_PER_BUSY_MS = 3;

/**
 * How long the reader pauses between reads while changes flow, given how long the last read took
 * (query, index write and announcement). A fixed 2 ms pause made the reader read hundreds of times
 * a second whatever each read cost, competing with busy writers for CPU. On an idle machine a read
 * takes well under a millisecond and the pause stays at its minimum; when writers keep the database
 * busy, reads slow down, the reader backs off and each read gathers more rows.
 */
export function pauseAfterRead(readMs: number): number {
  return Math.min(MAX_READ_PAUSE_MS, Math.max(MIN_READ_PAUSE_MS, readMs * PAUSE_PER_BUSY_MS));
}
