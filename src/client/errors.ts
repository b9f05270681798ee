/** An answer the client could not use: an error status, or a 2xx answer that breaks the protocol. */
export class PollHttpError extends Error {
  override readonly name = 'PollHttpError';

  constructor(
    /** The HTTP status (or a batch feed's own status). */
    readonly status: number,
    /** The answer's body: parsed JSON, text, or null. */
    readonly body: unknown,
    message: string,
    /** In a batch, the feed (route path) the answer belongs to. */
    readonly feed?: string,
  ) {
    super(message);
  }
}

/** No answer within `wait` + `timeoutMs`: the request was aborted and is retried. */
export class PollTimeoutError extends Error {
  override readonly name = 'PollTimeoutError';

  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** Statuses worth asking again for (after Retry-After or a backoff); other errors are final. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The error for an answer with `status`, using the JSON error body's message when there is one. */
export function httpError(status: number, body: unknown, feed?: string): PollHttpError {
  const detail =
    body && typeof body === 'object' && 'message' in body
      ? String((body as { message: unknown }).message)
      : typeof body === 'string' && body.length > 0
        ? body.slice(0, 200)
        : '';
  const where = feed ? `feed ${feed} answered` : 'answered';
  return new PollHttpError(status, body, `${where} ${status}${detail ? `: ${detail}` : ''}`, feed);
}
