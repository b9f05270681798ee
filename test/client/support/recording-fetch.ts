import type { FetchLike } from '../../../src/client';

export interface RecordedRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  at: number;
  /** The answer's status, once it came (0 while in flight or when the request failed). */
  status: number;
  /** The answer's Poll-Interval header (null while in flight or when it had none). */
  pollInterval: string | null;
}

/**
 * The global fetch, unchanged, with a log of what went over the wire: real HTTP, nothing mocked.
 */
export function recordingFetch(): { fetch: FetchLike; requests: RecordedRequest[] } {
  const requests: RecordedRequest[] = [];
  const recording: FetchLike = async (url, init) => {
    const entry: RecordedRequest = {
      url,
      method: init.method,
      headers: { ...init.headers },
      body: init.body,
      at: Date.now(),
      status: 0,
      pollInterval: null,
    };
    requests.push(entry);
    const res = await fetch(url, init);
    entry.status = res.status;
    entry.pollInterval = res.headers.get('poll-interval');
    return res;
  };
  return { fetch: recording, requests };
}

/** The `since` query parameter of a recorded request, or null. */
export const sinceOf = (request: RecordedRequest): string | null =>
  new URL(request.url).searchParams.get('since');
