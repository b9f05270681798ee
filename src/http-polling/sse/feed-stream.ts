import type { Logger } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { PollingRequest } from '../../polling-request.interface';
import type { PollContext } from '../poll-route-options.interface';
import { responseClosed } from '../response-closed';
import type { FeedCheck, FeedChecker } from '../watch/feed-checker.service';
import type { Watch } from '../watch/watch';
import type { StreamStart } from './live-stream.metadata';
import { encodeEvent } from './sse-writer';
import { errorPayload } from './stream-errors';
import type { StreamGroup } from './stream-group';

const CONNECTED = encodeEvent({ comment: 'connected' });

/**
 * A connection over its byte limit that takes nothing from us for this long is dropped: it stopped
 * reading. One that reads, however slowly, is only made to wait (it gets every event).
 */
export const SSE_STALL_MS = 1_000;

type Parked = 'end' | 'behind';

export interface FeedStreamSettings {
  start: StreamStart;
  feeds: FeedChecker;
  req: PollingRequest;
  /** Node's response (Fastify's `reply.raw`): events and close. */
  res: ServerResponse;
  runHandler(poll: PollContext): Promise<unknown>;
  /** Bytes the connection may hold unsent when the next event is due (`http.sse`). */
  maxBufferedBytes: number;
  /** Reports a drop, with the bytes the connection held. */
  dropped(bufferedBytes: number): void;
  /** Hands the caught-up stream, standing at `cursor`, to the group that follows the feed. */
  join(stream: FeedStream, cursor: string): void;
  logger: Logger;
}

/**
 * One SSE client following one feed. It catches up on its own (the head, or what changed after
 * its Last-Event-ID, until nothing more is waiting), then joins the StreamGroup of the streams
 * that stand at its cursor, which writes every later event to it. On its own it writes while its
 * connection holds at most `maxBufferedBytes` unsent, then waits for the client to read; a group
 * hands back a member that went over it (a burst, a slow network), which catches up on its own
 * again. A client over the limit that reads nothing for SSE_STALL_MS is dropped: its connection
 * is destroyed and its held slot freed; it resumes with its Last-Event-ID.
 */
export class FeedStream {
  /** The group it follows the feed with, once caught up. */
  group: StreamGroup | null = null;
  private stopped = false;
  /** Where the client stands: its own cursor, or the id of the last event it was sent. */
  private cursor: string | null;
  private ended = false;
  /** Resumes `run` while it is in a group: the stream ended, or the group handed it back. */
  private unpark: ((why: Parked) => void) | null = null;

  constructor(private readonly s: FeedStreamSettings) {
    this.cursor = s.start.since ? s.feeds.encode(s.start.since) : null;
  }

  get watch(): Watch {
    return this.s.start.watch;
  }

  get req(): PollingRequest {
    return this.s.req;
  }

  get res(): ServerResponse {
    return this.s.res;
  }

  runHandler(poll: PollContext): Promise<unknown> {
    return this.s.runHandler(poll);
  }

  /** The client left (or Nest unsubscribed): end every wait at once and free the held slot. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.group?.leave(this);
    this.watch.close();
    this.watch.release();
    this.finish();
  }

  /** Ended by its group (shutdown, an error event): the response ends. */
  end(): void {
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.unpark?.('end');
  }

  /** Over the byte limit: no longer in its group, it catches up on its own at its pace. */
  get behind(): boolean {
    return this.s.res.writableLength > this.s.maxBufferedBytes;
  }

  /** Handed back by its group (see `behind`). */
  fallBehind(): void {
    this.group?.leave(this);
    this.group = null;
    this.unpark?.('behind');
  }

