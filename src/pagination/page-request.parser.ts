import { BadRequestException } from '@nestjs/common';
import type { PageRequest, SortDirection, SortField } from './page.interface';

const DIGITS = /^[0-9]{1,15}$/;
const SORT_ITEM = /^([A-Za-z_][A-Za-z0-9_]{0,62})(?::(asc|desc))?$/;

function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw new BadRequestException(`query parameter "${name}" must be a single plain value`);
  }
  return value;
}

export function parseLimit(
  text: string | undefined,
  defaultLimit: number,
  maxLimit: number,
): number {
  if (text === undefined) return defaultLimit;
  if (!DIGITS.test(text) || Number(text) < 1) {
    throw new BadRequestException(`limit must be a whole number from 1 to ${maxLimit}`);
  }
  return Math.min(Number(text), maxLimit);
}

/** `sort=createdAt:desc,author` → fields from the allow-list only; anything else is a 400. */
export function parseSort(
  text: string | undefined,
  sortable: ReadonlySet<string>,
  fallback: SortField[],
): SortField[] {
  if (text === undefined) return fallback;
  const items = text.split(',');
  if (items.length > sortable.size) throw new BadRequestException('sort names too many fields');
  const seen = new Set<string>();
  return items.map((item) => {
    const match = SORT_ITEM.exec(item.trim());
    if (!match || !sortable.has(match[1])) {
      throw new BadRequestException(
        `sort must be a comma-separated list of field[:asc|:desc] with fields from: ${[...sortable].join(', ')}`,
      );
    }
    if (seen.has(match[1])) throw new BadRequestException(`sort names "${match[1]}" twice`);
    seen.add(match[1]);
    return { field: match[1], direction: (match[2] ?? 'asc') as SortDirection };
  });
}

/** Reads `after`, `before`, `limit` and `sort` from a request's query, validating each. */
export function parsePageQuery(
  query: Record<string, unknown>,
  sortable: ReadonlySet<string>,
  defaults: { sort: SortField[]; limit: number; maxLimit: number },
): PageRequest {
  const after = single(query, 'after') ?? null;
  const before = single(query, 'before') ?? null;
  if (after !== null && before !== null) {
    throw new BadRequestException('use either after or before, not both');
  }
  return {
    after,
    before,
    limit: parseLimit(single(query, 'limit'), defaults.limit, defaults.maxLimit),
    sort: parseSort(single(query, 'sort'), sortable, defaults.sort),
  };
}
