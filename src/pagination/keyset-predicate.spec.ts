import type { SortDirection } from './page.interface';
import { keysetPredicate, type KeysetColumn, type SqlCondition } from './keyset-predicate';

type Row = (string | null)[];

const columns = (...directions: SortDirection[]): KeysetColumn[] =>
  directions.map((direction, i) => ({ sql: `"row"."c${i}"`, direction }));

/**
 * Evaluates the predicate on one row the way PostgreSQL would for these operators. The SQL only
 * ever has `col op :param`, IS [NOT] NULL, AND, OR, parentheses and FALSE; a comparison with NULL
 * is never true, which is why NULLs need the IS NULL terms.
 */
function matches(condition: SqlCondition, row: Row): boolean {
  const value = (ref: string) => row[Number(/"c(\d+)"/.exec(ref)![1])];
  const param = (name: string) => condition.params[name];
  const js = condition.sql
    .replace(/("row"\."c\d+") IS NOT NULL/g, (_, c: string) => String(value(c) !== null))
    .replace(/("row"\."c\d+") IS NULL/g, (_, c: string) => String(value(c) === null))
    .replace(/("row"\."c\d+") ([<>=]) :(\w+)/g, (_, c: string, op: string, p: string) => {
      const [a, b] = [value(c), param(p)];
      if (a === null) return 'false';
      return String(op === '<' ? a < b : op === '>' ? a > b : a === b);
    })
    .replace(/\bAND\b/g, '&&')
    .replace(/\bOR\b/g, '||')
    .replace(/\bFALSE\b/g, 'false');
  expect(js).toMatch(/^[()truefals&| ]*$/); // nothing left untranslated
  return new Function(`return ${js};`)() as boolean;
}

/** PostgreSQL's default order: NULL is the largest value (NULLS LAST asc, NULLS FIRST desc). */
function compare(a: Row, b: Row, directions: SortDirection[]): number {
  for (let i = 0; i < directions.length; i++) {
    const [x, y] = [a[i], b[i]];
    if (x === y) continue;
    const ascending = x === null ? 1 : y === null ? -1 : x < y ? -1 : 1;
    return directions[i] === 'asc' ? ascending : -ascending;
  }
  return 0;
}

function allRows(width: number, domain: (string | null)[]): Row[] {
  if (width === 0) return [[]];
  return allRows(width - 1, domain).flatMap((rest) => domain.map((v) => [...rest, v]));
}

describe('keysetPredicate', () => {
  it('binds values as parameters, never as SQL text', () => {
    const evil = "x' OR '1'='1";
    const condition = keysetPredicate(columns('asc'), [evil], true, 'k');
    expect(condition.sql).not.toContain(evil);
    expect(Object.values(condition.params)).toEqual([evil]);
    expect(condition.sql).toBe('((("row"."c0" > :k0 OR "row"."c0" IS NULL)))');
  });

  it('one descending column: forward means smaller values, then the NULLs never come after', () => {
    expect(keysetPredicate(columns('desc'), ['5'], true, 'p')).toEqual({
      sql: '(("row"."c0" < :p0))',
      params: { p0: '5' },
    });
    // Descending puts NULLs first: nothing is before a NULL going backward.
    expect(keysetPredicate(columns('desc'), [null], false, 'p')).toEqual({
      sql: 'FALSE',
      params: {},
    });
  });

  // Every row of a small universe, every position in it, every mix of directions, both ways:
  // "beyond" must be exactly the rows strictly after (forward) or before (backward) the position.
  for (const directions of [
    ['asc'],
    ['desc'],
    ['asc', 'asc'],
    ['desc', 'asc'],
    ['asc', 'desc', 'asc'],
    ['desc', 'desc', 'desc'],
  ] as SortDirection[][]) {
    it(`selects exactly the rows beyond the position for ${directions.join(', ')}`, () => {
      const rows = allRows(directions.length, [null, 'a', 'b', 'c']);
      for (const position of rows) {
        for (const forward of [true, false]) {
          const condition = keysetPredicate(columns(...directions), position, forward, 'p');
          const got = rows.filter((row) => matches(condition, row));
          const want = rows.filter((row) => {
            const order = compare(row, position, directions);
            return forward ? order > 0 : order < 0;
          });
          expect({ position, forward, rows: got }).toEqual({ position, forward, rows: want });
        }
      }
    });
  }
});
