import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';

/**
 * The request as the library's callbacks see it (`partition`, `authorize`, `http.clientKey`,
 * `aggregator.scope`): the fields Express's `Request` and Fastify's `FastifyRequest` share. The
 * object passed is the platform's own request, so what middleware or guards attach (`req.user`)
 * is there too: cast to your platform's type to read it.
 */
export interface PollingRequest {
  readonly method: string;
  /** The path and query as received (with the global prefix). */
  readonly url: string;
  readonly originalUrl?: string;
  readonly headers: IncomingHttpHeaders;
  /** Route parameters by name (`/channels/:channel` → `params.channel`). */
  readonly params: Record<string, string>;
  /** The query as the platform parsed it. */
  readonly query: unknown;
  /** The client address (X-Forwarded-For's when the platform trusts the proxy). */
  readonly ip?: string;
  readonly socket?: Socket;
  readonly body?: unknown;
}
