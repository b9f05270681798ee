import { Injectable } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import { defer, finalize, Observable, of, share, tap } from 'rxjs';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';

interface Cached {
  value: unknown;
  expires: number;
}

/**
 * Identical concurrent poll handler runs share one execution (DESIGN.md §5). The key holds the
 * route, the feed, the client's cursor, the new head cursor, the rest of the query and the caller's
 * auth scope, so two callers with different scopes never share. A result may linger `lingerMs`
 * for latecomers with the same key: the head cursor is part of the key, so any newer change makes
 * a new key. Errors reach the waiters of that run and are never cached.
 */
@Injectable()
export class ResponseAggregator {
  private readonly inFlight = new Map<string, Observable<unknown>>();
  private readonly recent = new Map<string, Cached>();
  /** Handler executions started through the aggregator. */
  runs = 0;
  /** Requests answered by another request's execution (in flight or lingering). */
  joined = 0;

  constructor(@InjectPollingOptions() private readonly options: ResolvedOptions) {}

  get enabled(): boolean {
    return this.options.aggregator.enabled;
  }

  /**
   * The caller's scope, from the app's scope function. Without one, or when it answers null,
   * the request shares with nobody (DESIGN.md §5): request headers are no identity (a gateway may
   * send one service token for every user), so the library never guesses one from them.
   */
  scopeOf(req: PollingRequest): string | null {
    const custom = this.options.aggregator.scope;
    if (!custom) return null;
    const scope = custom(req);
    return scope === null || scope === undefined ? null : `app:${String(scope)}`;
  }

  /** Null when this request must not share (no scope). */
  keyFor(parts: unknown[], req: PollingRequest): string | null {
    const scope = this.scopeOf(req);
    return scope === null ? null : JSON.stringify([...parts, scope]);
  }

  run(key: string, execute: () => Observable<unknown>): Observable<unknown> {
    const now = Date.now();
    const cached = this.recent.get(key);
    if (cached && cached.expires > now) {
      this.joined++;
      return of(cached.value);
    }
    const running = this.inFlight.get(key);
    if (running) {
      this.joined++;
      return running;
    }
    this.runs++;
    const lingerMs = this.options.aggregator.lingerMs;
    const shared = defer(execute).pipe(
      tap((value) => lingerMs > 0 && this.remember(key, value, lingerMs)),
      finalize(() => this.inFlight.delete(key)),
      share(),
    );
    this.inFlight.set(key, shared);
    return shared;
  }

  private remember(key: string, value: unknown, lingerMs: number): void {
    const now = Date.now();
    // Map order is insertion order: drop expired and excess entries from the oldest end.
    for (const [oldKey, entry] of this.recent) {
      if (entry.expires > now && this.recent.size < this.options.aggregator.maxEntries) break;
      this.recent.delete(oldKey);
    }
    this.recent.delete(key);
    this.recent.set(key, { value, expires: now + lingerMs });
  }
}
