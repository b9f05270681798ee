import { HttpException, type Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { FeedCursor } from '../feed-cursor';
import type { PollContext, PollReason } from '../poll-route-options.interface';
import { responseClosed } from '../response-closed';
import type { FeedCheck, FeedChecker } from '../watch/feed-checker.service';
import { toHttpError } from '../watch-http';
import type { LiveStreamOptions, StreamStart } from './live-stream.metadata';
import type { StreamEvent } from './sse-writer';

export interface FeedStreamSettings {
  start: StreamStart;
  feeds: FeedChecker;
  req: Request;
  res: Response;
  keepAliveMs: number;
  authorize: LiveStreamOptions['authorize'];
  runHandler(poll: PollContext): Promise<unknown>;
  emit(event: StreamEvent): void;
  logger: Logger;
}

/**
 * One SSE client following one feed. The waiter was registered before the first index read and
 * stays registered for the whole stream, so a change that lands while the handler runs or an
 * event is written is latched and picked up by the next wait. Between events it sends a
 * keep-alive comment after `keepAliveMs` of silence; a client that reads slowly gets fewer,
 * larger events (the next index read waits until the socket drains).
 */
export class FeedStream {
  private stopped = false;
  private cursor: FeedCursor | null;
  private endDrainWait: (() => void) | null = null;

  constructor(private readonly s: FeedStreamSettings) {
    this.cursor = s.start.since;
  }

  /** The client left (or Nest unsubscribed): end every wait at once and free the held slot. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.s.start.watch.close();
    this.endDrainWait?.();
    this.s.start.watch.release();
  }

  /** Resolves when the stream is over: the client left, shutdown, an error event was sent. */
  async run(): Promise<void> {
    const { watch } = this.s.start;
    try {
      this.s.emit({ comment: 'connected' });
      let look: FeedCheck | { kind: 'head'; cursor: string } = this.s.start.first;
      let reason: PollReason = 'immediate';
      for (;;) {
        if (this.stopped) return;
        const more = await this.send(look, reason);
        if (this.stopped) return;
        if (!more) {
          const wake = await this.quietWait();
          if (wake === 'end') return;
          reason = 'change';
        }
        await this.drained();
        if (this.stopped) return;
        look = await watch.check(this.s.start.feed, this.cursor!);
      }
    } catch (error) {
      if (this.stopped) return;
      const { statusCode, message } = errorPayload(error);
      if (statusCode >= 500) this.s.logger.error(error);
      this.fail(statusCode, message);
    } finally {
      watch.release();
    }
  }

  /** Sends what one index read found; true when more changes are waiting (read again at once). */
  private async send(
    look: FeedCheck | { kind: 'head'; cursor: string },
    reason: PollReason,
  ): Promise<boolean> {
    if (look.kind === 'none') return false;
    if (look.kind === 'refetch') {
      this.advance(look.cursor);
      this.s.emit({
        id: look.cursor,
        type: 'reset',
        data: JSON.stringify({ cursor: look.cursor }),
      });
      return false;
    }
    const since = this.cursorText();
    const poll: PollContext =
      look.kind === 'head'
        ? {
            feed: this.s.start.feed,
            since: null,
            cursor: look.cursor,
            changedIds: [],
            complete: true,
            reason: 'immediate',
          }
        : {
            feed: this.s.start.feed,
            since,
            cursor: look.cursor,
            changedIds: look.changedIds,
            complete: look.complete,
            reason,
          };
    // A client without a cursor starts at the head: should the handler fail, its error event
    // carries the head as id, so the client resumes from there rather than from nothing.
    if (look.kind === 'head') this.advance(look.cursor);
    const body = await this.s.runHandler(poll);
    if (this.stopped) return false;
    this.advance(look.cursor);
    this.s.emit({ id: look.cursor, data: JSON.stringify(body ?? null) });
    return look.kind === 'changes' && !look.complete;
  }

  private advance(cursor: string): void {
    this.cursor = this.s.feeds.decode(cursor);
  }

  /** Where the client stands: its own cursor, or the id of the last event it was sent. */
  private cursorText(): string | null {
    return this.cursor ? this.s.feeds.encode(this.cursor) : null;
  }

  /**
   * Waits for a change, writing a keep-alive comment after each `keepAliveMs` of silence.
   * 'end' when the client left or the server shuts down (the stream then ends).
   */
  private async quietWait(): Promise<'change' | 'end'> {
    const gone = responseClosed(this.s.res);
    const authorize = this.s.authorize && (() => this.s.authorize!(this.s.req));
    for (;;) {
      // Re-authorizes on a change (AccessRevokedError: a 403 error event, then the end).
      const wake = await this.s.start.watch.next(Date.now() + this.s.keepAliveMs, gone, authorize);
      if (this.stopped || wake === 'closed') return 'end';
      if (wake === 'shutdown') {
        this.s.emit({ comment: 'shutdown' });
        return 'end';
      }
      if (wake !== 'timeout') return 'change';
      this.s.emit({ comment: 'keep-alive' });
    }
  }

  /** While the client is not reading, wait: the next read then covers everything meanwhile. */
  private drained(): Promise<void> {
    const res = this.s.res;
    if (!res.writableNeedDrain || res.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        this.endDrainWait = null;
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
      this.endDrainWait = done;
    });
  }

  /** An `error` event the client can act on (its id keeps the client's cursor), then the end. */
  private fail(statusCode: number, message: string): void {
    const id = this.cursorText();
    const data = JSON.stringify({ statusCode, message });
    // An error event always names where the client stands, so it resumes from there.
    if (id !== null) this.s.emit({ id, type: 'error', data });
    else this.s.emit({ comment: `error ${statusCode}: ${message.replace(/[\r\n]/g, ' ')}` });
  }
}

/** An HttpException's status and message; anything else is a 500 whose details stay in the log. */
export function errorPayload(error: unknown): { statusCode: number; message: string } {
  error = toHttpError(error, null); // the core's refusals (403, 503) as HTTP errors
  if (error instanceof HttpException) {
    const body = error.getResponse();
    const message =
      typeof body === 'object' && body !== null && 'message' in body
        ? String((body as { message: unknown }).message)
        : error.message;
    return { statusCode: error.getStatus(), message };
  }
  return { statusCode: 500, message: 'Internal server error' };
}
