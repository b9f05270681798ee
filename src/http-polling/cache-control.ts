import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { PollContext, PollRouteMetadata } from './poll-route-options.interface';

/** Default max-age of a public route's cacheable answers. */
const PUBLIC_MAX_AGE_S = 60;

/**
 * Cache-Control of a poll route's answer until the handler has answered: nothing on a public
 * route is stored (a 204, 304, 409 or an error in a shared cache would be served to every
 * follower, a cached 409 would send them all into refetch loops); the others stay private.
 */
export function pendingCacheControl(route: PollRouteMetadata): string {
  return route.cache === 'public' ? 'no-store' : 'private, no-cache';
}

/**
 * What a public route's handler answer (200) may be cached as: one that moves its follower on
 * (changes after `since`, or the head when there was no `since`). Its URL names the cursor it
 * answers, its body ends at the next cursor (the ETag): another answer to the same URL may hold
 * more changes, never other ones, so a cached one is still a correct answer. A short poll that
 * found nothing is not cached: that would hide the next change for max-age. Null: leave as is.
 */
export function answerCacheControl(route: PollRouteMetadata, poll: PollContext): string | null {
  if (route.cache !== 'public') return null;
  if (poll.since !== null && poll.changedIds.length === 0) return null;
  return `public, max-age=${route.cacheMaxAgeS ?? PUBLIC_MAX_AGE_S}`;
}

/**
 * Marks the answer `cacheControl` when its head goes out as a 200 without a Set-Cookie. Decided
 * there, not when the handler answers: an app-wide interceptor or serializer may still fail it
 * (that 500 must keep `no-store`), and a cookie set by the app (a session) is one caller's.
 */
export function cacheWhenOk(res: ServerResponse, cacheControl: string): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    // Fastify passes its headers to writeHead (they win over setHeader's): mark them there.
    const passed = args.find(
      (arg): arg is OutgoingHttpHeaders =>
        typeof arg === 'object' && arg !== null && !Array.isArray(arg),
    );
    const cookie = this.hasHeader('Set-Cookie') || (passed && 'set-cookie' in passed);
    if (args[0] === 200 && !cookie) {
      if (passed) passed['cache-control'] = cacheControl;
      else this.setHeader('Cache-Control', cacheControl);
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}
