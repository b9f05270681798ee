import {
  BeforeApplicationShutdown,
  Injectable,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ChangeBus } from '../change-bus/change-bus.service';
import type { ChangeNotice } from '../change-bus/change-notice.interface';
import { DeadlineBuckets, type Expiring } from './deadline-buckets';

/** Why a held request stopped waiting. */
export type WakeReason = 'change' | 'reset' | 'timeout' | 'shutdown' | 'closed';

/** Ends a wait when the other side is gone (a client that closed its connection). */
export interface ClosedSignal {
  readonly closed: boolean;
  /** Calls `listener` when closed (at most once: a response closes once). */
  onClose(listener: () => void): void;
  /** Stops calling `listener`. */
  offClose(listener: () => void): void;
}

/** Width of a deadline bucket: a wait ends at most this much later than asked. */
const DEADLINE_BUCKET_MS = 100;

let wakes = 0;
/**
 * Orders wake-ups and index reads in one sequence (FeedChecker stamps its reads with it): a waiter
 * woken at tick `w` may share any read stamped after `w`, which started after the change was
 * indexed. Every waiter one notice wakes can thus share one read.
 */
export function nextTick(): number {
  return ++wakes;
}

/** The current tick: reads stamped after it start from now on. */
export function currentTick(): number {
  return wakes;
}

interface Registry {
  forget(held: HeldRequest): void;
  follow(held: HeldRequest, feeds: readonly string[]): void;
  readonly deadlines: DeadlineBuckets<HeldRequest>;
}

/**
 * One held request. It is registered *before* the index is checked, so a change that lands in
 * between is latched and not lost; `wait` then returns at once. Parked cheaply: while it waits it
 * is one promise, a slot in a deadline bucket (no timer of its own) and one close listener.
 */
export class HeldRequest implements Expiring {
  private latched: WakeReason | null = null;
  private resolveWait: ((reason: WakeReason) => void) | null = null;
  private gone: ClosedSignal | null = null;
  /** The deadline bucket of the pending wait. */
  private bucket = 0;
  released = false;
  /**
   * When the change that woke this request was committed (epoch ms, from the bus notice), if the
   * notice said; the first such wake counts. For the commit-to-delivery metric.
   */
  committedAt: number | undefined;
  /** Tick of the last change or reset that woke it (see nextTick). */
  wokeAt = 0;

  constructor(
    /** One feed for a single poll, several for a batch poll. */
    readonly feeds: string[],
    readonly clientKey: string,
    private readonly registry: Registry,
  ) {}

  /**
   * Waits on more feeds from now on (a batch poll registers when admitted, then adds each feed
   * once its route's guards admitted it). Before the first index read of those feeds.
   */
  follow(feeds: readonly string[]): void {
    if (!this.released) this.registry.follow(this, feeds);
  }

  wake(reason: WakeReason, committedAt?: number): void {
    if (reason === 'change' || reason === 'reset') this.wokeAt = nextTick();
    const takes = this.resolveWait !== null || this.latched === null;
    if (reason === 'change' && takes && this.committedAt === undefined) {
      this.committedAt = committedAt;
    }
    if (this.resolveWait) this.finish(reason);
    else if (this.latched === null || reason === 'shutdown') this.latched = reason;
  }

  /** Its deadline bucket's time is up. */
  expire(): void {
    if (this.resolveWait) this.finish('timeout');
  }

  /** Waits up to `ms` for a wake-up; `gone` closing (client left) ends the wait at once. */
  wait(ms: number, gone: ClosedSignal): Promise<WakeReason> {
    if (this.latched !== null) {
      const reason = this.latched;
      this.latched = null;
      return Promise.resolve(reason);
    }
    if (gone.closed) return Promise.resolve('closed');
    if (ms <= 0) return Promise.resolve('timeout');
    this.committedAt = undefined;
    return new Promise<WakeReason>((resolve) => {
      this.resolveWait = resolve;
      this.gone = gone;
      gone.onClose(this.onGone);
      this.bucket = this.registry.deadlines.add(this, ms);
    });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.registry.forget(this);
  }

  /** One listener per request (not per wait): the client left. */
  private readonly onGone = () => this.wake('closed');

  private finish(reason: WakeReason): void {
    const resolve = this.resolveWait!;
    this.resolveWait = null;
    this.registry.deadlines.remove(this, this.bucket);
    this.gone!.offClose(this.onGone);
    this.gone = null;
    resolve(reason);
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
    const held = new HeldRequest([], clientKey, this.registry);
    this.follow(held, feeds);
    this.perClient.set(clientKey, this.heldBy(clientKey) + 1);
    this.heldCount++;
    if (this.stopping) held.wake('shutdown');
    return held;
  }

  private readonly registry: Registry = {
    forget: (held: HeldRequest) => this.forget(held),
    follow: (held: HeldRequest, feeds: readonly string[]) => this.follow(held, feeds),
    deadlines: new DeadlineBuckets<HeldRequest>(DEADLINE_BUCKET_MS),
  };

  /** Deadline timers running now: one per bucket of waits, not one per held request. */
  get timers(): number {
    return this.registry.deadlines.timers;
  }

  private follow(held: HeldRequest, feeds: readonly string[]): void {
    for (const feed of feeds) {
      if (held.feeds.includes(feed)) continue;
      held.feeds.push(feed);
      let waiters = this.byFeed.get(feed);
      if (!waiters) this.byFeed.set(feed, (waiters = new Set()));
      waiters.add(held);
    }
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
