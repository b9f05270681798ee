import {
  CallHandler,
  ExecutionContext,
  ForbiddenException,
  GoneException,
  HttpException,
  HttpStatus,
  Injectable,
  Logger,
  NestInterceptor,
  NotFoundException,
  StreamableFile,
} from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { PassThrough } from 'node:stream';
import { from, lastValueFrom, Observable } from 'rxjs';
import { ResponseAggregator } from '../aggregation/response-aggregator.service';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { FeedCursorCodec, type FeedCursor } from '../http-polling/feed-cursor';
import { FeedNames } from '../http-polling/feed-names.service';
import { PollAdmission } from '../http-polling/poll-admission.service';
import type { PollContext } from '../http-polling/poll-route-options.interface';
import { matchesEtag } from '../http-polling/polling.interceptor';
import { POLL_CONTEXT_KEY } from '../http-polling/poll.constants';
import { responseClosed } from '../http-polling/response-closed';
import { HttpPlatformHost } from '../http-polling/platform/http-platform.host';
import type { HttpReply } from '../http-polling/platform/http-reply';
import type { PollingRequest } from '../polling-request.interface';
import { FeedChecker } from '../http-polling/watch/feed-checker.service';
import { FeedWatch } from '../http-polling/watch/feed-watch.service';
import type { Watch } from '../http-polling/watch/watch';
import { asHttp, tableFeed, trackResponse } from '../http-polling/watch-http';
import { PollingEvents } from '../http-polling/watch/polling-events.service';
import {
  DEFAULT_KEEP_ALIVE_S,
  DEFAULT_SSE_CLOSE_S,
  DURABLE_STREAM_METADATA,
  type DurableStreamOptions,
  type StreamBatch,
  type StreamFormat,
} from './durable-stream.metadata';
import { SseSession, type StreamLook } from './sse-session';
import { stateProtocolFormat } from './state-protocol.format';
import { streamCursor } from './stream-cursor';
import { StreamOffsets, type RequestedOffset } from './stream-offset';
import { readStreamQuery, type StreamQuery } from './stream-request.parser';
import {
  batchBody,
  isJsonType,
  isTextType,
  setReadHeaders,
  setSecurityHeaders,
} from './stream-response';

type StreamRequest = PollingRequest & { [POLL_CONTEXT_KEY]?: PollContext };

/** One read of one stream: what the route and the request say. */
interface ReadScope {
  route: DurableStreamOptions;
  format: StreamFormat;
  feed: string;
  req: StreamRequest;
  res: HttpReply;
  next: CallHandler;
  query: StreamQuery;
  contentType: string;
  /** `Controller.method`: part of the key under which identical reads share a handler run. */
  handlerName: string;
}

/**
 * The Durable Streams read protocol over the hold core (see DurableStream): HEAD, catch-up reads,
 * `live=long-poll` (held like a @LongPoll, 204 on timeout) and `live=sse`. Offsets are feed
 * cursors in the protocol's sortable form; the handler runs once per read with a PollContext and
 * the route's format turns its answer into the stream's messages.
 */
@Injectable()
export class DurableStreamInterceptor implements NestInterceptor {
  private readonly logger = new Logger('DurableStream');
  private readonly offsets: StreamOffsets;

