import { BadRequestException } from '@nestjs/common';
import { thrownBy } from '../../test/support/thrown';
import { parseLimit, parsePageQuery, parseSort } from './page-request.parser';

const SORTABLE = new Set(['createdAt', 'title', 'id']);
const DEFAULTS = { sort: [{ field: 'id', direction: 'asc' as const }], limit: 20, maxLimit: 100 };

const rejection = (parse: () => unknown) => thrownBy(parse, BadRequestException).message;

describe('parseLimit', () => {
  it('defaults when absent, and clamps to the maximum', () => {
    expect(parseLimit(undefined, 20, 100)).toBe(20);
    expect(parseLimit('1', 20, 100)).toBe(1);
    expect(parseLimit('100', 20, 100)).toBe(100);
    expect(parseLimit('101', 20, 100)).toBe(100);
    expect(parseLimit('999999999999999', 20, 100)).toBe(100);
  });

  it('refuses anything but a whole number from 1', () => {
    for (const text of ['0', '00', '-1', '1.5', '1e2', ' 5', '', 'ten', '1000000000000000']) {
      expect(rejection(() => parseLimit(text, 20, 100))).toBe(
        'limit must be a whole number from 1 to 100',
      );
    }
  });
});

describe('parseSort', () => {
  it('reads fields from the allow-list, ascending unless told', () => {
    expect(parseSort(undefined, SORTABLE, DEFAULTS.sort)).toEqual(DEFAULTS.sort);
    expect(parseSort('createdAt:desc, title,id:asc', SORTABLE, DEFAULTS.sort)).toEqual([
      { field: 'createdAt', direction: 'desc' },
      { field: 'title', direction: 'asc' },
      { field: 'id', direction: 'asc' },
    ]);
  });

  it('refuses fields outside the allow-list, unknown directions, repeats and too many', () => {
    for (const text of [
      'secret',
      'title:up',
      'title:DESC',
      '',
      'title,',
      '"title"',
      'title;drop',
    ]) {
      expect(rejection(() => parseSort(text, SORTABLE, DEFAULTS.sort))).toMatch(
        /^sort must be a comma-separated list of field\[:asc\|:desc\] with fields from: createdAt, title, id$/,
      );
    }
    expect(rejection(() => parseSort('title,title:desc', SORTABLE, DEFAULTS.sort))).toBe(
      'sort names "title" twice',
    );
    expect(rejection(() => parseSort('title,id,createdAt,title', SORTABLE, DEFAULTS.sort))).toBe(
      'sort names too many fields',
    );
  });
});

describe('parsePageQuery', () => {
  it('reads after, before, limit and sort', () => {
    expect(
      parsePageQuery({ after: 'c1', limit: '5', sort: 'title:desc' }, SORTABLE, DEFAULTS),
    ).toEqual({
      after: 'c1',
      before: null,
      limit: 5,
      sort: [{ field: 'title', direction: 'desc' }],
    });
    expect(parsePageQuery({}, SORTABLE, DEFAULTS)).toEqual({
      after: null,
      before: null,
      limit: 20,
      sort: DEFAULTS.sort,
    });
  });

  it('refuses after with before, and repeated or nested parameters', () => {
    expect(rejection(() => parsePageQuery({ after: 'a', before: 'b' }, SORTABLE, DEFAULTS))).toBe(
      'use either after or before, not both',
    );
    for (const query of [{ limit: ['1', '2'] }, { after: { x: '1' } }, { sort: ['id'] }]) {
      expect(rejection(() => parsePageQuery(query, SORTABLE, DEFAULTS))).toMatch(
        /must be a single plain value/,
      );
    }
  });
});
