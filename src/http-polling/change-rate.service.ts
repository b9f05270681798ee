import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ChangeBus } from '../change-bus/change-bus.service';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';

const MAX_FEEDS = 10_000;
const SMOOTHING = 0.2;

/**
 * Recent change rate per feed, for the Poll-Interval hint: a feed that changes every 3 s suggests
 * polling about every 3 s, within the configured bounds; a quiet feed suggests the maximum.
 */
@Injectable()
export class ChangeRate implements OnModuleInit, OnModuleDestroy {
  private readonly feeds = new Map<string, { last: number; gapMs: number | null }>();
  private subscription: Subscription | null = null;

  constructor(
    private readonly bus: ChangeBus,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
  ) {}

  onModuleInit(): void {
    this.subscription = this.bus.notices$.subscribe((notice) => {
      if (notice.kind !== 'changes') return;
      const now = Date.now();
      for (const feed of notice.feeds) this.record(feed, now);
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  /** Suggested seconds until the next short poll of `feed`. */
  hintSeconds(feed: string): number {
    const { min, max } = this.options.http.pollIntervalS;
    const gap = this.feeds.get(feed)?.gapMs;
    if (gap === null || gap === undefined) return max;
    return Math.min(max, Math.max(min, Math.round(gap / 1000)));
  }

  private record(feed: string, now: number): void {
    const seen = this.feeds.get(feed);
    if (!seen) {
      if (this.feeds.size >= MAX_FEEDS) this.feeds.delete(this.feeds.keys().next().value as string);
      this.feeds.set(feed, { last: now, gapMs: null });
      return;
    }
    const gap = now - seen.last;
    seen.gapMs = seen.gapMs === null ? gap : seen.gapMs + SMOOTHING * (gap - seen.gapMs);
    seen.last = now;
  }
}
