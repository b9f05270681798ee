/**
 * Request headers, or a function that returns them. A function is called before every request,
 * so a short-lived token can be refreshed: `headers: () => ({ Authorization: `Bearer ${token()}` })`.
 */
export type HeadersOption =
  Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);

/** The part of a fetch `Response` the client reads. */
export interface FetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
  /** The body as a stream (a fetch `ReadableStream`); only `mode: 'sse'` reads it. */
  readonly body?: StreamBody | null;
}

/** The part of a fetch body stream (`ReadableStream<Uint8Array>`) the SSE transport reads. */
export interface StreamBody {
  getReader(): {
    read(): Promise<{ done: boolean; value?: Uint8Array }>;
    cancel(reason?: unknown): Promise<void>;
  };
}

/** The request the client hands to `fetch`. */
export interface FetchInit {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** Always `no-store`: a browser cache must neither answer a poll nor hide a 304 from us. */
  cache: 'no-store';
}

/** A `fetch` the client can call: the global `fetch` fits, and so does any wrapper of it. */
export type FetchLike = (url: string, init: FetchInit) => Promise<FetchResponse>;

/** Exponential backoff with full jitter for network errors and 5xx answers. */
export interface BackoffOptions {
  /** Ceiling of the first retry's delay, in ms (default 1000). */
  baseMs?: number;
  /** Largest ceiling, in ms (default 30000). */
  maxMs?: number;
}

/** What `onError` learns about a failed request and the retry that follows. */
export interface RetryInfo {
  /** Consecutive failures so far, 1 for the first. Reset by any successful answer. */
  attempt: number;
  /** How long the client waits before it asks again. */
  delayMs: number;
}

/** Options both `followFeed` and `followFeeds` take. */
export interface CommonFollowOptions {
  /** Stops following: the request in flight is aborted and the returned promise resolves. */
  signal: AbortSignal;
  /**
   * Base of relative `url`s (and `streamUrl`), e.g. `http://localhost:3000`. In a browser they
   * resolve against the page without it; in Node a relative URL needs it.
   */
  baseUrl?: string;
  /**
   * Unwraps the JSON body of every 2xx and 409 answer before the client reads it, for apps whose
   * responses are wrapped in an envelope: `select: (b) => (b as { data: unknown }).data`. The
   * cursor is read from the `Poll-Cursor` header, else from the selected body's `cursor`; what
   * it returns goes to `onChanges`. In a batch (`followFeeds`) it unwraps the answer and each
   * feed's body. If it throws, following stops with that error. Event-stream (`mode: 'sse'`)
   * messages are passed as sent.
   */
  select?(body: unknown): unknown;
  /** Sent with every request; see {@link HeadersOption}. */
  headers?: HeadersOption;
  /**
   * Long-poll wait in seconds, sent as `wait` (default 25; the server clamps it to its maximum).
   * Rounded to milliseconds and limited to [0, 3600], the range the server accepts.
   */
  wait?: number;
  /**
   * How long an answer may take beyond `wait` before the request counts as lost (a half-open
   * connection, a proxy that swallowed it) and is retried, in ms (default 20000).
   */
  timeoutMs?: number;
  /** Called for every failed request that will be retried, before the client waits `delayMs`. */
  onError?(error: unknown, info: RetryInfo): void;
  /** Backoff bounds; see {@link BackoffOptions}. */
  backoff?: BackoffOptions;
  /** `fetch` to use (default the global `fetch`). */
  fetch?: FetchLike;
  /** Random numbers in [0, 1) for the jitter (default `Math.random`). */
  random?: () => number;
  /**
   * In a browser, send no request while `document.visibilityState` is `hidden`, and ask at once
   * when the page becomes visible again (default true). Without a `document` this does nothing.
   */
  pauseWhenHidden?: boolean;
}
