import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
import type { WakeReason } from '../held-requests.service';
import type { RejectReason } from './watch.errors';

/** How a poll was asked: `wait=0`/`@Poll` (short), held (long), a list page, or a batch poll. */
export type PollKind = 'short' | 'long' | 'snapshot' | 'batch';

/** What the hold core and its transports report; metrics (or anything else) may observe it. */
export type PollingEvent =
  | { type: 'rejected'; reason: RejectReason }
  /** A held request stopped waiting; `feed` is its tracked feed (`(batch)` for a batch poll). */
  | { type: 'wake'; feed: string; reason: WakeReason }
  /**
   * A poll response finished. `committedAt`: the commit time of the change that woke it (epoch
   * ms), when a change did.
   */
  | { type: 'responded'; feed: string; kind: PollKind; status: number; committedAt?: number }
  /**
   * An SSE subscriber was dropped: its connection held `bufferedBytes` unsent (above
   * `http.sse.maxBufferedBytes`) when the next event was due. `feed`: its tracked feed.
   */
  | { type: 'dropped'; feed: string; bufferedBytes: number };

/**
 * The core's event stream. Emitting costs nothing while nobody observes (metrics off), so hot
 * paths ask `observed` before building an event.
 */
@Injectable()
export class PollingEvents {
  private readonly subject = new Subject<PollingEvent>();
  readonly events$ = this.subject.asObservable();

  get observed(): boolean {
    return this.subject.observed;
  }

  emit(event: PollingEvent): void {
    if (this.subject.observed) this.subject.next(event);
  }
}
