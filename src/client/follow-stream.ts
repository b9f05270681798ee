import { PollHttpError, PollTimeoutError, httpError, isRetryableStatus } from './errors.js';
import type { FollowFeedOptions } from './follow-feed.js';
import { bodyCursor, resolveHeaders, type PollResponse } from './http.js';
import { failureOf, type LoopSettings } from './loop.js';
import { MAX_TIMER_MS } from './sleep.js';
import { SseParser, type SseEvent } from './sse-parser.js';
import type { FetchResponse } from './types.js';

/** Settings of `mode: 'sse'`. */
export interface SseOptions {
  /**
   * How long the stream may stay silent — no event and no keep-alive comment — before it counts
   * as failed, in ms (default 30000: the server sends a comment at once and then every 15 s of
   * silence). A stream that delivers nothing at all in this time is taken for a buffering proxy:
   * the client falls back to long polling at once.
   */
  idleTimeoutMs?: number;
  /** Consecutive failed streams (errors, timeouts, 5xx) before falling back (default 3). */
  maxFailures?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_FAILURES = 3;
/**
 * Answers that say this URL serves no stream (an older server, a proxy that refuses
 * `text/event-stream`): long polling `url` gives the definitive answer instead.
 */
const NO_STREAM_HERE = new Set([404, 405, 406, 501]);
/** A stream the server ends sooner than this (or silently) counts as a failure: no hot loop. */
const MIN_HEALTHY_MS = 1000;

/** How following over SSE stopped: stopped by the signal, or continue with long polling. */
export type StreamResult = { kind: 'stopped' } | { kind: 'fallback'; cursor: string | null };

type Failure = { error: unknown; retryAfterMs: number | null; counts: boolean; buffered: boolean };
type ConnectionEnd =
  | { kind: 'stopped' }
  | { kind: 'reconnect' }
  | { kind: 'fallback'; error: Error }
  | ({ kind: 'failed' } & Failure);

/** Stops following: an error of the app's own callback, or an answer asking again cannot fix. */
class Final {
  constructor(readonly error: unknown) {}
}

/**
 * Follows a @LiveStream route with fetch (works in browsers and Node: no EventSource needed, so
 * headers such as Authorization can be sent). Reconnects with `Last-Event-ID` = the last cursor,
 * and returns `fallback` with that cursor when SSE does not work on this path.
 */
export async function followStream<TBody>(
  options: FollowFeedOptions<TBody>,
  loop: LoopSettings,
  since: string | null,
): Promise<StreamResult> {
  const idleMs = options.sse?.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const maxFailures = options.sse?.maxFailures ?? DEFAULT_MAX_FAILURES;
  if (!(Number.isFinite(idleMs) && idleMs > 0)) {
    throw new TypeError('sse.idleTimeoutMs must be a positive number');
  }
  if (!(Number.isInteger(maxFailures) && maxFailures >= 1)) {
    throw new TypeError('sse.maxFailures must be a whole number >= 1');
  }
  const state = { cursor: since, failures: 0 };
  const fallback = (error: Error): StreamResult => {
    options.onFallback?.(error);
    return { kind: 'fallback', cursor: state.cursor };
  };

  while (await loop.ready()) {
    const end = await connect(options, loop, state, Math.min(idleMs, MAX_TIMER_MS));
    if (end.kind === 'stopped') return end;
    if (end.kind === 'reconnect') continue;
    if (end.kind === 'fallback') return fallback(end.error);
    if (end.buffered) return fallback(asError(end.error));
    if (end.counts && ++state.failures >= maxFailures) return fallback(asError(end.error));
    if (!(await loop.retrier.wait(end.error, end.retryAfterMs))) break;
  }
  return { kind: 'stopped' };
}

/** One stream: open it, hand its events to the callbacks, report how it ended. */
async function connect<TBody>(
  options: FollowFeedOptions<TBody>,
  loop: LoopSettings,
  state: { cursor: string | null; failures: number },
  idleMs: number,
): Promise<ConnectionEnd> {
  const headers = await resolveHeaders(options.headers);
  headers['Accept'] = 'text/event-stream';
  if (state.cursor !== null) headers['Last-Event-ID'] = state.cursor;
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  loop.signal.addEventListener('abort', onAbort);
  let idle = false;
  let bytes = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      idle = true;
      controller.abort();
    }, idleMs);
  };
  const openedAt = Date.now();
  try {
    if (loop.signal.aborted) return { kind: 'stopped' };
    arm();
    const res = await loop.fetchFn(options.streamUrl!, {
      method: 'GET',
      headers,
      signal: controller.signal,
      cache: 'no-store',
    });
    if (NO_STREAM_HERE.has(res.status)) {
      await res.text().catch(() => '');
      return { kind: 'fallback', error: httpError(res.status, null) };
    }
    if (res.status < 200 || res.status >= 300) return await refused(res);
    const type = res.headers.get('content-type') ?? '';
    if (res.status !== 200 || !/^text\/event-stream\b/i.test(type) || !res.body) {
      return {
        kind: 'fallback',
        error: new PollHttpError(
          res.status,
          null,
          `answered ${res.status} ${type}, not an event stream`,
        ),
      };
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const events: SseEvent[] = [];
    const parser = new SseParser({ onEvent: (event) => events.push(event) });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value?.length ?? 0;
      parser.push(decoder.decode(value, { stream: true }));
      clearTimeout(timer); // the app's callbacks may take their time
      for (const event of events.splice(0)) {
        const outcome = await handle(options, loop, state, event);
        if (outcome !== null) return outcome;
      }
      arm();
    }
    if (bytes > 0 && Date.now() - openedAt >= MIN_HEALTHY_MS) return { kind: 'reconnect' };
    return failed(new Error('the event stream ended at once'), { counts: true });
  } catch (error) {
    if (error instanceof Final) throw error.error;
    if (loop.signal.aborted) return { kind: 'stopped' };
    if (idle) return failed(new PollTimeoutError(idleMs), { counts: true, buffered: bytes === 0 });
    return failed(error, { counts: true });
  } finally {
    clearTimeout(timer);
    loop.signal.removeEventListener('abort', onAbort);
    controller.abort(); // closes the connection: the server frees the stream's slot
  }
}

