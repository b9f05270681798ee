import { Injectable } from '@nestjs/common';
import { HeldRequests } from '../held-requests.service';
import { PollAdmission } from '../poll-admission.service';
import { FeedChecker } from './feed-checker.service';
import { PollingEvents } from './polling-events.service';
import { Watch } from './watch';

export interface WatchSpec {
  /** Who asks (the per-client limits key on it). */
  clientKey: string;
  /** Full feed names the request waits on. */
  feeds: readonly string[];
  /** True when the request may be held: the held limits apply and it is registered. */
  holds: boolean;
  /** How wake events name it (a tracked feed, `(batch)`); null: not reported. */
  label: string | null;
}

/**
 * The one hold core under every transport (@Poll/@LongPoll, the batch poll, @LiveStream):
 * admission, registration before the first index read, the reads, the wait, re-authorization on
 * wake and release. Transports parse the request, run handlers and write answers.
 */
@Injectable()
export class FeedWatch {
  constructor(
    private readonly admission: PollAdmission,
    private readonly held: HeldRequests,
    private readonly checker: FeedChecker,
    private readonly events: PollingEvents,
  ) {}

  /**
   * Admits the request and registers it as a waiter, with no await in between: concurrent opens
   * can never exceed the held limits. Throws WatchRefusedError when a limit or shutdown refuses.
   */
  open(spec: WatchSpec): Watch {
    this.admission.admit(spec.clientKey, spec.holds);
    const held = spec.holds ? this.held.register(spec.feeds, spec.clientKey) : null;
    return new Watch(held, this.checker, this.events, spec.label);
  }
}
