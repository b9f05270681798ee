import { setTimeout as sleep } from 'node:timers/promises';
import { followFeed, followFeeds } from '../../../src/client';

export type FollowMode = 'long' | 'sse' | 'short' | 'batch';

interface FeedChange {
  id: string;
  op: 'upsert' | 'delete';
  row?: { id: string; channel: string };
}

export interface Sightings {
  /** For each delivery by the feed: how many refetches the follower had made before it. */
  changeEpochs: number[];
  /** Times the id came in a reload after a 409. */
  refetches: number;
}

/**
 * One client following one channel through the client SDK, the way an app would: deliveries go to
 * `onChanges`; a 409 (changes missed: index wiped, cursor too old) makes it reload the channel
 * from the list endpoint and go on from that snapshot's `Poll-Cursor`. It records every id it
 * sees and how, for the classification.
 */
export class Follower {
  readonly seen = new Map<string, Sightings>();
  /** Ids delivered for another channel, or as deletions (nothing deletes in this workload). */
  readonly foreign: string[] = [];
  resyncs = 0;
  errors = 0;
  /** What the retried errors were ("503 Retry-After 5", "fetch failed"), counted. */
  readonly errorKinds = new Map<string, number>();
  private reloadedMs = 0;
  private reloadStartedAt: number | null = null;
  fellBack = false;
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();
  private firstAnswer!: Promise<void>;

  constructor(
    readonly name: string,
    readonly channel: string,
    readonly mode: FollowMode,
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  private countError(error: unknown): void {
    this.errors++;
    const kind = error instanceof Error ? error.message : String(error);
    this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
  }

  /** Starts following from the feed's head; resolves once the head answer arrived. */
  start(): Promise<void> {
    let answered!: () => void;
    this.firstAnswer = new Promise((resolve) => (answered = resolve));
    const feed = `${this.baseUrl}/channels/${this.channel}`;
    const common = {
      signal: this.abort.signal,
      headers: { Authorization: `Bearer ${this.apiKey}` },
      onError: (error: unknown) => this.countError(error),
    };
    const following =
      this.mode === 'batch'
        ? followFeeds<{ changes: FeedChange[] }>({
            ...common,
            url: `${this.baseUrl}/poll`,
            feeds: { [`/channels/${this.channel}/changes`]: null },
            onChanges: (_feed, body) => {
              for (const change of body.changes) this.record(change);
              answered();
            },
            onResync: () => this.refetch(),
          })
        : followFeed<{ changes: FeedChange[] }>({
            ...common,
            url: `${feed}/changes`,
            streamUrl: `${feed}/stream`,
            mode: this.mode,
            // The SDK's defaults (wait 25 s, backoff 1–30 s, SSE fallback after 3 failures),
            // except the short poller's longest interval: its default, 30 s, is what the server
            // suggests for a quiet feed, and the feed is quiet when it starts.
            shortPoll: { maxMs: 1000 },
            onFallback: () => (this.fellBack = true),
            onChanges: (body) => {
              for (const change of body.changes) this.record(change);
              answered();
            },
            onResync: () => this.refetch(),
          });
    this.done = following.catch((error: Error) => {
      this.stoppedWith = error;
    });
    return this.firstAnswer;
  }

  /** Set when following stopped on its own (an answer retrying cannot fix). */
  stoppedWith: Error | null = null;

  /**
   * Time spent reloading the channel after 409s so far, the running reload included: the app's
   * own work, which grows with the channel (every row is read again).
   */
  reloadMs(): number {
    const running = this.reloadStartedAt === null ? 0 : Date.now() - this.reloadStartedAt;
    return this.reloadedMs + running;
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }

  private record(change: FeedChange): void {
    if (change.op !== 'upsert' || change.row?.channel !== this.channel) {
      this.foreign.push(change.id);
      return;
    }
    this.sightings(change.id).changeEpochs.push(this.resyncs);
  }

  private sightings(id: string): Sightings {
    let sightings = this.seen.get(id);
    if (!sightings) {
      sightings = { changeEpochs: [], refetches: 0 };
      this.seen.set(id, sightings);
    }
    return sightings;
  }

  /** Reloads the channel page by page; retried until it works, as an app would. */
  private async refetch(): Promise<string> {
    this.resyncs++;
    this.reloadStartedAt = Date.now();
    try {
      for (;;) {
        if (this.abort.signal.aborted) return '';
        try {
          return await this.loadSnapshot();
        } catch {
          this.errors++;
          await sleep(200);
        }
      }
    } finally {
      this.reloadedMs += Date.now() - this.reloadStartedAt;
      this.reloadStartedAt = null;
    }
  }

  private async loadSnapshot(): Promise<string> {
    let after: string | null = null;
    let followFrom: string | null = null;
    const ids: string[] = [];
    do {
      const query = new URLSearchParams({ limit: '200' });
      if (after) query.set('after', after);
      const response = await fetch(`${this.baseUrl}/channels/${this.channel}/messages?${query}`, {
        headers: { Authorization: `Bearer ${this.apiKey}` },
        signal: this.abort.signal,
      });
      if (response.status !== 200) throw new Error(`snapshot answered ${response.status}`);
      // The first page's Poll-Cursor was read before the page: following on from it misses nothing.
      followFrom ??= response.headers.get('poll-cursor');
      const page = (await response.json()) as {
        items: { id: string }[];
        nextCursor: string | null;
      };
      ids.push(...page.items.map((item) => item.id));
      after = page.nextCursor;
    } while (after);
    if (!followFrom) throw new Error('snapshot had no Poll-Cursor header');
    for (const id of ids) this.sightings(id).refetches++;
    return followFrom;
  }
}
