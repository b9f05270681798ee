import type { Logger } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { PollingRequest } from '../polling-request.interface';
import type { PassThrough } from 'node:stream';
import { errorPayload } from '../http-polling/sse/stream-errors';
import type { FeedCursor } from '../http-polling/feed-cursor';
import type { PollContext } from '../http-polling/poll-route-options.interface';
import { responseClosed } from '../http-polling/response-closed';
import type { FeedCheck } from '../http-polling/watch/feed-checker.service';
import type { Watch } from '../http-polling/watch/watch';
import { WatchRefusedError } from '../http-polling/watch/watch.errors';
import type { Reauthorize } from '../http-polling/watch/watch';
import type { StreamBatch } from './durable-stream.metadata';
import { controlEvent, dataEvent, isEmpty } from './stream-response';

/** What one index read found, as a stream read: a snapshot, changes, nothing, or a lost offset. */
export type StreamLook = FeedCheck | { kind: 'snapshot'; cursor: string };

export interface SseSessionSettings {
  feed: string;
  watch: Watch;
  req: PollingRequest;
  /** Node's response (Fastify's `reply.raw`): close detection. */
  res: ServerResponse;
  out: PassThrough;
  base64: boolean;
  closeAfterMs: number;
  keepAliveMs: number;
  authorize?: Reauthorize;
  decode(cursorText: string): FeedCursor;
  encode(cursor: FeedCursor): string;
  offsetOf(cursorText: string): string;
  /** Runs the handler for one read and turns its answer into the stream's content. */
  batch(poll: PollContext, reset: boolean, nextOffset: string): Promise<StreamBatch>;
  /** A `Stream-Cursor` for the next control event. */
  cursor(): string;
  logger: Logger;
}

/**
 * One `live=sse` read (PROTOCOL.md §5.8): a data event per batch of changes, each followed by a
 * control event with the next offset and cursor (`upToDate` once caught up), keep-alive comments
 * in between, and the end after `closeAfterMs` (the client reconnects from its last offset). The
 * watch stays registered for the whole session, so a change while a batch is written is latched
 * for the next wait. An offset the index can no longer follow (a new index generation) restarts
 * the client's state in band: a State Protocol `reset` control message, then the snapshot.
 */
export class SseSession {
  private stopped = false;
  private cursor: FeedCursor | null = null;
  private endDrainWait: (() => void) | null = null;

  constructor(private readonly s: SseSessionSettings) {}

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.s.watch.close();
    this.endDrainWait?.();
    this.s.watch.release();
  }

  /** `since`: the client's offset (null for `-1`); `first`: the first index read after it. */
  async run(first: StreamLook, since: FeedCursor | null): Promise<void> {
    const { watch } = this.s;
    this.cursor = since;
    const deadline = Date.now() + this.s.closeAfterMs;
    try {
      let look: StreamLook = first;
      let initial = true;
      for (;;) {
        if (this.stopped) return;
        const more = await this.send(look, initial);
        initial = false;
        if (this.stopped) return;
        if (!more) {
          const wake = await this.quietWait(deadline);
          if (wake === 'end') return;
        }
        await this.drained(deadline);
        if (this.stopped || Date.now() >= deadline) return;
        const next = await this.read(deadline);
        if (next === 'end') return;
        look = next;
      }
    } catch (error) {
      if (this.stopped) return;
      const { statusCode, message } = errorPayload(error);
      if (statusCode >= 500) this.s.logger.error(error);
      this.write(`event: error\ndata:${JSON.stringify({ statusCode, message })}\n\n`);
    } finally {
      watch.release();
      if (!this.s.out.destroyed) this.s.out.end();
    }
  }

  /**
   * The next index read. While the index is unavailable (Redis down or wiped, until the reader
   * rebuilds it) the stream stays open: it asks again after the refusal's retry time or at the
   * next wake-up (a new generation wakes every waiter), so the client gets the `reset` in band
   * instead of an ended response and a 410 on reconnecting. 'end' at the deadline or close.
   */
  private async read(deadline: number): Promise<StreamLook | 'end'> {
    const { watch, feed } = this.s;
    for (;;) {
      try {
        return await watch.check(feed, this.cursor!);
      } catch (error) {
        if (!(error instanceof WatchRefusedError) || error.reason !== 'index_unavailable') {
          throw error;
        }
        this.write(': index unavailable\n\n');
        const until = Math.min(deadline, Date.now() + error.retryAfterS * 1000);
        const wake = await watch.next(until, responseClosed(this.s.res), this.s.authorize);
        if (this.stopped || wake === 'closed' || wake === 'shutdown') return 'end';
        if (Date.now() >= deadline) return 'end';
      }
    }
  }

  /** Writes what one read found; true when more changes are waiting (read again at once). */
  private async send(look: StreamLook, initial: boolean): Promise<boolean> {
    if (look.kind === 'none') {
      this.cursor = this.s.decode(look.cursor);
      // The first control event says where the client stands, even when nothing is there.
      if (initial) this.control(look.cursor, true);
      return false;
    }
    const nextOffset = this.s.offsetOf(look.cursor);
    const snapshot = look.kind === 'snapshot' || look.kind === 'refetch';
    const poll: PollContext = {
      feed: this.s.feed,
      since: snapshot ? null : this.sinceText(),
      cursor: look.cursor,
      changedIds: look.kind === 'changes' ? look.changedIds : [],
      complete: look.kind === 'changes' ? look.complete : true,
      reason: initial ? 'immediate' : 'change',
    };
    const batch = await this.s.batch(poll, look.kind === 'refetch', nextOffset);
    if (this.stopped) return false;
    this.cursor = this.s.decode(look.cursor);
    if (!isEmpty(batch)) this.write(dataEvent(batch, this.s.base64));
    this.control(look.cursor, poll.complete);
    return !poll.complete;
  }

  private sinceText(): string | null {
    return this.cursor ? this.s.encode(this.cursor) : null;
  }

  private control(cursorText: string, upToDate: boolean): void {
    this.write(
      controlEvent({
        streamNextOffset: this.s.offsetOf(cursorText),
        streamCursor: this.s.cursor(),
        ...(upToDate ? { upToDate: true as const } : {}),
      }),
    );
  }

  /** Waits for a change, with keep-alive comments; 'end' at the deadline, shutdown or close. */
  private async quietWait(deadline: number): Promise<'change' | 'end'> {
    const gone = responseClosed(this.s.res);
    for (;;) {
      const until = Math.min(deadline, Date.now() + this.s.keepAliveMs);
      const wake = await this.s.watch.next(until, gone, this.s.authorize);
      if (this.stopped || wake === 'closed' || wake === 'shutdown') return 'end';
      if (wake !== 'timeout') return 'change';
      if (Date.now() >= deadline) return 'end';
      this.write(': keep-alive\n\n');
    }
  }

  /**
   * While the client is not reading (its buffers full), wait, at most until the session's end:
   * the next index read then covers every change meanwhile, and nothing queues for it in memory.
   */
  private drained(deadline: number): Promise<void> {
    const { out, res } = this.s;
    if (!out.writableNeedDrain || out.destroyed || res.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        out.off('drain', done);
        out.off('close', done);
        res.off('close', done);
        this.endDrainWait = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      out.on('drain', done);
      out.on('close', done);
      res.on('close', done);
      this.endDrainWait = done;
    });
  }

  /** Nest destroys `out` when the client leaves: never write to it then (an error event). */
  private write(text: string): void {
    if (!this.s.out.writableEnded && !this.s.out.destroyed) this.s.out.write(text);
  }
}
