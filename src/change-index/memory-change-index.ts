import {
  assertPosition,
  assertLimit,
  assertGeneration,
  assertCheckpoint,
  changesAnswer,
} from './change-index.checks';
import type {
  AppendBatch,
  AppendResult,
  ChangedResource,
  ChangeIndex,
  FeedChanges,
  FeedPosition,
  IndexHead,
  ReaderCheckpoint,
} from './change-index.interface';

/** Compact a feed's log once it holds this many superseded entries and more than live ones. */
const COMPACT_MIN_STALE = 64;
/** trim yields to the event loop after this many feeds, so a large index never stalls the app. */
const TRIM_FEEDS_PER_STEP = 1000;
/** One time mark per this many ms: the precision of trimming by age. */
const MARK_EVERY_MS = 1000;

interface LogEntry {
  position: number;
  resourceId: string;
}

interface FeedState {
  /** Latest position per resource: the index proper. */
  latest: Map<string, number>;
  /**
   * Every change in append order (so ascending by position) from `start` on; an entry is live
   * only while `latest` still points at it. Superseded entries are dropped lazily.
   */
  log: LogEntry[];
  start: number;
  stale: number;
  /** Highest position written to this feed (0 when never written). */
  max: number;
  /**
   * Highest position of this feed that trim removed: a cursor below it missed a change. A feed
   * left with no change keeps it until the forget line passes it; one that enters the index
   * without it starts at the forget line (it may have had changes at or below it).
   */
  floor: number;
}

/** Positions up to `position` were written at or before about `at` (epoch ms). */
interface TimeMark {
  at: number;
  position: number;
}

/** Single-process ChangeIndex: no Redis, nothing shared, lost only with the process. */
export class MemoryChangeIndex implements ChangeIndex {
  readonly shared = false;

  private current: IndexHead | null = null;
  /** No feed keeps a floor of its own at or below this position (see `trim`). */
  private forgotten = 0;
  private feeds = new Map<string, FeedState>();
  private marks: TimeMark[] = [];
  private id: string | null = null;

  async head(): Promise<IndexHead | null> {
    return this.current ? { ...this.current } : null;
  }

  async startGeneration(generation: string, checkpoint: ReaderCheckpoint): Promise<IndexHead> {
    assertGeneration(generation);
    assertCheckpoint(checkpoint);
    const { readerXid, readerId } = checkpoint;
    this.feeds = new Map();
    this.marks = [];
    this.forgotten = 0;
    this.current = { generation, position: 0, readerXid, readerId, floor: 0 };
    return { ...this.current };
  }

  async append(batch: AppendBatch): Promise<AppendResult> {
    assertPosition(batch.expectedPosition, 'expectedPosition');
    const head = this.current;
    if (!head || head.generation !== batch.generation) return { ok: false, reason: 'lost' };
    if (head.position !== batch.expectedPosition) return { ok: false, reason: 'conflict' };

    const writtenAt = writtenAtOf(batch);
    let position = head.position;
    for (const { feed, resourceId } of batch.changes) {
      position += 1;
      const state = this.feedState(feed);
      // Positions only grow, so this is ZADD GT: the newer entry always wins.
      if (state.latest.has(resourceId)) state.stale += 1;
      state.latest.set(resourceId, position);
      state.log.push({ position, resourceId });
      state.max = position;
      this.maybeCompact(state);
    }
    if (position > head.position) this.mark(writtenAt, position);
    this.current = {
      ...head,
      position,
      readerXid: batch.readerXid,
      readerId: batch.readerId,
    };
    return { ok: true, head: { ...this.current } };
  }

  async expiredPosition(writtenBefore: number): Promise<number> {
    let position = 0;
    for (const mark of this.marks) {
      if (mark.at >= writtenBefore) break;
      position = mark.position;
    }
    return position;
  }

  async feedPosition(feed: string): Promise<FeedPosition> {
    if (!this.current) return { kind: 'unavailable' };
    const { max, floor } = this.bounds(this.current, feed);
    return { kind: 'position', generation: this.current.generation, position: max, floor };
  }

  async changesSince(
    feed: string,
    generation: string,
    position: number,
    limit: number,
  ): Promise<FeedChanges> {
    assertPosition(position, 'position');
    assertLimit(limit);
    const head = this.current;
    if (!head) return { kind: 'unavailable' };
    const state = this.feeds.get(feed);
    const { max: feedMax, floor: feedFloor } = this.bounds(head, feed);
    const current = head.generation;
    if (generation !== current) {
      return { kind: 'refetch', reason: 'generation', generation: current, feedPosition: feedMax };
    }
    if (position < feedFloor) {
      return { kind: 'refetch', reason: 'trimmed', generation: current, feedPosition: feedMax };
    }
    if (position > head.position) {
      return { kind: 'refetch', reason: 'ahead', generation: current, feedPosition: feedMax };
    }

    const changed: ChangedResource[] = [];
    if (state) {
      for (let i = firstAfter(state, position); i < state.log.length; i++) {
        const entry = state.log[i];
        if (state.latest.get(entry.resourceId) !== entry.position) continue;
        changed.push({ resourceId: entry.resourceId, position: entry.position });
        if (changed.length === limit) break;
      }
    }
    return changesAnswer(current, position, feedMax, changed, limit);
  }

