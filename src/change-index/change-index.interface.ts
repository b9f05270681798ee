import { Inject } from '@nestjs/common';
/**
 * The change index: per feed, the latest position at which each resource changed.
 * Positions are dense (1, 2, 3, ...) within one generation; a new generation starts
 * whenever the index had to be rebuilt, so positions from different generations never compare.
 */
export interface IndexHead {
  /** Opaque id of this index generation. */
  generation: string;
  /** Position of the last change written (0 when empty). */
  position: number;
  /** Reader checkpoint: the (xid, id) of the last change-log row written, as decimal strings. */
  readerXid: string;
  readerId: string;
  /** Positions at or below `floor` were trimmed: a cursor below it must refetch. */
  floor: number;
}

/** Where the reader stands in the change log: the (xid, id) of the last row it indexed. */
export interface ReaderCheckpoint {
  /** Decimal strings; ('0', '0') is the start of the change log. */
  readerXid: string;
  readerId: string;
}

export interface IndexedChange {
  feed: string;
  resourceId: string;
}

export interface AppendBatch {
  generation: string;
  /** The head position the writer believes is current; the append fails if it is not. */
  expectedPosition: number;
  /** Changes in commit order; they receive positions expectedPosition + 1, + 2, ... */
  changes: IndexedChange[];
  /** Reader checkpoint after this batch. */
  readerXid: string;
  readerId: string;
  /**
   * When the batch was written (epoch ms, default now). The index keeps about one time mark per
   * second with its data, so it can trim by age whoever leads and however often it restarts.
   */
  writtenAt?: number;
}

/** `lost`: the generation is gone (e.g. Redis was flushed); `conflict`: another writer moved the head. */
export type AppendResult =
  { ok: true; head: IndexHead } | { ok: false; reason: 'lost' | 'conflict' };

export interface ChangedResource {
  resourceId: string;
  position: number;
}

export type FeedChanges =
  | {
      kind: 'changes';
      generation: string;
      /**
       * Where the caller's next cursor should point: the feed's latest position, or the last
       * returned position when `limit` cut the list short (then `complete` is false).
       */
      feedPosition: number;
      complete: boolean;
      /** Resources changed after the requested position, ascending by position, latest change per id. */
      changed: ChangedResource[];
    }
  | {
      kind: 'refetch';
      /** Why the position cannot be answered: other generation, below the trimmed floor, or beyond the head. */
      reason: 'generation' | 'trimmed' | 'ahead';
      generation: string;
      feedPosition: number;
    }
  | { kind: 'unavailable' };

export type FeedPosition =
  | { kind: 'position'; generation: string; position: number; floor: number }
  | { kind: 'unavailable' };

export interface ChangeIndex {
  /** True when several processes share the index (they then elect one reader). */
  readonly shared: boolean;
  /** The current head, or null when the index holds no generation (never built or lost). */
  head(): Promise<IndexHead | null>;
  /**
   * Drops everything under this index and starts `generation` at position 0, with the reader's
   * checkpoint where the generation starts in the change log. Both are written together: a reader
   * that takes over (or reconnects) before the first append resumes there, not at the log's start.
   */
  startGeneration(generation: string, checkpoint: ReaderCheckpoint): Promise<IndexHead>;
  /** Writes a batch atomically and idempotently (ZADD GT semantics). */
  append(batch: AppendBatch): Promise<AppendResult>;
  /** The latest position of one feed: the cheap call behind ETags (no change list). */
  feedPosition(feed: string): Promise<FeedPosition>;
  /** Resources of `feed` changed strictly after `position` of `generation`, at most `limit`. */
  changesSince(
    feed: string,
    generation: string,
    position: number,
    limit: number,
  ): Promise<FeedChanges>;
  /**
   * The highest position written before `writtenBefore` (epoch ms) by the index's time marks,
   * 0 when none is. Marks at or below the forget line are dropped by `trim`.
   */
  expiredPosition(writtenBefore: number): Promise<number>;
  /**
   * Forgets changes at or below `position` (clamped to the head) and raises the floor to it.
   * A feed left with no change keeps only its own floor (its highest trimmed position) until that
   * is at or below `forget` (default `position`, clamped to the floor), then leaves the index
   * entirely. A feed with no indexed change answers with the index floor as position (nothing of
   * it changed after that), and with its own floor, else the index's forget line, as floor: a
   * client that keeps polling a quiet feed holds a valid cursor for as long as the forget line
   * lags the floor, and only a cursor older than that, or one that missed a trimmed change, must
   * refetch. Works in bounded steps (several short calls to a shared store), and resumes where an
   * interrupted trim stopped.
   */
  trim(position: number, forget?: number): Promise<void>;
  /**
   * The id of the store this index lives in, set to `candidate` when it has none (a new or wiped
   * store). Readers name their leader lock and reader-state row after it as well: two indexes of
   * one change log (two Redis servers, one keyPrefix) must never share a leader, or one of them
   * is never written.
   */
  claimId(candidate: string): Promise<string>;
  /** Releases what the index opened itself. */
  close(): Promise<void>;
}

/** Injection token for the ChangeIndex implementation in use. */
export const CHANGE_INDEX = Symbol('nestjs-polling:ChangeIndex');
export const InjectChangeIndex = () => Inject(CHANGE_INDEX);
