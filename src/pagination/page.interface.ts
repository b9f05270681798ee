export type SortDirection = 'asc' | 'desc';

export interface SortField {
  /** An entity property from the paginator's `sortable` allow-list. */
  field: string;
  direction: SortDirection;
}

/** What a client asked for, after validation (see CursorPaginator.parse). */
export interface PageRequest {
  sort: SortField[];
  after: string | null;
  before: string | null;
  limit: number;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; null when there is nothing after this page (yet). */
  nextCursor: string | null;
  /** Pass as `before` for the previous page; null on the first page. */
  prevCursor: string | null;
  /** More rows exist in the direction of travel. */
  hasMore: boolean;
}

export interface CursorPaginatorOptions {
  /** Names the endpoint: a cursor made for another paginator is refused. */
  name: string;
  /** Entity properties a client may sort by (the allow-list). */
  sortable: string[];
  /** Primary-key property, the final tie-breaker. Default `id`. */
  key?: string;
  /** Sort when the client names none. Default: the key, ascending. */
  defaultSort?: SortField[];
  /** Default 50. */
  defaultLimit?: number;
  /** Larger limits are clamped to this. Default 200. */
  maxLimit?: number;
  /** HMAC secret for cursors; without it they carry only a checksum. */
  secret?: string;
}
