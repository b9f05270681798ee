import type { Request } from 'express';
import type { PollRoute } from '../poll-routes.explorer';

export interface MatchedRoute {
  route: PollRoute;
  params: Record<string, string>;
}

/**
 * Whether a request reaches this route other than by its path: header, media-type and custom
 * versioning choose among routes of one path by the request, `@Controller({host})` by its host.
 */
export type RequestFilter = (req: Request) => boolean;

interface Template {
  route: PollRoute;
  segments: string[];
  accepts: RequestFilter | null;
}

/**
 * Matches a batch key (the path a client would GET, e.g. `/api/channels/general/changes`) to the
 * @Poll/@LongPoll route that serves it. Plain segments and `:param` segments only.
 */
export class PollRouteTable {
  private readonly templates: Template[] = [];

  /**
   * `paths`: every full path template of `route` a client may name; `accepts`: what else the
   * request must match (its version, when not in the path; its host).
   */
  add(route: PollRoute, paths: readonly string[], accepts: RequestFilter | null = null): void {
    for (const path of new Set(paths)) {
      if (!/^[A-Za-z0-9_\-./:]*$/.test(path)) continue;
      this.templates.push({ route, segments: path.split('/').filter(Boolean), accepts });
    }
  }

  /** The first route (in Nest's registration order) that serves `path` for `req`. */
  match(path: string, req: Request): MatchedRoute | null {
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
