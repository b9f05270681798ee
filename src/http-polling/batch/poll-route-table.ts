import type { PollingRequest } from '../../polling-request.interface';
import type { RequestFilter } from '../platform/http-platform';
import type { PollRoute } from '../poll-routes.explorer';

export interface MatchedRoute {
  route: PollRoute;
  params: Record<string, string>;
}

/**
 * Whether a request reaches this route other than by its path: header, media-type and custom
 * versioning choose among routes of one path by the request, `@Controller({host})` by its host.
 */
export type { RequestFilter };

interface Template {
  route: PollRoute;
  segments: string[];
  accepts: RequestFilter | null;
}

/** A `:param` segment, named as path-to-regexp names parameters. */
const PARAM = /^:[$_\p{ID_Start}][$\u200c\u200d\p{ID_Continue}]*$/u;
/**
 * Characters path-to-regexp gives a meaning (wildcards, groups, reserved). A literal segment
 * without them matches only itself; anything RFC 3986 allows in a segment (`@ ~ $ & ' , ; =`,
 * as in `/users/@me` or `/$metadata`) is such a literal.
 */
const PATTERN_SYNTAX = /[:*{}()[\]+?!\\]/;

function isPlainSegment(segment: string): boolean {
  return PARAM.test(segment) || !PATTERN_SYNTAX.test(segment);
}

/**
 * Matches a batch key (the path a client would GET, e.g. `/api/channels/general/changes`) to the
 * @Poll/@LongPoll route that serves it. Literal segments and `:param` segments only (a route with
 * a wildcard, an optional group or a regex is not a batch feed).
 */
export class PollRouteTable {
  private readonly templates: Template[] = [];

  /**
   * `paths`: every full path template of `route` a client may name; `accepts`: what else the
   * request must match (its version, when not in the path; its host).
   */
  add(route: PollRoute, paths: readonly string[], accepts: RequestFilter | null = null): void {
    for (const path of new Set(paths)) {
      const segments = path.split('/').filter(Boolean);
      if (!segments.every(isPlainSegment)) continue;
      this.templates.push({ route, segments, accepts });
    }
  }

  /** The first route (in Nest's registration order) that serves `path` for `req`. */
  match(path: string, req: PollingRequest): MatchedRoute | null {
    const parts = path.split('/').filter(Boolean);
    for (const { route, segments, accepts } of this.templates) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        if (segments[i].startsWith(':')) {
          const value = safeDecode(parts[i]);
          if (value === null) ok = false;
          else params[segments[i].slice(1)] = value;
        } else ok = segments[i] === parts[i];
      }
      if (ok && (!accepts || accepts(req))) return { route, params };
    }
    return null;
  }
}

function safeDecode(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}
