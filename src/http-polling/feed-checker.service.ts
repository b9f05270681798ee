import {
  HttpException,
  Inject,
  Injectable,
  Logger,
  ServiceUnavailableException,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  CHANGE_INDEX,
  type ChangeIndex,
  type FeedChanges,
} from '../change-index/change-index.interface';
import { ThrottledWarning } from '../logging/throttled-warning';
import { PollingMetrics } from '../metrics/polling-metrics.service';
import { POLLING_RESOLVED_OPTIONS } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { FeedCursorCodec, type FeedCursor } from './feed-cursor';
import { readPartition } from './poll-request.parser';
import type { PollRouteMetadata } from './poll-route-options.interface';

/** What the index says about one feed after one cursor. */
export type FeedCheck =
  | { kind: 'changes'; cursor: string; changedIds: string[]; complete: boolean }
  | { kind: 'none'; cursor: string }
  | { kind: 'refetch'; cursor: string; reason: string };

/**
 * The feed-side questions both the single and the batch poll ask: which feed a request follows,
 * where its head is, and what changed after a cursor. Index failures become 503, never 500.
 */
@Injectable()
export class FeedChecker {
  private readonly logger = new Logger('FeedChecker');
  /** Fires per request while the index is down: at most one line per 10 s. */
  private readonly indexWarning = new ThrottledWarning(this.logger);
  private readonly partitioned: Map<string, boolean>;
  private readonly reading = new Map<string, Promise<FeedChanges>>();

  constructor(
    @Inject(CHANGE_INDEX) private readonly index: ChangeIndex,
    private readonly codec: FeedCursorCodec,
    @Inject(POLLING_RESOLVED_OPTIONS) private readonly options: ResolvedOptions,
    private readonly metrics: PollingMetrics,
  ) {
    this.partitioned = new Map(options.tables.map((t) => [t.feed, t.partition !== null]));
  }

  /** The full feed name of a request, e.g. `messages:general`. */
  feedOf(route: PollRouteMetadata, req: Request): string {
    if (!this.partitioned.get(route.feed)) return route.feed;
    return `${route.feed}:${readPartition(req, route.partition!)}`;
  }

  encode(cursor: FeedCursor): string {
    return this.codec.encode(cursor);
  }

  decode(text: string): FeedCursor | null {
    return this.codec.decode(text);
  }

  /** The feed's current cursor (its latest position): one index read, no Postgres. */
  async head(feed: string, res: Response): Promise<string> {
    const position = await this.call(() => this.index.feedPosition(feed), res);
    if (position.kind === 'unavailable') this.unavailable(res);
    return this.codec.encode(position);
  }

  async check(feed: string, since: FeedCursor, res: Response): Promise<FeedCheck> {
    const answer = await this.call(() => this.changesSince(feed, since), res);
    if (answer.kind === 'unavailable') this.unavailable(res);
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
  private changesSince(feed: string, since: FeedCursor): Promise<FeedChanges> {
    const key = `${feed}\n${since.generation}\n${since.position}`;
    let reading = this.reading.get(key);
    if (!reading) {
      const limit = this.options.http.maxChangesPerResponse;
      reading = this.index
        .changesSince(feed, since.generation, since.position, limit)
        .finally(() => this.reading.delete(key));
      this.reading.set(key, reading);
    }
    return reading;
  }

  private async call<T>(read: () => Promise<T>, res: Response): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof HttpException) throw error;
      this.indexWarning.warn(`change index unavailable: ${(error as Error).message}`);
      this.unavailable(res);
    }
  }

  unavailable(res: Response): never {
    this.metrics.rejected('index_unavailable');
    // A wiped or unreachable index is transient: the reader checks it every backstop interval and
    // rebuilds it, so ask again after that interval, not after the overload pause.
    const { backstopMs } = this.options.reader;
    const retryAfterS = Math.min(this.options.http.retryAfterS, Math.ceil(backstopMs / 1000));
    res.setHeader('Retry-After', String(Math.max(1, retryAfterS)));
    throw new ServiceUnavailableException('the change index is not available; retry later');
  }
}
