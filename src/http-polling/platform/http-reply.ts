import type { ServerResponse } from 'node:http';

/**
 * One response, whichever HTTP platform made it: what the transports set before Nest sends the
 * answer (status, headers), and the Node response underneath for what Nest does not write (SSE
 * events, close and finish detection).
 */
export interface HttpReply {
  status(code: number): void;
  setHeader(name: string, value: string): void;
  /** Adds a value to a header that may repeat (Set-Cookie). */
  appendHeader(name: string, value: string): void;
  getHeader(name: string): unknown;
  readonly headersSent: boolean;
  /** Node's response: SSE writes, `close` (client left), `finish`, the final status code. */
  readonly raw: ServerResponse;
}

/** The client left, or the answer was sent. */
export function isEnded(raw: ServerResponse): boolean {
  return raw.destroyed || raw.writableEnded;
}
