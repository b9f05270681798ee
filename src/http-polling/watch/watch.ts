import type { FeedCursor } from '../feed-cursor';
import type { ClosedSignal, HeldRequest, WakeReason } from '../held-requests.service';
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
  /** Index reads started before this (and before the last wake) are not joined. */
  private mark: number;
  private firstChangeAt: number | undefined;

  constructor(
    private readonly held: HeldRequest | null,
    private readonly checker: FeedChecker,
    private readonly events: PollingEvents,
    /** How wake events name this watch (its tracked feed, or `(batch)`); null: not reported. */
    private readonly label: string | null,
  ) {
    this.mark = checker.mark;
  }

  get holds(): boolean {
    return this.held !== null;
  }

  /** Commit time (epoch ms) of the first change that woke this watch, if the notice said. */
  get committedAt(): number | undefined {
    return this.firstChangeAt;
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
  async next(deadline: number, gone: ClosedSignal, authorize?: Reauthorize): Promise<WakeReason> {
    if (!this.held) return 'timeout';
    const wake = await this.held.wait(deadline - Date.now(), gone);
    if (this.label !== null) this.events.emit({ type: 'wake', feed: this.label, reason: wake });
    if (wake === 'change' || wake === 'reset') {
      this.mark = this.checker.mark;
      if (wake === 'change') this.firstChangeAt ??= this.held.committedAt;
      if (authorize && !(await authorize())) throw new AccessRevokedError();
    }
    return wake;
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