  constructor(
    private readonly reflector: Reflector,
    private readonly names: FeedNames,
    private readonly checker: FeedChecker,
    private readonly watches: FeedWatch,
    private readonly admission: PollAdmission,
    codec: FeedCursorCodec,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly moduleRef: ModuleRef,
    private readonly aggregator: ResponseAggregator,
    private readonly events: PollingEvents,
    private readonly platform: HttpPlatformHost,
  ) {
    this.offsets = new StreamOffsets(codec);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.reflector.get<DurableStreamOptions | undefined>(
      DURABLE_STREAM_METADATA,
      context.getHandler(),
    );
    if (!route || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<StreamRequest>();
    const res = this.platform.platform.reply(context.switchToHttp().getResponse());
    setSecurityHeaders(res);
    const handlerName = `${context.getClass().name}.${context.getHandler().name}`;
    return from(asHttp(res, () => this.serve(route, req, res, next, handlerName)));
  }

  private async serve(
    route: DurableStreamOptions,
    req: StreamRequest,
    res: HttpReply,
    next: CallHandler,
    handlerName: string,
  ): Promise<unknown> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      const status = HttpStatus.METHOD_NOT_ALLOWED;
      throw new HttpException(
        HttpException.createBody(
          'this stream is read-only: GET or HEAD',
          'Method Not Allowed',
          status,
        ),
        status,
      );
    }
    const format = this.formatOf(route);
    const feed = this.names.feedOf(route, req);
    const contentType = await format.contentType(req);
    if (contentType === null) throw new NotFoundException('no stream at this URL');
    const query = req.method === 'HEAD' ? null : readStreamQuery(req, this.offsets);
    if (route.authorize && !(await route.authorize(req))) {
      throw new ForbiddenException('not allowed to follow this stream');
    }
    res.setHeader('Content-Type', contentType);
    if (query === null) {
      // HEAD: the tail offset, never cached (PROTOCOL.md §5.5).
      res.setHeader(
        'Stream-Next-Offset',
        this.offsets.fromCursorText(await this.checker.head(feed)),
      );
      res.setHeader('Cache-Control', 'no-store');
      return undefined;
    }
    const scope: ReadScope = {
      route,
      format,
      feed,
      req,
      res,
      next,
      query,
      contentType,
      handlerName,
    };
    // Admission (limits), and for live reads registration before the first index read.
    const watch = this.watches.open({
      clientKey: this.admission.clientKey(req),
      feeds: [feed],
      holds: query.live !== null,
      label: tableFeed(feed),
    });
    if (query.live !== 'sse') {
      // polling_responses_total and the delivery delay, as for @Poll / @LongPoll answers.
      trackResponse(this.events, res.raw, tableFeed(feed), query.live ? 'long' : 'short').watch =
        watch;
    }
    if (query.live === 'sse') return this.sse(scope, watch);
    return this.read(scope, watch);
  }

  private formatOf(route: DurableStreamOptions): StreamFormat {
    if (route.format === undefined) return stateProtocolFormat(route);
    if (typeof route.format === 'function') {
      return this.moduleRef.get(route.format, { strict: false });
    }
    return route.format;
  }

  /** A catch-up or long-poll read: 200 with the messages, 204 after the wait, 304, 410. */
  private async read(scope: ReadScope, watch: Watch): Promise<unknown> {
    const { res, req, query, feed, route } = scope;
    let first: StreamLook | null;
    let since: FeedCursor;
    try {
      ({ first, since } = await this.firstLook(watch, feed, query.offset));
    } catch (error) {
      watch.release();
      throw error;
    }
    const live = query.live !== null;
    if (!live && query.offset.kind === 'now') {
      // The tail, no data, never cached (PROTOCOL.md §8).
      watch.release();
      res.setHeader('Cache-Control', 'no-store');
      setReadHeaders(res, this.offsets.encode(since), true, null);
      return batchBody(emptyBatch(scope.contentType));
    }
    let last: StreamLook | null = first;
    let reason: PollContext['reason'] = 'immediate';
    const waitMs = Math.round((route.longPollS ?? this.options.http.defaultWaitS) * 1000);
    const outcome = await watch.until(
      async (why) => {
        reason = why;
        const look = first ?? (await watch.check(feed, since));
        first = null;
        last = look;
        if (look.kind === 'refetch') throw this.gone(res, look.cursor, look.reason);
        return look.kind === 'none' ? null : look;
      },
      live ? waitMs : 0,
      responseClosed(res.raw),
      route.authorize && (() => route.authorize!(req)),
    );
    const cursor = live ? streamCursor(query.cursor) : null;
    if (outcome.kind === 'closed') return undefined;
    res.setHeader('Cache-Control', 'private, no-cache');
    if (outcome.kind === 'idle') {
      const tail = this.offsets.fromCursorText(last!.cursor);
      setReadHeaders(res, tail, true, cursor);
      if (live) {
        res.status(204);
        return undefined;
      }
      // Catch-up at the tail: an empty read that ends where it started.
      res.setHeader('ETag', etag(this.requestedOffset(req), tail));
      return batchBody(emptyBatch(scope.contentType));
    }
    const look = outcome.value;
    const nextOffset = this.offsets.fromCursorText(look.cursor);
    const complete = look.kind !== 'changes' || look.complete;
    setReadHeaders(res, nextOffset, complete, cursor);
    res.setHeader('ETag', etag(this.requestedOffset(req), nextOffset));
    if (!live && matchesEtag(req.headers['if-none-match'], res.getHeader('ETag'))) {
      res.status(304);
      return undefined;
    }
    const poll = this.pollContext(feed, look, look.kind === 'snapshot' ? null : since, reason);
    return batchBody(await this.batch(scope, poll, false, nextOffset));
  }

  /** A `live=sse` read: the first index read answers a stale offset with a 410 before it starts. */
  private async sse(scope: ReadScope, watch: Watch): Promise<StreamableFile> {
    const { res, req, route, feed, query, contentType } = scope;
    let first: StreamLook;
    let since: FeedCursor | null;
    try {
      const start = await this.firstLook(watch, feed, query.offset);
      first = start.first ?? { kind: 'none', cursor: this.checker.encode(start.since) };
      since = query.offset.kind === 'start' ? null : start.since;
      if (first.kind === 'refetch') throw this.gone(res, first.cursor, first.reason);
    } catch (error) {
      watch.release();
      throw error;
    }
    const base64 = !isTextType(contentType);
    res.setHeader('Content-Type', 'text/event-stream');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('X-Accel-Buffering', 'no'); // nginx: pass events on at once
    if (base64) res.setHeader('Stream-SSE-Data-Encoding', 'base64');
    const out = new PassThrough();
    const session = new SseSession({
      feed,
      watch,
      req,
      res: res.raw,
      out,
      base64,
      closeAfterMs: Math.round((route.sseCloseS ?? DEFAULT_SSE_CLOSE_S) * 1000),
      keepAliveMs: Math.round((route.keepAliveS ?? DEFAULT_KEEP_ALIVE_S) * 1000),
      authorize: route.authorize && (() => route.authorize!(req)),
      decode: (text) => this.checker.decode(text)!,
      encode: (cursor) => this.checker.encode(cursor),
      offsetOf: (text) => this.offsets.fromCursorText(text),
      batch: (poll, reset, nextOffset) => this.batch(scope, poll, reset, nextOffset),
      cursor: () => streamCursor(query.cursor),
      logger: this.logger,
    });
    res.raw.once('close', () => session.stop());
    void session.run(first, since);
    return new StreamableFile(out);
  }

  /**
   * Where a read starts. `-1`: a snapshot at the head (read before the handler's query, so
   * nothing committed meanwhile is missed); `now`: nothing yet, from the head; an offset: what
   * changed after it. `first` null: nothing to answer yet (`since` is where to wait from).
   */
  private async firstLook(
    watch: Watch,
    feed: string,
    offset: RequestedOffset,
  ): Promise<{ first: StreamLook | null; since: FeedCursor }> {
    if (offset.kind === 'at') {
      return { first: await watch.check(feed, offset.cursor), since: offset.cursor };
    }
    const head = await watch.head(feed);
    const since = this.checker.decode(head)!;
    return { first: offset.kind === 'start' ? { kind: 'snapshot', cursor: head } : null, since };
  }

  private pollContext(
    feed: string,
    look: StreamLook,
    since: FeedCursor | null,
    reason: PollContext['reason'],
  ): PollContext {
    return {
      feed,
      since: since && this.checker.encode(since),
      cursor: look.cursor,
      changedIds: look.kind === 'changes' ? look.changedIds : [],
      complete: look.kind === 'changes' ? look.complete : true,
      reason,
    };
  }

  /**
   * Runs the route's handler for one read and turns its answer into the stream's content. Reads
   * that would run it identically (route, feed, cursors, the rest of the query, the caller's auth
   * scope) share one run through the response aggregator: a change that wakes a thousand readers
   * of one offset costs one query.
   */
  private async batch(
    scope: ReadScope,
    poll: PollContext,
    reset: boolean,
    nextOffset: string,
  ): Promise<StreamBatch> {
    const { req, next } = scope;
    req[POLL_CONTEXT_KEY] = poll;
    const key = this.aggregator.enabled
      ? this.aggregator.keyFor(
          [
            'durable-stream',
            scope.handlerName,
            (req.originalUrl ?? req.url).split('?')[0],
            poll.feed,
            poll.since,
            poll.cursor,
            poll.reason,
            otherQuery(req),
          ],
          req,
        )
      : null;
    const run = key ? this.aggregator.run(key, () => next.handle()) : next.handle();
    const answer = await lastValueFrom(run, { defaultValue: null });
    return scope.format.batch(answer, { request: req, poll, reset, nextOffset });
  }

  private requestedOffset(req: PollingRequest): string {
    return new URL(req.originalUrl ?? req.url, 'http://x').searchParams.get('offset') ?? '-1';
  }

  /** 410: the offset is past retention or of another index generation (PROTOCOL.md §5.6). */
  private gone(res: HttpReply, cursor: string, reason: string): GoneException {
    const offset = this.offsets.fromCursorText(cursor);
    res.setHeader('Stream-Next-Offset', offset);
    return new GoneException({
      statusCode: 410,
      error: 'Gone',
      message: `the offset can no longer be followed (${reason}); read the stream again from -1`,
      offset,
    });
  }
}

/** The query without the read's position (offset, cursor, live), sorted. */
function otherQuery(req: PollingRequest): string {
  const url = req.originalUrl ?? req.url;
  const params = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  for (const name of ['offset', 'cursor', 'live']) params.delete(name);
  params.sort();
  return params.toString();
}

function emptyBatch(contentType: string): StreamBatch {
  return isJsonType(contentType) ? { json: [] } : { bytes: Buffer.alloc(0) };
}

/** PROTOCOL.md §10.1: `{stream}:{start}:{end}`; the URL already names the stream. */
function etag(start: string, end: string): string {
  return `"${start}:${end}"`;
}
