import type { ChangeNotice } from '../../change-bus/change-notice.interface';
import type { FeedPosition } from '../../change-index/change-index.interface';

/** Feeds remembered at most; beyond it the oldest entry goes (partitioned feeds can be many). */
const MAX_FEEDS = 10_000;

/** Whether notices of every index write reach this process now, and since which link change. */
export interface NoticeLink {
  /** True while no index write can happen without a notice reaching this process. */
  readonly complete: boolean;
  /** Changes whenever the link went down or up. */
  readonly epoch: number;
}

interface Entry {
  cursor: string;
  generation: string;
  epoch: number;
  storedAt: number;
}

/** Taken before an index read; the answer is stored only if nothing was invalidated since. */
export interface HeadTicket {
  version: number;
  epoch: number;
}

/** One index read of a feed's head in flight, and when it started. */
export interface HeadRead {
  ticket: HeadTicket;
  answer: Promise<FeedPosition>;
}

/**
 * Each feed's head cursor between index writes, so the 304 path needs no index round trip. Every
 * index write is followed by a bus notice in every process (the writer's own at once, the others'
 * through pub/sub): a notice drops the feeds it names, a reset or trim drops everything. Nothing
 * is stored or served while the link is incomplete (the pub/sub subscription is down), and an
 * entry lives at most `maxAgeMs`, which bounds what an undetected loss (a half-open subscriber
 * socket) or a flushed store could keep stale to the reader's own backstop.
 */
export class FeedHeadCache {
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, HeadRead>();
  /** Bumped by every invalidation: a read that started before one is not stored. */
  private version = 0;

  constructor(
    private readonly link: NoticeLink,
    private readonly maxAgeMs: number,
  ) {}

  get(feed: string, now = Date.now()): string | undefined {
    const entry = this.entries.get(feed);
    if (!entry) return undefined;
    const old = now - entry.storedAt >= this.maxAgeMs;
    if (!this.link.complete || entry.epoch !== this.link.epoch || old) {
      this.entries.delete(feed);
      return undefined;
    }
    return entry.cursor;
  }

  /**
   * The read of `feed`'s head in flight, or `load` started now. A read is shared only while
   * nothing was invalidated since it started (a miss, e.g. when an entry ages out under load,
   * costs one read, not one per waiting request), so no request joins a read older than a notice.
   */
  read(feed: string, load: () => Promise<FeedPosition>): HeadRead {
    const current = this.reading.get(feed);
    if (current && this.valid(current.ticket)) return current;
    const read: HeadRead = {
      ticket: { version: this.version, epoch: this.link.epoch },
      answer: load().finally(() => {
        if (this.reading.get(feed) === read) this.reading.delete(feed);
      }),
    };
    this.reading.set(feed, read);
    return read;
  }

  /** Keeps a head read under `ticket`, unless a notice or a link change came in between. */
  store(feed: string, ticket: HeadTicket, generation: string, cursor: string): void {
    if (!this.valid(ticket)) return;
    this.entries.delete(feed); // re-inserted last: the oldest entry is the first in the map
    if (this.entries.size >= MAX_FEEDS) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(feed, { cursor, generation, epoch: ticket.epoch, storedAt: Date.now() });
  }

  /** Applies a bus notice; runs before any waiter the notice wakes gets to read the index. */
  apply(notice: ChangeNotice): void {
    this.version++;
    if (notice.kind === 'wake-all' || notice.trimmed) {
      this.entries.clear();
      return;
    }
    // Of another generation (one started and its reset is still on the way): nothing stands.
    const first = this.entries.values().next().value;
    if (first && first.generation !== notice.generation) {
      this.entries.clear();
      return;
    }
    for (const feed of notice.feeds) this.entries.delete(feed);
  }

  private valid(ticket: HeadTicket): boolean {
    return (
      ticket.version === this.version && ticket.epoch === this.link.epoch && this.link.complete
    );
  }

  get size(): number {
    return this.entries.size;
  }
}
