import type { ObjectLiteral, Repository, SelectQueryBuilder } from 'typeorm';
import { keysetPredicate, type KeysetColumn } from './keyset-predicate';
import { PageCursorCodec } from './page-cursor.codec';
import { parsePageQuery } from './page-request.parser';
import type { CursorPaginatorOptions, Page, PageRequest, SortField } from './page.interface';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const DEFAULT_SECRET = 'nestjs-polling:page';
const PREFIX = '__pg_page_';

/**
 * Keyset pagination over a TypeORM repository or query builder (DESIGN.md §3): sort by
 * allow-listed properties in either direction, the key last as tie-breaker, `after`/`before`
 * cursors bound to the endpoint and the sort. NULLs sort as the largest value.
 */
export class CursorPaginator<T extends ObjectLiteral> {
  private readonly sortable: ReadonlySet<string>;
  private readonly key: string;
  private readonly defaultSort: SortField[];
  private readonly defaultLimit: number;
  private readonly maxLimit: number;
  private readonly codec: PageCursorCodec;

  constructor(private readonly options: CursorPaginatorOptions) {
    this.key = options.key ?? 'id';
    for (const name of [...options.sortable, this.key]) {
      if (!IDENT.test(name)) throw new Error(`CursorPaginator: "${name}" is not a property name`);
    }
    this.sortable = new Set(options.sortable);
    this.defaultSort = options.defaultSort ?? [{ field: this.key, direction: 'asc' }];
    this.defaultLimit = options.defaultLimit ?? 50;
    this.maxLimit = options.maxLimit ?? 200;
    if (!(this.defaultLimit >= 1 && this.defaultLimit <= this.maxLimit)) {
      throw new Error('CursorPaginator: defaultLimit must be between 1 and maxLimit');
    }
    this.codec = new PageCursorCodec(options.name, options.secret ?? DEFAULT_SECRET);
  }

  /** Validates `after`, `before`, `limit`, `sort` from a request query (400 on anything wrong). */
  parse(query: Record<string, unknown>): PageRequest {
    return parsePageQuery(query, this.sortable, {
      sort: this.defaultSort,
      limit: this.defaultLimit,
      maxLimit: this.maxLimit,
    });
  }

  async paginate(
    source: Repository<T> | SelectQueryBuilder<T>,
    request: PageRequest,
  ): Promise<Page<T>> {
    const qb =
      'createQueryBuilder' in source && !('expressionMap' in source)
        ? (source as Repository<T>).createQueryBuilder('row')
        : (source as SelectQueryBuilder<T>).clone();
    const sort = request.sort.some((s) => s.field === this.key)
      ? request.sort.slice(0, request.sort.findIndex((s) => s.field === this.key) + 1)
      : [...request.sort, { field: this.key, direction: 'asc' as const }];
    const signature = sort.map((s) => `${s.field}:${s.direction}`).join(',');
    const columns = this.columns(qb, sort);
    const forward = request.before === null;
    const cursorText = request.after ?? request.before;
    if (cursorText !== null) {
      const param = request.after !== null ? 'after' : 'before';
      const position = this.codec.decode(cursorText, signature, columns.length, param);
      const condition = keysetPredicate(columns, position.values, forward, `${PREFIX}p`);
      qb.andWhere(condition.sql, condition.params);
    }
    columns.forEach((c, i) => {
      const direction = (c.direction === 'asc') === forward ? 'ASC' : 'DESC';
      const nulls = direction === 'ASC' ? 'NULLS LAST' : 'NULLS FIRST';
      if (i === 0) qb.orderBy(c.sql, direction, nulls);
      else qb.addOrderBy(c.sql, direction, nulls);
      // The cursor keeps each value as PostgreSQL's own text, so timestamps keep microseconds.
      qb.addSelect(`(${c.sql})::text`, `${PREFIX}k${i}`);
    });
    qb.take(undefined)
      .skip(undefined)
      .limit(request.limit + 1);

    const { entities, raw } = await qb.getRawAndEntities();
    if (entities.length !== raw.length) {
      throw new Error('CursorPaginator: queries whose joins repeat rows are not supported');
    }
    const hasMore = entities.length > request.limit;
    const rows = entities.slice(0, request.limit).map((item, i) => ({
      item,
      cursor: this.codec.encode(signature, {
        values: columns.map((_, c) => raw[i][`${PREFIX}k${c}`] as string | null),
      }),
    }));
    if (!forward) rows.reverse();
    const first = rows[0]?.cursor ?? null;
    const last = rows[rows.length - 1]?.cursor ?? null;
    return {
      items: rows.map((r) => r.item),
      nextCursor: forward ? (hasMore ? last : null) : last,
      prevCursor: forward ? (request.after !== null ? first : null) : hasMore ? first : null,
      hasMore,
    };
  }

  private columns(qb: SelectQueryBuilder<T>, sort: SortField[]): KeysetColumn[] {
    const metadata = qb.expressionMap.mainAlias!.metadata;
    return sort.map(({ field, direction }) => {
      const column = metadata.findColumnWithPropertyPath(field);
      if (!column) throw new Error(`CursorPaginator: ${metadata.name} has no property "${field}"`);
      return { sql: `${qb.escape(qb.alias)}.${qb.escape(column.databaseName)}`, direction };
    });
  }
}
