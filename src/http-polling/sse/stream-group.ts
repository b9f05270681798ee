import type { Logger } from '@nestjs/common';
import type { PollContext } from '../poll-route-options.interface';
import { responseClosed } from '../response-closed';
import type { FeedCheck, FeedChecker } from '../watch/feed-checker.service';
import { AccessRevokedError } from '../watch/watch.errors';
import type { FeedStream } from './feed-stream';
import { errorPayload } from './stream-errors';
import { encodeEvent } from './sse-writer';
import type { LiveStreamOptions } from './live-stream.metadata';

const KEEP_ALIVE = encodeEvent({ comment: 'keep-alive' });
const SHUTDOWN = encodeEvent({ comment: 'shutdown' });

export interface GroupSettings {
  feed: string;
  feeds: FeedChecker;
  keepAliveMs: number;
  authorize: LiveStreamOptions['authorize'];
  logger: Logger;
}

/**
 * The groups of streams of one route that may share answers (same path, query and aggregator
 * scope), by cursor: a group that reaches a cursor where another one stands joins it. Calls
 * `onEmpty` when its last group is gone, so the channel is forgotten.
 */
export class StreamChannel extends Map<string, StreamGroup> {
  constructor(private readonly onEmpty: () => void) {
    super();
  }

  override delete(cursor: string): boolean {
    const deleted = super.delete(cursor);
    if (deleted && this.size === 0) this.onEmpty();
    return deleted;
  }
}

/**
 * The SSE subscribers of one feed that stand at one cursor and may share answers. The group waits
 * once, reads the index once, runs the handler once and encodes each event once, then writes
 * that Buffer to every member. It waits on one member's watch (the waker): every member was
 * registered before its first index read, so whichever becomes the waker has latched any change
 * since, and nothing is lost when the waker leaves.
 */
export class StreamGroup {
  private readonly members = new Set<FeedStream>();

  private constructor(
    private cursor: string,
    private readonly channel: StreamChannel | null,
    private readonly s: GroupSettings,
  ) {}

  /**
   * Hands a caught-up stream at `cursor` to the group of its channel at that cursor, or to a new
   * group (null channel: a stream that shares with nobody).
   */
  static join(
    stream: FeedStream,
    cursor: string,
    channel: StreamChannel | null,
    s: GroupSettings,
  ): void {
    const existing = channel?.get(cursor);
    if (existing) {
      existing.add(stream);
      return;
    }
    const group = new StreamGroup(cursor, channel, s);
    channel?.set(cursor, group);
    group.add(stream);
    void group.run();
  }

  leave(stream: FeedStream): void {
    this.members.delete(stream);
  }

  private add(stream: FeedStream): void {
    this.members.add(stream);
    stream.group = this;
  }

  private async run(): Promise<void> {
    let look: FeedCheck | null = null;
    try {
      for (;;) {
        const waker = this.waker();
        if (!waker) return;
        if (look === null) {
          const wake = await waker.watch.next(
            Date.now() + this.s.keepAliveMs,
            responseClosed(waker.res),
          );
          if (wake === 'closed') {
            waker.stop(); // its client left (stop is idempotent): another member waits
            this.members.delete(waker);
            continue;
          }
          if (wake === 'timeout') {
            this.writeAll(KEEP_ALIVE);
            continue;
          }
          if (wake === 'shutdown') {
            this.writeAll(SHUTDOWN);
            this.endAll();
            return;
          }
          await this.reauthorize();
          look = await waker.watch.check(this.s.feed, this.decoded());
        }
        look = await this.deliver(look);
        if (!this.members.size) return;
      }
    } catch (error) {
      const { statusCode, message } = errorPayload(error);
      if (statusCode >= 500) this.s.logger.error(error);
      const frame = encodeEvent({
        id: this.cursor,
        type: 'error',
        data: JSON.stringify({ statusCode, message }),
      });
      this.writeAll(frame);
      this.endAll();
    } finally {
      if (this.channel?.get(this.cursor) === this) this.channel.delete(this.cursor);
    }
  }

  /**
   * Sends what one index read found to every member and moves the group on. The next read when
   * more changes wait, else null (wait for a change).
   */
  private async deliver(look: FeedCheck): Promise<FeedCheck | null> {
    if (look.kind === 'none') return null;
    if (look.kind === 'refetch') {
      const data = JSON.stringify({ cursor: look.cursor });
      this.writeAll(encodeEvent({ id: look.cursor, type: 'reset', data }));
      this.moveTo(look.cursor);
      return null;
    }
    const runner = this.waker();
    if (!runner) return null;
    const poll: PollContext = {
      feed: this.s.feed,
      since: this.cursor,
      cursor: look.cursor,
      changedIds: look.changedIds,
      complete: look.complete,
      reason: 'change',
    };
    const body = await runner.runHandler(poll);
    this.writeAll(encodeEvent({ id: look.cursor, data: JSON.stringify(body ?? null) }));
    // Members a burst left over their limit go on alone, at their own pace; after moveTo, as
    // they were sent this event and stand at its cursor (moveTo may hand them to another group).
    const behind = [...this.members].filter((member) => member.behind);
    this.moveTo(look.cursor);
    for (const member of behind) member.fallBehind();
    if (look.complete || !this.members.size) return null;
    return this.waker()!.watch.check(this.s.feed, this.decoded());
  }

  /** The member whose watch the group waits on and whose request runs the handler. */
  private waker(): FeedStream | null {
    for (const member of this.members) return member;
    return null;
  }

  private decoded() {
    return this.s.feeds.decode(this.cursor)!;
  }

  /** The group stands at `cursor` now; where another group of its channel stands, it joins it. */
  private moveTo(cursor: string): void {
    const channel = this.channel;
    const from = this.cursor;
    this.cursor = cursor;
    for (const member of this.members) member.advance(cursor);
    const other = channel?.get(cursor);
    if (other && other !== this) {
      for (const member of this.members) other.add(member);
      this.members.clear();
    } else {
      channel?.set(cursor, this);
    }
    // Last: the channel is never empty in between (it would be forgotten).
    if (from !== cursor && channel?.get(from) === this) channel.delete(from);
  }

  /** `authorize` again for every member after a change: a refused one gets a 403 error event. */
  private async reauthorize(): Promise<void> {
    const authorize = this.s.authorize;
    if (!authorize) return;
    await Promise.all(
      [...this.members].map(async (member) => {
        let refusal: unknown = null;
        try {
          if (!(await authorize(member.req))) refusal = new AccessRevokedError();
        } catch (error) {
          refusal = error;
        }
        if (refusal === null || !this.members.has(member)) return;
        this.members.delete(member);
        member.fail(refusal);
      }),
    );
  }

  private writeAll(frame: Buffer): void {
    for (const member of this.members) member.write(frame);
  }

  private endAll(): void {
    for (const member of this.members) member.end();
    this.members.clear();
  }
}
