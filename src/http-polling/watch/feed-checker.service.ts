import { HttpException, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ChangeBus } from '../../change-bus/change-bus.service';
import {
  InjectChangeIndex,
  type ChangeIndex,
  type FeedChanges,
} from '../../change-index/change-index.interface';
import { ThrottledWarning } from '../../logging/throttled-warning';
import { InjectPollingOptions } from '../../polling.tokens';
import type { ResolvedOptions } from '../../resolve-options';
import { FeedCursorCodec, type FeedCursor } from '../feed-cursor';
import { FeedHeadCache, type NoticeLink } from './feed-head-cache';
import { PollingEvents } from './polling-events.service';
import { WatchRefusedError } from './watch.errors';
import { nextTick } from '../held-requests.service';

/** What the index says about one feed after one cursor. */
export type FeedCheck =
  | { kind: 'changes'; cursor: string; changedIds: string[]; complete: boolean }
  | { kind: 'none'; cursor: string }
  | { kind: 'refetch'; cursor: string; reason: string };

/** An index read that failed: each caller turns it into its own refusal. */
const UNAVAILABLE = 'unavailable' as const;

interface Reading {
  /** Read order (a tick): a waiter joins only reads that started after it registered or woke. */
  seq: number;
  answer: Promise<FeedCheck | typeof UNAVAILABLE>;
}

/**
 * The index questions every transport asks: where a feed's head is, and what changed after a
 * cursor. An unreachable or wiped index is a WatchRefusedError with its retry time, never a 500.
 */
@Injectable()
export class FeedChecker implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('FeedChecker');
  /** Fires per request while the index is down: at most one line per 10 s. */
  private readonly indexWarning = new ThrottledWarning(this.logger);
  private readonly reading = new Map<string, Reading>();
  private subscription: Subscription | null = null;
  private readonly heads: FeedHeadCache;

  constructor(
    @InjectChangeIndex() private readonly index: ChangeIndex,
    private readonly codec: FeedCursorCodec,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly events: PollingEvents,
    private readonly bus: ChangeBus,
  ) {
    // Notices of every index write reach this process (a shared index's only while linked).
    const subscribed = () => this.subscription !== null;
    const link: NoticeLink = {
      get complete() {
        return subscribed() && (!index.shared || bus.linked);
      },
      get epoch() {
        return bus.linkEpoch;
      },
    };
    // At most one backstop interval: the bound the reader itself keeps on a missed wake-up.
    this.heads = new FeedHeadCache(link, options.reader.backstopMs);
  }

  onModuleInit(): void {
    this.subscription = this.bus.notices$.subscribe((notice) => this.heads.apply(notice));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
  }

  encode(cursor: FeedCursor): string {
    return this.codec.encode(cursor);
  }

  decode(text: string): FeedCursor | null {
    return this.codec.decode(text);
  }

  /**
   * The feed's current cursor (its latest position): cached between index writes (see
   * FeedHeadCache), else one index read, no Postgres.
   */
  async head(feed: string): Promise<string> {
    const cached = this.heads.get(feed);
    if (cached !== undefined) return cached;
    const read = this.heads.read(feed, () => this.index.feedPosition(feed));
    const position = await this.call(() => read.answer);
    if (position.kind === 'unavailable') this.unavailable();
    const cursor = this.codec.encode(position);
    this.heads.store(feed, read.ticket, position.generation, cursor);
    return cursor;
  }

  /**
   * What changed after `since`. Concurrent checks of one (feed, cursor) share one index read, but
   * only a read that started after `joinAfter` (a waiter's mark): an older read may have been
   * answered before the change that woke the waiter, which would then sleep through it.
   */
  async check(feed: string, since: FeedCursor, joinAfter = -1): Promise<FeedCheck> {
    const check = await this.changesSince(feed, since, joinAfter);
    if (check === UNAVAILABLE) this.unavailable();
    // Each caller gets its own list of ids: a handler may sort or splice it.
    return check.kind === 'changes' ? { ...check, changedIds: check.changedIds.slice() } : check;
  }

  /**
   * One index read per (feed, cursor) at a time, and one answer made of it: when a change wakes a
   * thousand waiters that hold the same cursor, they share one read and its FeedCheck.
   */
  private changesSince(
    feed: string,
    since: FeedCursor,
    joinAfter: number,
  ): Promise<FeedCheck | typeof UNAVAILABLE> {
    const key = `${feed}\n${since.generation}\n${since.position}`;
    const current = this.reading.get(key);
    if (current && current.seq > joinAfter) return current.answer;
    const limit = this.options.http.maxChangesPerResponse;
    const reading: Reading = {
      seq: nextTick(),
      answer: Promise.resolve()
        .then(() => this.index.changesSince(feed, since.generation, since.position, limit))
        .then(
          (answer) => this.toCheck(answer),
          (error: unknown) => {
            if (error instanceof HttpException) throw error;
            this.indexWarning.warn(`change index unavailable: ${(error as Error).message}`);
            return UNAVAILABLE;
          },
        )
        .finally(() => {
          if (this.reading.get(key) === reading) this.reading.delete(key);
        }),
    };
    this.reading.set(key, reading);
    return reading.answer;
  }

  private toCheck(answer: FeedChanges): FeedCheck | typeof UNAVAILABLE {
    if (answer.kind === 'unavailable') return UNAVAILABLE;
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
