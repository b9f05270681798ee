import type { ChangedResource, FeedChanges, ReaderCheckpoint } from './change-index.interface';

/** Argument checks and the answer shape both ChangeIndex implementations share. */

export function assertPosition(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
}

export function assertGeneration(generation: string): void {
  if (typeof generation !== 'string' || generation.length === 0) {
    throw new RangeError('generation must be a non-empty string');
  }
}

const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

export function assertCheckpoint(checkpoint: ReaderCheckpoint): void {
  if (!DECIMAL.test(checkpoint?.readerXid) || !DECIMAL.test(checkpoint?.readerId)) {
    throw new RangeError('checkpoint must hold readerXid and readerId as decimal strings');
  }
}

/**
 * The `changes` answer: when `limit` cut the list short (it is full and its last position is
 * below the feed's latest), the caller's next cursor is that last position; otherwise the feed's
 * latest, never below the position asked for. (A feed with no indexed change reports the index
 * floor as its latest, which may lie above a valid cursor with nothing after it.)
 */
export function changesAnswer(
  generation: string,
  position: number,
  feedMax: number,
  changed: ChangedResource[],
  limit: number,
): FeedChanges {
  const last = changed.length > 0 ? changed[changed.length - 1].position : position;
  const complete = changed.length < limit || last >= feedMax;
  return {
    kind: 'changes',
    generation,
    feedPosition: complete ? Math.max(position, feedMax) : last,
    complete,
    changed,
  };
}