/** Handles one event; null to read on, else how this connection ends. */
async function handle<TBody>(
  options: FollowFeedOptions<TBody>,
  loop: LoopSettings,
  state: { cursor: string | null; failures: number },
  event: SseEvent,
): Promise<ConnectionEnd | null> {
  if (event.type !== 'message' && event.type !== 'reset' && event.type !== 'error') return null;
  let body: unknown;
  try {
    body = JSON.parse(event.data) as unknown;
  } catch {
    const error = new PollHttpError(
      200,
      event.data,
      `sent a ${event.type} event with malformed JSON`,
    );
    return failed(error, { counts: true });
  }
  if (event.type === 'error') {
    const status = Number((body as { statusCode?: unknown } | null)?.statusCode) || 500;
    const error = httpError(status, body);
    if (!isRetryableStatus(status)) throw new Final(error);
    return failed(error, { counts: true });
  }
  const cursor = event.type === 'reset' ? bodyCursor(body) : event.lastEventId || bodyCursor(body);
  if (cursor === null) {
    return failed(new PollHttpError(200, body, `sent a ${event.type} event without a cursor`), {
      counts: true,
    });
  }
  loop.retrier.reset();
  state.failures = 0;
  try {
    if (event.type === 'message') {
      await options.onChanges(body as TBody, { cursor, status: 200, transport: 'sse' });
      state.cursor = cursor;
      return null;
    }
    const chosen = options.onResync ? await options.onResync(cursor) : undefined;
    const next = typeof chosen === 'string' && chosen.length > 0 ? chosen : cursor;
    state.cursor = next;
    // The server continues from the head; a cursor of the app's choosing needs a new stream.
    return next === cursor ? null : { kind: 'reconnect' };
  } catch (error) {
    throw new Final(error);
  }
}

/** A non-2xx answer: final (4xx) or retried, after Retry-After when the server sent one. */
async function refused(res: FetchResponse): Promise<ConnectionEnd> {
  const text = await res.text().catch(() => '');
  let body: unknown = text || null;
  if (/\bjson\b/i.test(res.headers.get('content-type') ?? '')) {
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      // keep the text
    }
  }
  const answer: PollResponse = { status: res.status, headers: res.headers, body };
  const failure = failureOf(answer);
  if (!failure.retry) throw new Final(failure.error);
  // 429/503 with Retry-After: the server is busy, not the transport broken.
  return failed(failure.error, {
    retryAfterMs: failure.retryAfterMs,
    counts: failure.retryAfterMs === null,
  });
}

function failed(
  error: unknown,
  more: { counts: boolean; buffered?: boolean; retryAfterMs?: number | null },
): ConnectionEnd {
  return {
    kind: 'failed',
    error,
    counts: more.counts,
    buffered: more.buffered ?? false,
    retryAfterMs: more.retryAfterMs ?? null,
  };
}

const asError = (error: unknown): Error =>
  error instanceof Error ? error : new Error(String(error));