  async trim(position: number, forget = position): Promise<void> {
    assertPosition(position, 'position');
    assertPosition(forget, 'forget');
    const head = this.current;
    if (!head) return;
    // Nothing above the head exists yet; a floor there would swallow future appends.
    const upTo = Math.min(position, head.position);
    const floor = Math.max(upTo, head.floor);
    if (floor > head.floor) this.current = { ...head, floor };
    this.forgotten = Math.max(this.forgotten, Math.min(forget, floor));
    while (this.marks.length > 0 && this.marks[0].position <= this.forgotten) this.marks.shift();
    // The floor is raised first: a feed removed below answers with it from then on.
    const feeds = this.feeds;
    let visited = 0;
    for (const [feed, state] of feeds) {
      this.trimFeed(feeds, feed, state, upTo);
      if (++visited % TRIM_FEEDS_PER_STEP === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.feeds !== feeds) return; // a new generation started meanwhile
      }
    }
  }

  async claimId(candidate: string): Promise<string> {
    this.id ??= candidate;
    return this.id;
  }

  async close(): Promise<void> {
    // Nothing opened.
  }

  private trimFeed(
    feeds: Map<string, FeedState>,
    feed: string,
    state: FeedState,
    upTo: number,
  ): void {
    if (state.start >= state.log.length || state.log[state.start].position > upTo) {
      if (state.latest.size === 0 && state.floor <= this.forgotten) feeds.delete(feed);
      return;
    }
    const end = firstAfter(state, upTo);
    for (let i = state.start; i < end; i++) {
      const entry = state.log[i];
      if (state.latest.get(entry.resourceId) === entry.position) {
        state.latest.delete(entry.resourceId);
        state.floor = entry.position;
      } else {
        state.stale -= 1;
      }
    }
    state.start = end;
    // Nothing of the feed is left: it keeps only its floor until the forget line passes it, then
    // leaves the index, so aged-out feeds cost no memory.
    if (state.latest.size === 0) {
      if (state.floor <= this.forgotten) feeds.delete(feed);
      else Object.assign(state, { log: [], start: 0, stale: 0 });
    } else {
      this.maybeCompact(state);
    }
  }

  /**
   * A feed's latest position and floor. With no indexed change it changed after the index floor
   * not at all; a cursor at or above its own floor (or without one, the forget line) missed none.
   */
  private bounds(head: IndexHead, feed: string): { max: number; floor: number } {
    const state = this.feeds.get(feed);
    if (state && state.latest.size > 0) return { max: state.max, floor: state.floor };
    return { max: head.floor, floor: state?.floor ?? this.forgotten };
  }

  /** Keeps about one mark per second: enough to trim by age, bounded by the retention. */
  private mark(at: number, position: number): void {
    const last = this.marks[this.marks.length - 1];
    if (last && at - last.at < MARK_EVERY_MS) last.position = position;
    else this.marks.push({ at, position });
  }

  private feedState(feed: string): FeedState {
    let state = this.feeds.get(feed);
    if (!state) {
      const floor = this.forgotten;
      state = { latest: new Map(), log: [], start: 0, stale: 0, max: 0, floor };
      this.feeds.set(feed, state);
    }
    return state;
  }

  private maybeCompact(state: FeedState): void {
    if (state.stale >= COMPACT_MIN_STALE && state.stale > state.latest.size) {
      state.log = state.log
        .slice(state.start)
        .filter((e) => state.latest.get(e.resourceId) === e.position);
      state.start = 0;
      state.stale = 0;
    } else if (state.start >= COMPACT_MIN_STALE && state.start * 2 > state.log.length) {
      state.log = state.log.slice(state.start);
      state.start = 0;
    }
  }
}

function writtenAtOf(batch: AppendBatch): number {
  const at = batch.writtenAt ?? Date.now();
  if (!Number.isFinite(at)) throw new RangeError(`writtenAt must be a finite number, got ${at}`);
  return at;
}

/** Index of the first log entry with a position strictly above `position` (binary search). */
function firstAfter(state: FeedState, position: number): number {
  let lo = state.start;
  let hi = state.log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (state.log[mid].position <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
