import { PollHttpError, PollTimeoutError } from './errors.js';
import { MAX_TIMER_MS } from './sleep.js';
import type { FetchInit, FetchLike, HeadersOption } from './types.js';

/** An answer with its body already read: parsed JSON, text, or null when empty. */
export interface PollResponse {
  status: number;
  headers: { get(name: string): string | null };
  body: unknown;
}

/** The global `fetch`, called as a plain function (a browser's `fetch` must not get another `this`). */
export const globalFetch: FetchLike = (url, init) =>
  (globalThis as unknown as { fetch: FetchLike }).fetch(url, init);

/** The headers for one request: a copy, so the caller may add to it. */
export async function resolveHeaders(
  option: HeadersOption | undefined,
): Promise<Record<string, string>> {
  if (option === undefined) return {};
  const headers = typeof option === 'function' ? await option() : option;
  return { ...headers };
}

/**
 * `url` with `params` added to its query, every parameter in name order (the app's own kept as
 * written, in their order among equal names). Canonical, so a shared cache keyed on the URL sees
 * one key per feed, cursor and wait however the app wrote its URL (`?b=1&a=2` or `?a=2&b=1`).
 */
export function withQuery(url: string, params: Record<string, string>): string {
  const added = Object.entries(params).map(
    ([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`,
  );
  const hash = url.indexOf('#');
  const base = hash === -1 ? url : url.slice(0, hash);
  const question = base.indexOf('?');
  const path = question === -1 ? base : base.slice(0, question);
  const own = question === -1 ? [] : base.slice(question + 1).split('&');
  const query = [...own.filter((part) => part !== ''), ...added];
  if (query.length === 0) return path;
  const name = (part: string) => part.split('=')[0];
  query.sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
  return `${path}?${query.join('&')}`;
}

/** A wait in seconds as the server accepts it: [0, 3600], at most 3 decimals, no exponent. */
export function waitParam(seconds: number): string {
  if (!(Number.isFinite(seconds) && seconds >= 0)) {
    throw new TypeError('wait must be a number of seconds >= 0');
  }
  return String(Math.round(Math.min(seconds, 3600) * 1000) / 1000);
}

/**
 * One request with its body read, aborted by `signal` or after `timeoutMs`. Throws what `fetch`
 * throws, a {@link PollTimeoutError}, or a {@link PollHttpError} for a 2xx answer whose JSON is
 * malformed (the caller retries all of these unless `signal` was aborted).
 */
export async function send(
  fetchFn: FetchLike,
  url: string,
  request: Pick<FetchInit, 'method' | 'headers' | 'body'>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<PollResponse> {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = () => controller.abort();
  if (signal.aborted) controller.abort();
  else signal.addEventListener('abort', onAbort);
  const timer = setTimeout(
    () => {
      timedOut = true;
      controller.abort();
    },
    Math.min(timeoutMs, MAX_TIMER_MS),
  );
  try {
    const res = await fetchFn(url, { ...request, signal: controller.signal, cache: 'no-store' });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: parseBody(res.status, res.headers, text),
    };
  } catch (error) {
    if (timedOut && !signal.aborted) throw new PollTimeoutError(timeoutMs);
    throw error;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

function parseBody(status: number, headers: PollResponse['headers'], text: string): unknown {
  if (text.length === 0) return null;
  if (!/\bjson\b/i.test(headers.get('content-type') ?? '')) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    if (status >= 200 && status < 300) {
      throw new PollHttpError(status, text, `answered ${status} with malformed JSON`);
    }
    return text;
  }
}

/** A string `cursor` field of a JSON body, if any. */
export function bodyCursor(body: unknown): string | null {
  if (!body || typeof body !== 'object') return null;
  const cursor = (body as { cursor?: unknown }).cursor;
  return typeof cursor === 'string' && cursor.length > 0 ? cursor : null;
}

/** The cursor an answer tells the client to continue from: `Poll-Cursor`, else the body's `cursor`. */
export function answerCursor(res: PollResponse): string | null {
  return res.headers.get('poll-cursor') || bodyCursor(res.body);
}

/** The entity tag of `cursor` (the server's ETag is the quoted cursor). */
export const etagOf = (cursor: string): string => `"${cursor}"`;
