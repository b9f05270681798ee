import { HttpException, Injectable, Logger } from '@nestjs/common';
import {
  InjectChangeIndex,
  type ChangeIndex,
  type FeedChanges,
} from '../../change-index/change-index.interface';
import { ThrottledWarning } from '../../logging/throttled-warning';
import { InjectPollingOptions } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import { FeedCursorCodec, type FeedCursor } from '../feed-cursor';
import { PollingEvents } from './polling-events.service';
import { WatchRefusedError } from './watch.errors';

/** What the index says about one feed after one cursor. */
export type FeedCheck =
  | { kind: 'changes'; cursor: string; changedIds: string[]; complete: boolean }
  | { kind: 'none'; cursor: string }
  | { kind: 'refetch'; cursor: string; reason: string };

interface Reading {
  /** Read order: a waiter joins only reads that started after it registered or woke. */
  seq: number;
  answer: Promise<FeedChanges>;
}

/**
 * The index questions every transport asks: where a feed's head is, and what changed after a
 * cursor. An unreachable or wiped index is a WatchRefusedError with its retry time, never a 500.
 */
@Injectable()
export class FeedChecker {
  private readonly logger = new Logger('FeedChecker');
  /** Fires per request while the index is down: at most one line per 10 s. */
  private readonly indexWarning = new ThrottledWarning(this.logger);
  private readonly reading = new Map<string, Reading>();
  private started = 0;

  constructor(
    @InjectChangeIndex() private readonly index: ChangeIndex,
    private readonly codec: FeedCursorCodec,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly events: PollingEvents,
  ) {}

  /** Reads started so far: a waiter notes it when it registers or wakes (see `check`). */
  get mark(): number {
    return this.started;
  }

  encode(cursor: FeedCursor): string {
    return this.codec.encode(cursor);
  }

  decode(text: string): FeedCursor | null {
    return this.codec.decode(text);
  }

  /** The feed's current cursor (its latest position): one index read, no Postgres. */
  async head(feed: string): Promise<string> {
    const position = await this.call(() => this.index.feedPosition(feed));
    if (position.kind === 'unavailable') this.unavailable();
    return this.codec.encode(position);
  }

  /**
   * What changed after `since`. Concurrent checks of one (feed, cursor) share one index read, but
   * only a read that started after `joinAfter` (a waiter's mark): an older read may have been
   * answered before the change that woke the waiter, which would then sleep through it.
   */
  async check(feed: string, since: FeedCursor, joinAfter = -1): Promise<FeedCheck> {
    const answer = await this.call(() => this.changesSince(feed, since, joinAfter));
    if (answer.kind === 'unavailable') this.unavailable();
    const cursor = this.codec.encode({
      generation: answer.generation,
      position: answer.feedPosition,
    });
    if (answer.kind === 'refetch') return { kind: 'refetch', cursor, reason: answer.reason };
    if (answer.changed.length === 0) return { kind: 'none', cursor };
    return {
      kind: 'changes',
      cursor,
      changedIds: answer.changed.map((c) => c.resourceId),
      complete: answer.complete,
    };
  }

  /**
   * One index read per (feed, cursor) at a time: when a change wakes a thousand waiters that hold
   * the same cursor, they share one read.
   */
  private changesSince(feed: string, since: FeedCursor, joinAfter: number): Promise<FeedChanges> {
    const key = `${feed}\n${since.generation}\n${since.position}`;
    const current = this.reading.get(key);
    if (current && current.seq > joinAfter) return current.answer;
    const limit = this.options.http.maxChangesPerResponse;
    const reading: Reading = {
      seq: ++this.started,
      answer: this.index.changesSince(feed, since.generation, since.position, limit).finally(() => {
        if (this.reading.get(key) === reading) this.reading.delete(key);
      }),
    };
    this.reading.set(key, reading);
    return reading.answer;
  }

  private async call<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof HttpException) throw error;
      this.indexWarning.warn(`change index unavailable: ${(error as Error).message}`);
      this.unavailable();
    }
  }

  private unavailable(): never {
    this.events.emit({ type: 'rejected', reason: 'index_unavailable' });
    // A wiped or unreachable index is transient: the reader checks it every backstop interval and
    // rebuilds it, so ask again after that interval, not after the overload pause.
    const { backstopMs } = this.options.reader;
    const retryAfterS = Math.min(this.options.http.retryAfterS, Math.ceil(backstopMs / 1000));
    throw new WatchRefusedError(
      'index_unavailable',
      Math.max(1, retryAfterS),
      'the change index is not available; retry later',
    );
  }
}
