import type { FeedCursor } from '../feed-cursor';
import {
  currentTick,
  type ClosedSignal,
  type HeldRequest,
  type WakeReason,
} from '../held-requests.service';
import type { PollReason } from '../poll-route-options.interface';
import type { FeedCheck, FeedChecker } from './feed-checker.service';
import type { PollingEvents } from './polling-events.service';
import { AccessRevokedError } from './watch.errors';

/** Re-checks access when a held request wakes (the route's `authorize`). */
export type Reauthorize = () => boolean | Promise<boolean>;

/** How a watch ended: something to answer, nothing within the wait, or the client left. */
export type WatchOutcome<T> =
  { kind: 'found'; value: T } | { kind: 'idle'; wake: 'timeout' | 'shutdown' } | { kind: 'closed' };

/**
 * One admitted request following one or more feeds (see FeedWatch.open). When it may be held it
 * was registered before its first index read, so a change that lands in between is latched, not
 * lost. Knows nothing of HTTP: its refusals are typed errors the transport answers.
 */
export class Watch {
  /** Index reads started before this tick (registration, the last wake) are not joined. */
  private mark: number;
  private firstChangeAt: number | undefined;

  constructor(
    private readonly held: HeldRequest | null,
    private readonly checker: FeedChecker,
    private readonly events: PollingEvents,
    /** How wake events name this watch (its tracked feed, or `(batch)`); null: not reported. */
    private readonly label: string | null,
  ) {
    this.mark = currentTick();
  }

  get holds(): boolean {
    return this.held !== null;
  }

  /** Commit time (epoch ms) of the first change that woke this watch, if the notice said. */
  get committedAt(): number | undefined {
    return this.firstChangeAt;
  }

  /**
   * Also waits on `feeds` from now on, registered before their first index read. Reads started
   * before this are not joined: a change between such a read and this registration would be lost.
   */
  follow(feeds: readonly string[]): void {
    this.held?.follow(feeds);
    this.mark = currentTick();
  }

  head(feed: string): Promise<string> {
    return this.checker.head(feed);
  }

  check(feed: string, since: FeedCursor): Promise<FeedCheck> {
    // A request that is not held may share any read in flight; a held one only fresh reads.
    return this.checker.check(feed, since, this.held ? this.mark : -1);
  }

  /**
   * Waits until a change, the deadline, shutdown or `gone` closing. After a change (or a reset)
   * `authorize` runs again and a refusal is an AccessRevokedError.
   */
  next(deadline: number, gone: ClosedSignal, authorize?: Reauthorize): Promise<WakeReason> {
    if (!this.held) return Promise.resolve('timeout');
    // No async function here: a held request parks as its HeldRequest's promise alone.
    return this.held.wait(deadline - Date.now(), gone).then((wake) => this.woke(wake, authorize));
  }

  private woke(wake: WakeReason, authorize?: Reauthorize): WakeReason | Promise<WakeReason> {
    const held = this.held!;
    if (this.label !== null) this.events.emit({ type: 'wake', feed: this.label, reason: wake });
    if (wake !== 'change' && wake !== 'reset') return wake;
    // The tick of the wake itself, not of now: every waiter one notice woke shares the first
    // read started after it, however late each of them resumes.
    this.mark = held.wokeAt;
    if (wake === 'change') this.firstChangeAt ??= held.committedAt;
    if (!authorize) return wake;
    return Promise.resolve(authorize()).then((allowed) => {
      if (!allowed) throw new AccessRevokedError();
      return wake;
    });
  }

  /**
   * The hold loop of a poll: `look` until it finds something to answer, waiting for a change in
   * between (at most `waitMs` in all). Releases the watch when done.
   */
  async until<T>(
    look: (reason: PollReason) => Promise<T | null>,
    waitMs: number,
    gone: ClosedSignal,
    authorize?: Reauthorize,
  ): Promise<WatchOutcome<T>> {
    const deadline = Date.now() + waitMs;
    let reason: PollReason = 'immediate';
    try {
      for (;;) {
        const found = await look(reason);
        if (found !== null) return { kind: 'found', value: found };
        if (!this.held) return { kind: 'idle', wake: 'timeout' };
        const wake = await this.next(deadline, gone, authorize);
        if (wake === 'closed') return { kind: 'closed' };
        if (wake === 'timeout' || wake === 'shutdown') return { kind: 'idle', wake };
        reason = 'change';
      }
    } finally {
      this.release();
    }
  }

  /** Wakes a pending `next` as if the client left (a stream that was unsubscribed). */
  close(): void {
    this.held?.wake('closed');
  }

  release(): void {
    this.held?.release();
  }
}
