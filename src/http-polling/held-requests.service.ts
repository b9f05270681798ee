import {
  BeforeApplicationShutdown,
  Injectable,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ChangeBus } from '../change-bus/change-bus.service';
import type { ChangeNotice } from '../change-bus/change-notice.interface';

/** Why a held request stopped waiting. */
export type WakeReason = 'change' | 'reset' | 'timeout' | 'shutdown' | 'closed';

/** Ends a wait when the other side is gone (a client that closed its connection). */
export interface ClosedSignal {
  readonly closed: boolean;
  /** Calls `listener` once when closed; returns the function that stops listening. */
  onClose(listener: () => void): () => void;
}

/** Longest timer Node runs as asked; anything longer fires after 1 ms (DESIGN.md §4). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One held request. It is registered *before* the index is checked, so a change that lands in
 * between is latched and not lost; `wait` then returns at once.
 */
export class HeldRequest {
  private latched: WakeReason | null = null;
  private resolveWait: ((reason: WakeReason) => void) | null = null;
  released = false;
  /**
   * When the change that woke this request was committed (epoch ms, from the bus notice), if the
   * notice said; the first such wake counts. For the commit-to-delivery metric.
   */
  committedAt: number | undefined;

  constructor(
    /** One feed for a single poll, several for a batch poll. */
    readonly feeds: readonly string[],
    readonly clientKey: string,
    private readonly onRelease: (held: HeldRequest) => void,
  ) {}

  wake(reason: WakeReason, committedAt?: number): void {
    const takes = this.resolveWait !== null || this.latched === null;
    if (reason === 'change' && takes && this.committedAt === undefined) {
      this.committedAt = committedAt;
    }
    if (this.resolveWait) this.resolveWait(reason);
    else if (this.latched === null || reason === 'shutdown') this.latched = reason;
  }

  /** Waits up to `ms` for a wake-up; `gone` closing (client left) ends the wait at once. */
  wait(ms: number, gone: ClosedSignal): Promise<WakeReason> {
    if (this.latched !== null) {
      const reason = this.latched;
      this.latched = null;
      return Promise.resolve(reason);
    }
    if (gone.closed) return Promise.resolve('closed');
    this.committedAt = undefined;
    return new Promise<WakeReason>((resolve) => {
      const finish = (reason: WakeReason) => {
        clearTimeout(timer);
        stopListening();
        this.resolveWait = null;
        resolve(reason);
      };
      const timer = setTimeout(() => finish('timeout'), Math.min(Math.max(0, ms), MAX_TIMER_MS));
      const stopListening = gone.onClose(() => finish('closed'));
      this.resolveWait = finish;
    });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
  }
}

/**
 * Every held request of this process, by feed, so a notice wakes only the waiters of its feeds.
 * One bus subscription for all of them: a notice costs O(waiters of the feed), not O(all).
 */
@Injectable()
export class HeldRequests implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly byFeed = new Map<string, Set<HeldRequest>>();
  private readonly perClient = new Map<string, number>();
  private heldCount = 0;
  private stopping = false;
  private subscription: Subscription | null = null;

  constructor(private readonly bus: ChangeBus) {}

  onModuleInit(): void {
    this.subscription = this.bus.notices$.subscribe((notice) => this.dispatch(notice));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  /** Answer every held request now (their handlers reply 204), and refuse new holds. */
  beforeApplicationShutdown(): void {
    this.stopping = true;
    this.wakeAll('shutdown');
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Requests held right now in this process. */
  get size(): number {
    return this.heldCount;
  }

  /** Feeds with at least one waiter (a leak shows up here). */
  get feedCount(): number {
    return this.byFeed.size;
  }

  /** Held requests per feed (full feed names); a batch poll counts under each of its feeds. */
  countsByFeed(): Map<string, number> {
    return new Map([...this.byFeed].map(([feed, waiters]) => [feed, waiters.size]));
  }

  heldBy(clientKey: string): number {
    return this.perClient.get(clientKey) ?? 0;
  }

  register(feeds: readonly string[], clientKey: string): HeldRequest {
    const held = new HeldRequest(feeds, clientKey, (h) => this.forget(h));
    for (const feed of feeds) {
      let waiters = this.byFeed.get(feed);
      if (!waiters) this.byFeed.set(feed, (waiters = new Set()));
      waiters.add(held);
    }
    this.perClient.set(clientKey, this.heldBy(clientKey) + 1);
    this.heldCount++;
    if (this.stopping) held.wake('shutdown');
    return held;
  }

  private forget(held: HeldRequest): void {
    for (const feed of held.feeds) {
      const waiters = this.byFeed.get(feed);
      if (waiters?.delete(held) && waiters.size === 0) this.byFeed.delete(feed);
    }
    const count = this.heldBy(held.clientKey) - 1;
    if (count > 0) this.perClient.set(held.clientKey, count);
    else this.perClient.delete(held.clientKey);
    this.heldCount--;
  }

  private dispatch(notice: ChangeNotice): void {
    if (notice.kind === 'wake-all') {
      this.wakeAll(notice.reason === 'shutdown' ? 'shutdown' : 'reset');
      return;
    }
    for (const feed of notice.feeds) {
      const waiters = this.byFeed.get(feed);
      if (waiters) for (const held of waiters) held.wake('change', notice.committedAt);
    }
  }

  private wakeAll(reason: WakeReason): void {
    // A batch waiter sits under several feeds; waking it twice is harmless (first reason wins).
    for (const waiters of this.byFeed.values()) for (const held of waiters) held.wake(reason);
  }
}
