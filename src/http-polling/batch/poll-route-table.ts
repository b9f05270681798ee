import type { PollRoute } from '../poll-routes.explorer';

export interface MatchedRoute {
  route: PollRoute;
  params: Record<string, string>;
}

interface Template {
  route: PollRoute;
  segments: string[];
}

/**
 * Matches a batch key (the path a client would GET, e.g. `/api/channels/general/changes`) to the
 * @Poll/@LongPoll route that serves it. Plain segments and `:param` segments only.
 */
export class PollRouteTable {
  private readonly templates: Template[] = [];

  /** `paths`: every full path template of `route` a client may name. */
  add(route: PollRoute, paths: readonly string[]): void {
    for (const path of new Set(paths)) {
      if (!/^[A-Za-z0-9_\-./:]*$/.test(path)) continue;
      this.templates.push({ route, segments: path.split('/').filter(Boolean) });
    }
  }

  match(path: string): MatchedRoute | null {
    const parts = path.split('/').filter(Boolean);
    for (const { route, segments } of this.templates) {
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
      if (ok) return { route, params };
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
