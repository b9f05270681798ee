import type { SortDirection } from './page.interface';

export interface KeysetColumn {
  /** Escaped SQL column reference, e.g. `"row"."created_at"`. */
  sql: string;
  direction: SortDirection;
}

export interface SqlCondition {
  sql: string;
  params: Record<string, string>;
}

/**
 * `WHERE` for "rows beyond this position" in a mixed-direction sort, with NULL ordered as the
 * largest value (PostgreSQL's default: NULLS LAST ascending, NULLS FIRST descending):
 *   (c1 ▷ v1) OR (c1 = v1 AND c2 ▷ v2) OR ... where ▷ is > for asc and < for desc.
 * Values are bound parameters; only allow-listed, escaped column names are SQL text.
 */
export function keysetPredicate(
  columns: KeysetColumn[],
  values: (string | null)[],
  forward: boolean,
  paramPrefix: string,
): SqlCondition {
  const params: Record<string, string> = {};
  const param = (i: number, value: string) => {
    params[`${paramPrefix}${i}`] = value;
    return `:${paramPrefix}${i}`;
  };
  const equal = (i: number) =>
    values[i] === null
      ? `${columns[i].sql} IS NULL`
      : `${columns[i].sql} = ${param(i, values[i]!)}`;
  const beyond = (i: number): string | null => {
    const { sql, direction } = columns[i];
    const greater = (direction === 'asc') === forward;
    const value = values[i];
    if (greater) return value === null ? null : `(${sql} > ${param(i, value)} OR ${sql} IS NULL)`;
    return value === null ? `${sql} IS NOT NULL` : `${sql} < ${param(i, value)}`;
  };
  const terms: string[] = [];
  for (let i = 0; i < columns.length; i++) {
    const last = beyond(i);
    if (last === null) continue; // nothing sorts beyond NULL in this direction
    terms.push([...columns.slice(0, i).map((_, j) => equal(j)), last].join(' AND '));
  }
  const sql = terms.length ? `(${terms.map((t) => `(${t})`).join(' OR ')})` : 'FALSE';
  return { sql, params };
}