  /** Resolves when the stream is over: the client left, shutdown, an error event was sent. */
  async run(): Promise<void> {
    const { watch, feed } = this.s.start;
    // Nest unsubscribes when the client leaves; the response's close is the safety net.
    const gone = responseClosed(this.s.res);
    if (gone.closed) this.stop();
    const onClose = () => this.stop();
    gone.onClose(onClose);
    try {
      if (this.stopped) return;
      this.write(CONNECTED);
      let look: StreamStart['first'] = this.s.start.first;
      for (;;) {
        while (await this.send(look)) {
          if (!(await this.paced())) return;
          look = await watch.check(feed, this.s.feeds.decode(this.cursor!)!);
        }
        if (this.stopped || this.ended || !(await this.paced())) return;
        const why = await new Promise<Parked>((resolve) => {
          this.unpark = resolve;
          this.s.join(this, this.cursor!);
        });
        this.unpark = null;
        if (why === 'end' || this.ended || !(await this.paced())) return;
        look = await watch.check(feed, this.s.feeds.decode(this.cursor!)!);
      }
    } catch (error) {
      if (this.stopped) return;
      this.fail(error);
    } finally {
      gone.offClose(onClose);
      watch.release();
    }
  }

  /** The group moved it to `cursor` (the id of the event it was just sent). */
  advance(cursor: string): void {
    this.cursor = cursor;
  }

  /** Writes one encoded event (the writer keeps the connection within its limit: `paced`). */
  write(frame: Buffer): void {
    const res = this.s.res;
    if (this.stopped || res.destroyed || res.writableEnded) return;
    res.write(frame);
  }

  /**
   * Waits while the connection holds more than the limit unsent and the client reads; false once
   * the stream is over, or dropped because the client took nothing for SSE_STALL_MS.
   */
  private async paced(): Promise<boolean> {
    const res = this.s.res;
    while (!this.stopped && !res.destroyed && this.behind) {
      const taken = res.socket?.bytesWritten ?? 0;
      await drainOrStall(res);
      if (this.stopped || res.destroyed) break;
      if (this.behind && (res.socket?.bytesWritten ?? 0) === taken) {
        this.s.dropped(res.writableLength);
        this.stop();
        res.destroy();
      }
    }
    return !this.stopped && !res.destroyed;
  }

  /** An `error` event the client can act on (its id keeps the client's cursor), then the end. */
  fail(error: unknown): void {
    const { statusCode, message } = errorPayload(error);
    if (statusCode >= 500) this.s.logger.error(error);
    const data = JSON.stringify({ statusCode, message });
    // An error event always names where the client stands, so it resumes from there.
    const id = this.cursor;
    if (id !== null) this.write(encodeEvent({ id, type: 'error', data }));
    else this.write(encodeEvent({ comment: `error ${statusCode}: ${message}` }));
    this.finish();
  }

  /** Sends what one index read found on the way to the head; true when more changes wait. */
  private async send(look: StreamStart['first']): Promise<boolean> {
    if (look.kind === 'none') return false;
    if (look.kind === 'refetch') {
      this.cursor = look.cursor;
      const data = JSON.stringify({ cursor: look.cursor });
      this.write(encodeEvent({ id: look.cursor, type: 'reset', data }));
      return false;
    }
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
            since: this.cursor,
            cursor: look.cursor,
            changedIds: look.changedIds,
            complete: look.complete,
            reason: 'immediate',
          };
    // A client without a cursor starts at the head: should the handler fail, its error event
    // carries the head as id, so the client resumes from there rather than from nothing.
    if (look.kind === 'head') this.cursor = look.cursor;
    const body = await this.s.runHandler(poll);
    if (this.stopped) return false;
    this.cursor = look.cursor;
    this.write(encodeEvent({ id: look.cursor, data: JSON.stringify(body ?? null) }));
    return isMore(look);
  }
}

/** Resolves on 'drain', on 'close', or after SSE_STALL_MS. */
function drainOrStall(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, SSE_STALL_MS);
    res.on('drain', done);
    res.on('close', done);
  });
}

function isMore(look: FeedCheck | { kind: 'head' }): boolean {
  return look.kind === 'changes' && !look.complete;
}
